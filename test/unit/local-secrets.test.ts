// db/secrets.ts: processes started together on one fresh DATA_DIR (servers and workers of one
// machine) all read a complete secrets.json and agree on one set; none sees a half-written file.

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

const secretsModule = pathToFileURL(path.resolve(import.meta.dirname, "../../db/secrets.ts")).href;

/** Runs loadLocalSecrets in `count` separate processes that start their call at the same instant. */
async function loadTogether(dataDir: string, count: number): Promise<string[]> {
  const startAt = Date.now() + 1500;
  const script = `
    import { loadLocalSecrets } from ${JSON.stringify(secretsModule)};
    while (Date.now() < ${startAt}) {}
    process.stdout.write(JSON.stringify(loadLocalSecrets(${JSON.stringify(dataDir)})));
  `;
  const runs = Array.from({ length: count }, () =>
    new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      let err = "";
      child.stdout.on("data", (chunk) => (out += chunk));
      child.stderr.on("data", (chunk) => (err += chunk));
      child.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}: ${err}`))));
    }),
  );
  return Promise.all(runs);
}

test("eight processes on a fresh DATA_DIR all get the same, complete secrets", async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), "tb-secrets-"));
  try {
    const results = await loadTogether(dataDir, 8);
    const parsed = results.map((r) => JSON.parse(r) as Record<string, string>);
    expect(new Set(results).size).toBe(1);
    expect(Object.keys(parsed[0]).sort()).toEqual(["authenticatorPassword", "embeddedSuperuserPassword", "jwtSecret", "ownerPassword", "ssoSecretKey"]);
    expect(Object.values(parsed[0]).every((v) => v.length >= 40)).toBe(true);
    expect(JSON.parse(readFileSync(path.join(dataDir, "secrets.json"), "utf8"))).toEqual(parsed[0]);
    expect(statSync(path.join(dataDir, "secrets.json")).mode & 0o777).toBe(0o600);
    expect(readdirSync(dataDir)).toEqual(["secrets.json"]); // no private copies left behind
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}, 30_000);

test("a file from an older version keeps its values and gains the missing ones", async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), "tb-secrets-"));
  try {
    writeFileSync(path.join(dataDir, "secrets.json"), JSON.stringify({ jwtSecret: "kept-jwt-secret", ownerPassword: "kept-owner" }), { mode: 0o600 });
    const [result] = await loadTogether(dataDir, 1);
    const secrets = JSON.parse(result) as Record<string, string>;
    expect(secrets.jwtSecret).toBe("kept-jwt-secret");
    expect(secrets.ownerPassword).toBe("kept-owner");
    expect(secrets.authenticatorPassword).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(JSON.parse(readFileSync(path.join(dataDir, "secrets.json"), "utf8"))).toEqual(secrets);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}, 30_000);
