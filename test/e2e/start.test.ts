// `npm start` as a newcomer runs it: no database settings at all, so an embedded PostgreSQL is
// initialised under DATA_DIR; the server prints its URLs; SIGTERM stops server and database;
// a second start reuses the data (the account still signs in, the old token still works).

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { projectRoot } from "../../core/paths.ts";
import { freePort, portOpen } from "../../db/ports.ts";

jest.setTimeout(120_000);



interface Started {
  child: ChildProcess;
  output: string[];
  ms: number;
}

function start(env: NodeJS.ProcessEnv): Promise<Started> {
  const began = Date.now();
  const child = spawn(process.execPath, ["server/main.ts"], { cwd: projectRoot, env, stdio: ["ignore", "pipe", "pipe"] });
  const output: string[] = [];
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output.push(chunk.toString());
      if (output.join("").includes("GraphiQL:")) resolve({ child, output, ms: Date.now() - began });
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => reject(new Error(`server exited with ${code}:\n${output.join("")}`)));
  });
}

/** SIGTERM; resolves with the exit code, and the output when it is not 0 (to see why). */
function stop(started: Started): Promise<number | string | null> {
  const { child, output } = started;
  return new Promise((resolve) => {
    child.removeAllListeners("exit");
    child.once("exit", (code) => resolve(code === 0 ? 0 : `exit ${code}:\n${output.join("")}`));
    child.kill("SIGTERM");
  });
}

async function graphql(port: number, query: string, variables: object, token?: string) {
  const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as any;
}

let dataDir: string;
let env: NodeJS.ProcessEnv;
let port: number;
let pgPort: number;
beforeAll(async () => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), "tenantbase-e2e-"));
  port = await freePort();
  pgPort = await freePort();
  env = { PATH: process.env.PATH, HOME: process.env.HOME, DATA_DIR: dataDir, PORT: String(port), EMBEDDED_POSTGRES_PORT: String(pgPort) };
});
afterAll(() => {
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test("first start initialises an embedded Postgres and serves /graphql and /graphiql; SIGTERM stops both", async () => {
  const first = await start(env);
  try {
    const text = first.output.join("");
    expect(text).toContain(`http://localhost:${port}/graphql`);
    expect(text).toContain(`http://localhost:${port}/graphiql`);
    expect(existsSync(path.join(dataDir, "postgres", "PG_VERSION"))).toBe(true);

    const graphiql = await fetch(`http://127.0.0.1:${port}/graphiql`, { headers: { accept: "text/html" } });
    expect(graphiql.status).toBe(200);
    expect(await graphiql.text()).toMatch(/ruru|graphiql/i);

    const registered = await graphql(port, `mutation { register(input: {email: "e2e@example.com", password: "persistent!", name: "E2E"}) { jwtToken } }`, {});
    expect(registered.errors).toBeUndefined();
    const created = await graphql(port, `mutation { createOrganization(input: {name: "Survivor"}) { organization { slug } } }`, {}, registered.data.register.jwtToken);
    expect(created.data.createOrganization.organization.slug).toBe("survivor");
    (globalThis as any).e2eToken = registered.data.register.jwtToken;
  } finally {
    expect(await stop(first)).toBe(0);
  }
  expect(await portOpen(port)).toBe(false);
  expect(await portOpen(pgPort)).toBe(false);
  console.log(`first start ready in ${first.ms} ms`);
});

test("second start reuses .data: data, secrets and tokens survive", async () => {
  const second = await start(env);
  try {
    const signedIn = await graphql(port, `mutation { authenticate(input: {email: "e2e@example.com", password: "persistent!"}) { jwtToken } }`, {});
    expect(signedIn.errors).toBeUndefined();
    const orgs = await graphql(port, `{ organizations { nodes { slug } } }`, {}, (globalThis as any).e2eToken);
    expect(orgs.data.organizations.nodes).toEqual([{ slug: "survivor" }]);
  } finally {
    expect(await stop(second)).toBe(0);
  }
  console.log(`second start ready in ${second.ms} ms`);
});

test("a malformed variable stops start-up with one line naming it", async () => {
  const child = spawn(process.execPath, ["server/main.ts"], { cwd: projectRoot, env: { ...env, PORT: "eighty" }, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (chunk) => (stderr += chunk));
  const code = await new Promise((resolve) => child.once("exit", resolve));
  expect(code).toBe(1);
  expect(stderr.trim().split("\n")).toEqual([expect.stringMatching(/PORT must be a port number/)]);
});
