// The development loop on defaults, with real processes: `npm start` runs the embedded PostgreSQL
// of DATA_DIR, and db:seed, credits:grant, db:watch and db:commit, started while it runs, connect
// to that cluster instead of trying to start a second one on the same data directory. A function
// saved while db:watch runs (also by renaming a new file over the old, as editors do) answers
// through the server's GraphQL without a restart, a new root field included. db:commit, both
// beside the server and on its own, succeeds without an error line and leaves current/ empty. A
// port held by another program is named as such.
//
// Everything runs in a copy of the project's sources (node_modules linked), so that the test may
// add SQL files and commit a migration without touching the checkout.

import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { projectRoot } from "../../core/paths.ts";
import { freePort, portOpen } from "../../db/ports.ts";

jest.setTimeout(600_000);

let copy: string;
let dataDir: string;
let port: number;
let pgPort: number;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  copy = mkdtempSync(path.join(os.tmpdir(), "tenantbase-devloop-src-"));
  for (const entry of ["core", "db", "server", "workers", "scripts", "package.json"]) {
    cpSync(path.join(projectRoot, entry), path.join(copy, entry), { recursive: true });
  }
  symlinkSync(path.join(projectRoot, "node_modules"), path.join(copy, "node_modules"));
  dataDir = mkdtempSync(path.join(os.tmpdir(), "tenantbase-devloop-data-"));
  port = await freePort();
  pgPort = await freePort();
  env = { PATH: process.env.PATH, HOME: process.env.HOME, DATA_DIR: dataDir, PORT: String(port), EMBEDDED_POSTGRES_PORT: String(pgPort) };
});
afterAll(() => {
  for (const dir of [copy, dataDir]) if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Proc {
  child: ChildProcess;
  output: string[];
  text(): string;
}

function launch(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(process.execPath, args, { cwd: copy, env: { ...env, ...extraEnv }, stdio: ["ignore", "pipe", "pipe"] });
  const output: string[] = [];
  child.stdout!.on("data", (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => output.push(chunk.toString()));
  return { child, output, text: () => output.join("") };
}

/** Resolves once the output contains `marker`; rejects if the process exits first. */
function waitFor(proc: Proc, marker: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (proc.text().includes(marker)) {
        clearInterval(timer);
        proc.child.off("exit", onExit);
        resolve();
      }
    };
    const onExit = (code: number | null) => {
      clearInterval(timer);
      if (proc.text().includes(marker)) resolve();
      else reject(new Error(`${proc.child.spawnargs.join(" ")} exited with ${code} before "${marker}":\n${proc.text()}`));
    };
    const timer = setInterval(check, 50);
    proc.child.once("exit", onExit);
    check();
  });
}

/** Runs a command to its end: exit code and output. */
async function run(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; output: string }> {
  const proc = launch(args, extraEnv);
  const code = await new Promise<number | null>((resolve) => proc.child.once("exit", resolve));
  return { code, output: proc.text() };
}

function stop(proc: Proc, signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
  if (proc.child.exitCode !== null) return Promise.resolve(proc.child.exitCode);
  return new Promise((resolve) => {
    proc.child.once("exit", (code) => resolve(code));
    proc.child.kill(signal);
  });
}

async function graphql(query: string): Promise<any> {
  const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query }),
  });
  return response.json();
}

/**
 * Asks until the answer satisfies `done` (the jest timeout bounds it); returns it and the time it
 * took. A refused or reset connection is asked again while the server runs (a keep-alive socket
 * closed by the server as it was reused); the server's exit is an error with its output.
 */
async function until(server: Proc, query: string, done: (result: any) => boolean): Promise<{ result: any; ms: number }> {
  const started = Date.now();
  for (;;) {
    if (server.child.exitCode !== null) throw new Error(`the server exited (${server.child.exitCode}):\n${server.text()}`);
    const result = await graphql(query).catch((error: Error) => ({ fetchError: String(error.cause ?? error) }));
    if (done(result)) return { result, ms: Date.now() - started };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Writes a file as editors do: a new file renamed over the old one. */
function saveByRename(file: string, text: string): void {
  const temp = `${file}.tmp-${process.pid}`;
  writeFileSync(temp, text);
  renameSync(temp, file);
}

const currentSql = () => readdirSync(path.join(copy, "db/migrations/current")).filter((file) => file.endsWith(".sql"));
const committed = () => readdirSync(path.join(copy, "db/migrations/committed")).filter((file) => file.endsWith(".sql"));

test("npm start runs the cluster; db:seed, credits:grant, db:watch and db:commit use it; saved SQL reaches GraphQL", async () => {
  // db:commit on its own, first: it starts the cluster and stops it without an error after succeeding.
  // (It also commits, in the copy, whatever db/migrations/current/ holds: `npm start` runs committed
  // migrations only.)
  writeFileSync(path.join(copy, "db/migrations/current/229-devloop-probe.sql"), "create table if not exists app_public.devloop_probe_1 (id int primary key);\n");
  const before = committed().length;
  const alone = await run(["db/cli.ts", "commit", "devloop probe one"]);
  expect(alone).toMatchObject({ code: 0 });
  expect(alone.output).toContain(`embedded PostgreSQL 15 on 127.0.0.1:${pgPort}`);
  expect(alone.output).not.toMatch(/migrate:error|terminating connection/);
  expect(currentSql()).toEqual([]);
  expect(committed()).toHaveLength(before + 1);
  expect(await portOpen(pgPort)).toBe(false);

  const server = launch(["server/main.ts"]);
  try {
    await waitFor(server, "GraphiQL:");
    expect(server.text()).toContain(`embedded PostgreSQL 15 on 127.0.0.1:${pgPort}`);

    const seeded = await run(["scripts/db-seed.ts"]);
    expect(seeded).toMatchObject({ code: 0 });
    expect(seeded.output).toContain(`using the embedded PostgreSQL already running on 127.0.0.1:${pgPort}`);
    expect(seeded.output).toContain("Seeded demo data:");
    expect(seeded.output).not.toMatch(/did not start|is the port taken/);

    const granted = await run(["scripts/credits-grant.ts", "--org", "demo-studio", "--amount", "25"]);
    expect(granted).toMatchObject({ code: 0 });
    expect(granted.output).toContain("granted 25 credits to demo-studio");

    const watch = launch(["db/cli.ts", "watch"]);
    try {
      await waitFor(watch, "watching db/functions and db/policies");
      expect(watch.text()).toContain(`using the embedded PostgreSQL already running on 127.0.0.1:${pgPort}`);

      // A new function and its grant: a new root field, so the server must rebuild its schema.
      const probe = path.join(copy, "db/functions/900-devloop/probe.sql");
      mkdirSync(path.dirname(probe));
      const fn = (value: string) =>
        `create or replace function app_public.dev_loop_probe() returns text language sql stable as $$ select '${value}' $$;\n` +
        `comment on function app_public.dev_loop_probe() is 'Development loop probe.';\n`;
      writeFileSync(probe, fn("first"));
      writeFileSync(path.join(copy, "db/policies/900-devloop.sql"), "grant execute on function app_public.dev_loop_probe() to app_anonymous, app_user;\n");
      const added = await until(server, "{ devLoopProbe }", (r) => r.data?.devLoopProbe === "first");
      // Saved again by renaming a new file over it (what a recursive fs.watch used to miss).
      saveByRename(probe, fn("second"));
      const changed = await until(server, "{ devLoopProbe }", (r) => r.data?.devLoopProbe === "second");
      console.log(`saved SQL answered through GraphQL after ${added.ms} ms (new field) and ${changed.ms} ms (changed body)`);
      expect(watch.text()).toContain("re-applied");
    } finally {
      expect(await stop(watch, "SIGINT")).toBe(0);
    }

    // db:commit beside the running server.
    writeFileSync(path.join(copy, "db/migrations/current/229-devloop-probe.sql"), "create table if not exists app_public.devloop_probe_2 (id int primary key);\n");
    const committedBefore = committed().length;
    const commit = await run(["db/cli.ts", "commit", "devloop probe two"]);
    expect(commit).toMatchObject({ code: 0 });
    expect(commit.output).toContain(`using the embedded PostgreSQL already running on 127.0.0.1:${pgPort}`);
    expect(commit.output).not.toMatch(/migrate:error|terminating connection/);
    expect(currentSql()).toEqual([]);
    expect(committed()).toHaveLength(committedBefore + 1);

    // A port held by another program (here the server's HTTP port), on a fresh data directory.
    const otherData = mkdtempSync(path.join(os.tmpdir(), "tenantbase-devloop-other-"));
    try {
      const taken = await run(["db/cli.ts", "setup"], { DATA_DIR: otherData, EMBEDDED_POSTGRES_PORT: String(port) });
      expect(taken.code).toBe(1);
      expect(taken.output).toContain(`port ${port} is already in use by another program (set EMBEDDED_POSTGRES_PORT to a free port)`);
    } finally {
      rmSync(otherData, { recursive: true, force: true });
    }
  } catch (error) {
    throw new Error(`${(error as Error).message}\n--- server output ---\n${server.text().slice(-20_000)}`);
  } finally {
    expect(await stop(server)).toBe(0);
  }
  expect(await portOpen(pgPort)).toBe(false);

});

test("npm run dev: server, worker and watch in one process; a saved function answers; SIGINT stops it cleanly with GraphiQL's stream open", async () => {
  const dev = launch(["server/main.ts", "--dev"]);
  try {
    await waitFor(dev, "watching db/functions and db/policies");
    // GraphiQL's schema-change stream (watch mode), held open across the shutdown below
    const stream = await fetch(`http://127.0.0.1:${port}/graphql/stream`, { headers: { accept: "text/event-stream" } });
    expect(stream.status).toBe(200);
    expect(stream.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const probe = path.join(copy, "db/functions/900-devloop/probe.sql");
    saveByRename(
      probe,
      "create or replace function app_public.dev_loop_probe() returns text language sql stable as $$ select 'third' $$;\n",
    );
    await until(dev, "{ devLoopProbe }", (r) => r.data?.devLoopProbe === "third");
    expect(await stop(dev, "SIGINT")).toBe(0);
    await stream.body?.cancel().catch(() => {});
  } catch (error) {
    throw new Error(`${(error as Error).message}\n--- output ---\n${dev.text().slice(-20_000)}`);
  } finally {
    await stop(dev);
  }
  expect(dev.text()).toContain("stopped cleanly");
  expect(await portOpen(pgPort)).toBe(false);
});
