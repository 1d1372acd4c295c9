// The layers import downwards only: server → workers → db → core. This reads every import of
// every source file (static and dynamic) and fails on an arrow that points back up.

import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";

const LAYERS = ["core", "db", "workers", "server"] as const;
type Layer = (typeof LAYERS)[number];

/** What each layer may import, besides npm packages and node built-ins. */
const ALLOWED: Record<Layer, Layer[]> = {
  core: ["core"],
  db: ["core", "db"],
  workers: ["core", "db", "workers"],
  server: ["core", "db", "workers", "server"],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sourceFiles(full);
    return name.endsWith(".ts") ? [full] : [];
  });
}

function importsOf(file: string): string[] {
  const source = readFileSync(file, "utf8");
  const specifiers = [
    ...source.matchAll(/\b(?:import|export)\s[^;]*?\bfrom\s+["']([^"']+)["']/g),
    ...source.matchAll(/\bimport\s*\(\s*["']([^"']+)["']\s*\)/g),
    ...source.matchAll(/^\s*import\s+["']([^"']+)["']/gm),
  ].map((match) => match[1]);
  return specifiers.filter((spec) => spec.startsWith("."));
}

function layerOf(file: string): Layer | null {
  const top = path.relative(process.cwd(), file).split(path.sep)[0];
  return (LAYERS as readonly string[]).includes(top) ? (top as Layer) : null;
}

test("no file imports a layer above its own", () => {
  const arrowsUp: string[] = [];
  let checked = 0;
  for (const layer of LAYERS) {
    for (const file of sourceFiles(layer)) {
      for (const spec of importsOf(file)) {
        checked++;
        const target = layerOf(path.resolve(path.dirname(file), spec));
        if (target === null || !ALLOWED[layer].includes(target)) arrowsUp.push(`${file} imports ${spec}`);
      }
    }
  }
  expect(checked).toBeGreaterThan(50);
  expect(arrowsUp).toEqual([]);
});

test("environment variables are read in core/ only", () => {
  const readers = LAYERS.filter((layer) => layer !== "core")
    .flatMap((layer) => sourceFiles(layer))
    .filter((file) => /process\.env(\.|\[)/.test(readFileSync(file, "utf8").replace(/\{ \.\.\.process\.env/g, "")));
  expect(readers).toEqual([]);
});
