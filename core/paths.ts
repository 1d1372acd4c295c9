// The project's root folder, found from the working directory: npm scripts, jest and the CLI
// all run there. (No import.meta here: jest compiles these files to CommonJS.)

import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

function findRoot(start: string): string {
  let dir = start;
  for (;;) {
    const manifest = path.join(dir, "package.json");
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, "utf8")).name === "tenantbase") return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`run tenantbase from its folder (no tenantbase package.json above ${start})`);
    dir = parent;
  }
}

export const projectRoot = findRoot(process.cwd());
