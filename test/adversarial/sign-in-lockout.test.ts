// Locking someone else out of their account (issue 25, A2), over real HTTP with the default
// limits. Before the fix, 10 wrong `authenticate` calls for the victim's email from another
// address made the victim's correct password answer TOO_MANY_ATTEMPTS for 15 minutes, and 5
// `forgotPassword(victim)` calls stopped the victim's own reset for an hour. Now failures lock
// only the address that made them (per address, per address and account); the account alone is
// slowed down by turns of a few seconds (db/functions/020-accounts/attempt-limits.sql); an
// address that signed in before is not slowed down; reset mails are rate-bounded per address,
// never refused to the owner.
//
// Two client addresses, the supported way: the server runs behind one trusted proxy
// (TRUST_PROXY=1) and each request carries the X-Forwarded-For that proxy would add. Time is
// moved in the database (turns and windows set back), never waited for.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { register, uniqueEmail } from "../helpers/accounts.ts";
import { accountsConfig } from "../../core/config.ts";

let db: TestDatabase;
let server: TestServer;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db, { accounts: accountsConfig({ TRUST_PROXY: "1" }) });
  // the shipped defaults, whatever the environment of the test run says
  await db.owner.query("update app_private.account_settings set attempt_limits = $1", [
    JSON.stringify(accountsConfig({}).attemptLimits),
  ]);
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});
afterEach(() => db.owner.query("delete from app_private.attempt_counters"));

const AUTH = `mutation($e: String!, $p: String!) { authenticate(input: {email: $e, password: $p}) { jwtToken } }`;
const FORGOT = `mutation($e: String!) { forgotPassword(input: {email: $e}) { success } }`;

interface Answer {
  data?: any;
  errors?: { extensions?: { code?: string; retryAfter?: number } }[];
}

/** A GraphQL request from a client address (the X-Forwarded-For entry our trusted proxy adds). */
async function from(address: string, query: string, variables: Record<string, unknown>): Promise<Answer> {
  const response = await fetch(`${server.url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-forwarded-for": address },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as Answer;
}

const code = (r: Answer) => r.errors?.[0]?.extensions?.code ?? null;

/** Sets every turn and queue back by `seconds`, as if that time had passed. */
async function timePasses(seconds: number) {
  await db.owner.query(
    `update app_private.attempt_counters set
       window_started_at = case when scope = 'ticket' then window_started_at - make_interval(secs => $1) else window_started_at end,
       next_turn_at = next_turn_at - make_interval(secs => $1)`,
    [seconds],
  );
}

/**
 * The owner signing in from `address` the way a person would: when told to wait, waits the
 * retryAfter (moved in the database) and tries again. Returns the answers' waits.
 */
async function ownerSignsIn(address: string, email: string, password: string): Promise<number[]> {
  const waits: number[] = [];
  for (let i = 0; i < 5; i++) {
    const r = await from(address, AUTH, { e: email, p: password });
    if (r.data?.authenticate?.jwtToken) return waits;
    expect(code(r)).toBe("TOO_MANY_ATTEMPTS");
    const wait = r.errors![0].extensions!.retryAfter!;
    waits.push(wait);
    await timePasses(wait);
  }
  throw new Error(`the owner could not sign in; waits: ${waits.join(", ")}`);
}

test("10 wrong passwords for the victim from another address: the victim's right password still signs in", async () => {
  const victim = await register(server);
  for (let i = 0; i < 10; i++) expect(code(await from("203.0.113.66", AUTH, { e: victim.email, p: `guess ${i}` }))).toBe("INVALID_CREDENTIALS");
  // the attacker's address is now locked out of this account (and only that)
  const more = await from("203.0.113.66", AUTH, { e: victim.email, p: "guess 10" });
  expect(code(more)).toBe("TOO_MANY_ATTEMPTS");
  expect(more.errors![0].extensions!.retryAfter).toBeGreaterThan(60);
  // the victim, from their own address, signs in at once
  const r = await from("198.51.100.10", AUTH, { e: victim.email, p: victim.password });
  expect(code(r)).toBeNull();
  expect(r.data.authenticate.jwtToken).toBeTruthy();
});

test("an attacker hammering from many addresses: the owner from a fresh address waits seconds, not 15 minutes; from a known address not at all", async () => {
  const victim = await register(server);
  const home = "198.51.100.20";
  expect((await from(home, AUTH, { e: victim.email, p: victim.password })).data.authenticate.jwtToken).toBeTruthy();
  // 8 attacking addresses, 12 requests each: every one of them is told to wait or refused
  const attackers = Array.from({ length: 8 }, (_, i) => `203.0.113.${100 + i}`);
  const seen = new Set<string | null>();
  for (let round = 0; round < 12; round++) {
    for (const address of attackers) seen.add(code(await from(address, AUTH, { e: victim.email, p: `guess ${round}` })));
  }
  expect([...seen].sort()).toEqual(["INVALID_CREDENTIALS", "TOO_MANY_ATTEMPTS"]);
  // the account was slowed down: far fewer guesses were checked than were sent (96)
  const { rows } = await db.owner.query(
    "select attempts from app_private.attempt_counters where action = 'authenticate' and scope = 'email'",
  );
  expect(rows[0].attempts).toBeLessThan(40);

  // from home (signed in there before): at once
  expect((await from(home, AUTH, { e: victim.email, p: victim.password })).data.authenticate.jwtToken).toBeTruthy();
  // from a fresh address: after at most one turn per attacking address, each at most 30 s apart
  const waits = await ownerSignsIn("192.0.2.77", victim.email, victim.password);
  for (const wait of waits) expect(wait).toBeLessThanOrEqual((attackers.length + 1) * 30);
  expect(waits).toHaveLength(1); // told to wait once (the attackers' turns came first), then in
});

test("forgotPassword(victim) from another address never stops the victim's reset mail", async () => {
  const victim = await register(server);
  const resetMails = async () => {
    const { rows } = await db.owner.query(
      `select count(*)::int as n from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
       where t.identifier = 'send_account_email' and j.payload->>'kind' = 'reset_password' and j.payload->>'email' = $1`,
      [victim.email],
    );
    return rows[0].n as number;
  };
  // the attacker asks until its address is refused (20 an hour)
  const answers: (string | null)[] = [];
  for (let i = 0; i < 25; i++) answers.push(code(await from("203.0.113.66", FORGOT, { e: victim.email })));
  expect(answers.filter((c) => c === null)).toHaveLength(20);
  expect(answers.filter((c) => c === "TOO_MANY_ATTEMPTS")).toHaveLength(5);
  // the victim asks: answered as always, never refused
  const mine = await from("198.51.100.10", FORGOT, { e: victim.email });
  expect(code(mine)).toBeNull();
  expect(mine.data.forgotPassword.success).toBe(true);
  // one mail went out in these 10 minutes, to the victim's own inbox, whoever asked
  expect(await resetMails()).toBe(1);
  // 10 minutes later (the attacker still asking from other addresses), the victim's request mails again
  await db.owner.query("delete from graphile_worker._private_jobs");
  await db.owner.query("update app_private.attempt_counters set window_started_at = now() - interval '601 seconds' where scope = 'mail'");
  for (let i = 0; i < 5; i++) await from(`203.0.113.${200 + i}`, FORGOT, { e: uniqueEmail("other") });
  expect(code(await from("198.51.100.10", FORGOT, { e: victim.email }))).toBeNull();
  expect(await resetMails()).toBe(1);
});
