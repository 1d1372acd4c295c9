// `npm run documents:manifest -- <glob>… --out <file> [--bare] [--schema <file> | --no-schema]`:
// writes the trusted-documents manifest of a client's .graphql documents (graphql-codegen's
// persisted-documents.json format: { "sha256:<hex>": "<document>" }; --bare writes bare hex keys,
// as older codegen versions and Apollo's sha256Hash use). Each document is first validated
// against schema.graphql (or --schema), so a manifest never holds an operation the API refuses.
// The server reads the manifest from TRUSTED_DOCUMENTS_MANIFEST.

import { globSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { buildSchema } from "postgraphile/graphql";
import { buildManifest } from "./documents-manifest-lib.ts";
import { projectRoot } from "../core/paths.ts";

function usage(message: string): never {
  console.error(`${message}\nusage: npm run documents:manifest -- <glob>… --out <file> [--bare] [--schema <file> | --no-schema]`);
  process.exit(2);
}

function main() {
  const args = process.argv.slice(2);
  const patterns: string[] = [];
  let out: string | null = null;
  let prefixed = true;
  let schemaFile: string | null = path.join(projectRoot, "schema.graphql");
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--out") out = args[++i] ?? usage("--out needs a file");
    else if (arg === "--bare") prefixed = false;
    else if (arg === "--schema") schemaFile = args[++i] ?? usage("--schema needs a file");
    else if (arg === "--no-schema") schemaFile = null;
    else if (arg.startsWith("--")) usage(`unknown option ${arg}`);
    else patterns.push(arg);
  }
  if (patterns.length === 0) usage("give at least one glob of .graphql files");
  if (out === null) usage("give --out <file>");
  const names = [...new Set(patterns.flatMap((pattern) => globSync(pattern)))].filter((name) => /\.(graphql|gql)$/.test(name)).sort();
  if (names.length === 0) usage(`no .graphql files match ${patterns.join(" ")}`);
  const schema = schemaFile === null ? undefined : buildSchema(readFileSync(schemaFile, "utf8"));
  const manifest = buildManifest(
    names.map((name) => ({ name, text: readFileSync(name, "utf8") })),
    { prefixed, schema },
  );
  writeFileSync(out, `${JSON.stringify(manifest, null, 2)}\n`);
  console.log(`wrote ${Object.keys(manifest).length} documents from ${names.length} files to ${out}`);
}

try {
  main();
} catch (error) {
  console.error((error as Error).message);
  process.exit(1);
}
