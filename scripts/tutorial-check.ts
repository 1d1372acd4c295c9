// `node scripts/tutorial-check.ts [--keep]`: applies docs/extending.md to a copy of this checkout
// and runs what it says to run, so that the tutorial never goes stale (test/e2e/tutorial.test.ts
// runs it in the suite).
//
// The page marks each step with an HTML comment right before a fenced block:
//   <!-- tutorial: run -->           every line of the block is a shell command, run in the copy
//   <!-- tutorial: write PATH -->    the block is the whole new file PATH
//   <!-- tutorial: append PATH -->   the block is appended to PATH
//   <!-- tutorial: patch PATH -->    the block is a diff: lines starting with "-" and " " must be
//                                    found once in PATH, in order, and become the "+" and " " ones
//                                    ("@@" lines separate hunks)
// Unmarked blocks are illustration only. The copy has the tracked and untracked (not ignored)
// files of the checkout, and node_modules linked; it is deleted afterwards unless --keep.

import { execFileSync, spawnSync } from "node:child_process";
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { projectRoot } from "../core/paths.ts";

export interface Step {
  action: "run" | "write" | "append" | "patch";
  path: string | null;
  body: string;
  /** 1-based line of the marker in the page. */
  line: number;
}

const MARKER = /^<!--\s*tutorial:\s*(run|write|append|patch)(?:\s+(\S+))?\s*-->\s*$/;

export function parseSteps(markdown: string): Step[] {
  const lines = markdown.split("\n");
  const steps: Step[] = [];
  for (let i = 0; i < lines.length; i++) {
    const match = MARKER.exec(lines[i]);
    if (!match) continue;
    const [, action, file] = match;
    const open = lines[i + 1] ?? "";
    if (!/^```/.test(open)) throw new Error(`docs/extending.md:${i + 1}: a tutorial marker must be followed by a fenced block`);
    const end = lines.findIndex((line, j) => j > i + 1 && /^```\s*$/.test(line));
    if (end < 0) throw new Error(`docs/extending.md:${i + 2}: unclosed block`);
    if ((action === "run") !== (file === undefined)) throw new Error(`docs/extending.md:${i + 1}: "${action}" ${action === "run" ? "takes no path" : "needs a path"}`);
    steps.push({ action: action as Step["action"], path: file ?? null, body: lines.slice(i + 2, end).join("\n"), line: i + 1 });
    i = end;
  }
  return steps;
}

/** Applies a "patch" block (see above) to text. */
export function applyPatch(text: string, diff: string, where: string): string {
  const hunks = diff.split(/^@@.*$/m).map((h) => h.replace(/^\n|\n$/g, "")).filter((h) => h.trim() !== "");
  for (const hunk of hunks) {
    const before: string[] = [];
    const after: string[] = [];
    for (const line of hunk.split("\n")) {
      const sign = line === "" ? " " : line.charAt(0);
      const rest = line.slice(1);
      if (!"-+ ".includes(sign)) throw new Error(`${where}: a diff line must start with "-", "+" or " ": ${line}`);
      if (sign !== "+") before.push(rest);
      if (sign !== "-") after.push(rest);
    }
    const old = before.join("\n");
    const count = text.split(old).length - 1;
    if (count !== 1) throw new Error(`${where}: the lines to replace were found ${count} times (expected once):\n${old}`);
    text = text.replace(old, () => after.join("\n"));
  }
  return text;
}

/** A copy of the checkout (tracked and untracked, not ignored files), node_modules linked. */
function copyCheckout(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tenantbase-tutorial-"));
  const files = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "-z"], { cwd: projectRoot, encoding: "utf8" })
    .split("\0")
    .filter((f) => f !== "" && existsSync(path.join(projectRoot, f)));
  for (const file of files) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    copyFileSync(path.join(projectRoot, file), path.join(dir, file));
  }
  symlinkSync(path.join(projectRoot, "node_modules"), path.join(dir, "node_modules"), "dir");
  return dir;
}

/** The environment of the copy's commands: nothing of a test run or database this process has. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(TB_TEST_|TEST_|JEST_|npm_)/.test(key)) continue;
    if (["ROOT_DATABASE_URL", "DATABASE_URL", "AUTH_DATABASE_URL", "NODE_ENV", "DATA_DIR"].includes(key)) continue;
    env[key] = value;
  }
  env.PATH = `${path.join(projectRoot, "node_modules", ".bin")}${path.delimiter}${process.env.PATH ?? ""}`;
  return env;
}

export function runTutorial(options: { keep?: boolean; log?: (line: string) => void } = {}): { dir: string; steps: number } {
  const log = options.log ?? ((line: string) => console.log(line));
  const steps = parseSteps(readFileSync(path.join(projectRoot, "docs", "extending.md"), "utf8"));
  if (steps.length === 0) throw new Error("docs/extending.md has no tutorial steps");
  const dir = copyCheckout();
  log(`[tutorial] copy of the checkout in ${dir}`);
  const env = cleanEnv();
  try {
    for (const step of steps) {
      const where = `docs/extending.md:${step.line}`;
      const target = step.path ? path.join(dir, step.path) : null;
      switch (step.action) {
        case "run":
          for (const command of step.body.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"))) {
            log(`[tutorial] ${where}: $ ${command}`);
            const began = Date.now();
            const result = spawnSync("bash", ["-c", command], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"], encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
            if (result.status !== 0) {
              throw new Error(`${where}: \`${command}\` exited with ${result.status}\n${result.stdout}\n${result.stderr}`);
            }
            log(`[tutorial]   ok in ${((Date.now() - began) / 1000).toFixed(1)} s`);
          }
          break;
        case "write":
          mkdirSync(path.dirname(target!), { recursive: true });
          if (existsSync(target!)) throw new Error(`${where}: ${step.path} exists already (write makes a new file)`);
          writeFileSync(target!, `${step.body}\n`);
          log(`[tutorial] ${where}: wrote ${step.path}`);
          break;
        case "append":
          if (!existsSync(target!)) throw new Error(`${where}: ${step.path} does not exist`);
          appendFileSync(target!, `${step.body}\n`);
          log(`[tutorial] ${where}: appended to ${step.path}`);
          break;
        case "patch":
          if (!existsSync(target!)) throw new Error(`${where}: ${step.path} does not exist`);
          writeFileSync(target!, applyPatch(readFileSync(target!, "utf8"), step.body, where));
          log(`[tutorial] ${where}: patched ${step.path}`);
          break;
      }
    }
    return { dir, steps: steps.length };
  } finally {
    if (!options.keep) rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.basename(process.argv[1]) === "tutorial-check.ts") {
  try {
    const began = Date.now();
    const { steps } = runTutorial({ keep: process.argv.includes("--keep") });
    console.log(`[tutorial] docs/extending.md: ${steps} steps applied and passed in ${((Date.now() - began) / 1000).toFixed(0)} s`);
  } catch (error) {
    console.error(`[tutorial] ${(error as Error).message}`);
    process.exitCode = 1;
  }
}
