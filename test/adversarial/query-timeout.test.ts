// Finding 4: no statement timeout, and prompt search cost grows with rows × pattern length. With
// 20k generations in the caller's own organization a 4,000-character `promptSearch` took 5.6 s,
// 84 KB took minutes and kept running after the client hung up, and 11 concurrent searches made
// another tenant wait 16 s. Now: search input is bounded, request transactions have a
// statement timeout (QUERY_TIMEOUT), and a client that hangs up has its query cancelled.

import http from "node:http";
import { createHash } from "node:crypto";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createOrganization, createUser, type TestUser } from "../helpers/fixtures.ts";
import { tokenFor } from "../helpers/server.ts";
import { postGraphQL, startServer, type OpsServer } from "../helpers/operations.ts";
import { expectOtherTenantServed, measureOtherTenantServed } from "./other-tenants.ts";
import { seedGenerations } from "./seed.ts";

let db: TestDatabase;
let server: OpsServer; // defaults: 5 s statement timeout, search 3–200 characters
let attacker: TestUser;
let orgId: string;
let auth: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startServer(db);
  attacker = await createUser(db, "Attacker");
  orgId = (await createOrganization(db, attacker, "Big Org")).id;
  await seedGenerations(db, orgId, 20_000);
  auth = { authorization: `Bearer ${tokenFor(attacker)}` };
}, 300_000); // 20k rows through the generation triggers: slow on a busy machine
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const search = `query S($org: UUID!, $q: String!) {
  organization(id: $org) { generations(first: 10, condition: { promptSearch: $q }) { nodes { id } } }
}`;
/**
 * Words like the seeded prompts' (md5 hex): thousands of distinct trigrams, each matching many
 * rows, so the index hands every candidate row to the similarity check (rows × pattern length).
 */
function pattern(length: number): string {
  let text = "";
  for (let i = 0; text.length < length; i++) text += createHash("md5").update(String(i)).digest("hex") + " ";
  return text.slice(0, length);
}

test("search input out of bounds is refused with INVALID_SEARCH before any SQL runs", async () => {
  for (const q of [pattern(4000), pattern(84_000), pattern(201), "ab", "  a  "]) {
    const res = await postGraphQL(server.url, { query: search, variables: { org: orgId, q } }, auth);
    expect(res.body.errors).toEqual([
      expect.objectContaining({
        message: expect.stringMatching(/^promptSearch must be 3 to 200 characters long/),
        extensions: { code: "INVALID_SEARCH" },
      }),
    ]);
  }
  const ok = await postGraphQL(server.url, { query: search, variables: { org: orgId, q: "photo of number 1234" } }, auth);
  expect(ok.body.errors).toBeUndefined();
  expect(Array.isArray(ok.body.data.organization.generations.nodes)).toBe(true);
});

test("a query past the statement timeout is cancelled and answered with QUERY_TIMEOUT", async () => {
  // Bounds loosened so that a slow query is reachable; the timeout is what is under test.
  const slow = await startServer(db, { limits: { statementTimeoutMs: 200, promptSearchMaxLength: 100_000 } });
  try {
    const res = await postGraphQL(slow.url, { query: search, variables: { org: orgId, q: pattern(4000) } }, auth);
    expect(res.body.errors).toEqual([
      expect.objectContaining({
        message: "The query took too long and was cancelled; ask for less (smaller pages, narrower filters).",
        extensions: { code: "QUERY_TIMEOUT" },
      }),
    ]);
    expect(JSON.stringify(res.body)).not.toMatch(/statement timeout|canceling|prompt/);
    // the server keeps serving
    const after = await postGraphQL(slow.url, { query: "{ currentUser { id } }" }, auth);
    expect(after.body.data.currentUser.id).toBe(attacker.userId);
  } finally {
    await slow.close();
  }
});

/** Statements of this database that are running a prompt search right now. */
async function runningSearches(): Promise<number> {
  const { rows } = await db.root.query(
    `select count(*)::int as n from pg_stat_activity
     where datname = current_database() and state = 'active' and pid <> pg_backend_pid() and query like '%''prompt''%'`,
  );
  return rows[0].n;
}

async function waitFor(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return check();
}

test("a client that hangs up has its running query cancelled (pg_stat_activity shows it gone)", async () => {
  const patient = await startServer(db, { limits: { statementTimeoutMs: 600_000, promptSearchMaxLength: 100_000 } });
  try {
    expect(await runningSearches()).toBe(0);
    // A raw HTTP request whose socket is destroyed: exactly a client hanging up.
    const body = JSON.stringify({ query: search, variables: { org: orgId, q: pattern(60_000) } });
    const request = http.request(`${patient.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json", "content-length": Buffer.byteLength(body), ...auth },
    });
    const closed = new Promise((resolve) => request.on("close", resolve));
    request.on("error", () => {});
    request.end(body);
    expect(await waitFor(async () => (await runningSearches()) === 1, 30_000)).toBe(true);
    request.destroy();
    await closed;
    // Unbounded, this search runs for minutes; cancelled, it is gone at once.
    expect(await waitFor(async () => (await runningSearches()) === 0, 10_000)).toBe(true);
  } finally {
    // (if it was not cancelled, stop it here, or closing the server would wait for it)
    await db.root.query(
      "select pg_cancel_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and query like '%''prompt''%'",
    );
    await patient.close();
  }
}, 120_000);

test("another tenant is still served while the attacker sends 11 concurrent 2,000-character searches", async () => {
  const victim = await createUser(db, "Victim");
  await createOrganization(db, victim, "Victim Org");
  // As reported: 11 concurrent searches held every connection of the pool (10), and another
  // tenant's `{ currentUser { id } }` waited 16 s.
  const report = await measureOtherTenantServed({
    url: server.url,
    victimToken: tokenFor(victim),
    attack: () => postGraphQL(server.url, { query: search, variables: { org: orgId, q: pattern(2000) } }, auth),
    attackers: 11,
  });
  expectOtherTenantServed(report);
  for (const result of report.attackResults as { body: any }[]) expect(result.body.errors[0].extensions.code).toBe("INVALID_SEARCH");
});
