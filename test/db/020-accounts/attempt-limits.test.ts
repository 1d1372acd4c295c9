// app_hidden.check_attempt and the limits behind it (db/functions/020-accounts/attempt-limits.sql):
// hard limits per client address, per (address, account) pair and per user, with retryAfter;
// the account alone only slowed down (turns in arrival order, one per address, a bounded delay);
// addresses that signed in are known and not slowed down; forgotPassword's mail rate; subjects
// hashed; concurrent attempts counted exactly.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createUser } from "../../helpers/fixtures.ts";
import { codeOf } from "../../helpers/sql-accounts.ts";

let db: TestDatabase;
const LIMITS = {
  authenticate: {
    email: { max: 3, seconds: 60, maxDelay: 8 },
    pair: { max: 4, seconds: 60 },
    address: { max: 6, seconds: 60 },
  },
  change_email: { user: { max: 2, seconds: 60 } },
  forgot_password: { email: { max: 1, seconds: 600 }, address: { max: 50, seconds: 600 } },
};
beforeAll(async () => {
  db = await createTestDatabase();
  await db.owner.query("update app_private.account_settings set attempt_limits = $1", [JSON.stringify(LIMITS)]);
});
afterAll(() => db?.drop());
beforeEach(() => db.owner.query("delete from app_private.attempt_counters"));

/** check_attempt from a client address: 0 (go) or seconds to wait; a hard limit rejects. */
const check = (email: string, address: string | null = "192.0.2.1", action = "authenticate") =>
  db.as(null, async (c) => {
    if (address) await c.query("select set_config('tenantbase.client_address', $1, true)", [address]);
    const { rows } = await c.query("select app_hidden.check_attempt($1, $2) as wait", [action, email]);
    return rows[0].wait as number;
  });

/** The error a rejected check carried: code and retryAfter. */
async function refusal(promise: Promise<unknown>): Promise<{ code: string; retryAfter: number }> {
  try {
    await promise;
  } catch (e: any) {
    return { code: e.detail, retryAfter: JSON.parse(e.hint).retryAfter };
  }
  throw new Error("expected a refusal");
}

/** Moves every turn and the account's queue back by `seconds` (instead of waiting). */
const later = (seconds: number) =>
  db.owner.query(
    `update app_private.attempt_counters set
       window_started_at = case when scope = 'ticket' then window_started_at - make_interval(secs => $1) else window_started_at end,
       next_turn_at = next_turn_at - make_interval(secs => $1)`,
    [seconds],
  );

/** What a successful authenticate does (sessions.sql), from a client address. */
const signedIn = (email: string, address: string) =>
  db.owner.query("select app_private.note_sign_in($1) from (select set_config('tenantbase.client_address', $2, true)) s", [email, address]);

/** Seconds between consecutive turns given (ticket times, in order). */
async function turnSpacing(): Promise<number[]> {
  const { rows } = await db.owner.query(
    `select extract(epoch from window_started_at - lag(window_started_at) over (order by window_started_at))::float8 as gap
     from app_private.attempt_counters where scope = 'ticket' order by window_started_at`,
  );
  return rows.slice(1).map((r) => Math.round(r.gap * 1000) / 1000);
}

test("per (address, account): the (max+1)th attempt is refused until the window ends; other addresses are not", async () => {
  const victim = "pair@example.com";
  for (let i = 0; i < 3; i++) expect(await check(i === 1 ? "PAIR@example.com" : victim, "198.51.100.1")).toBe(0);
  // the 4th from this address: the account's free attempts are used up, but its queue is empty
  expect(await check(victim, "198.51.100.1")).toBe(0);
  const r = await refusal(check(victim, "198.51.100.1"));
  expect(r.code).toBe("TOO_MANY_ATTEMPTS");
  expect(r.retryAfter).toBeGreaterThan(8);
  expect(r.retryAfter).toBeLessThanOrEqual(60);
  // the owner, elsewhere, is only asked to wait a few seconds, then gets through
  const wait = await check(victim, "203.0.113.5");
  expect(wait).toBeGreaterThan(0);
  expect(wait).toBeLessThanOrEqual(8);
  await later(wait);
  expect(await check(victim, "203.0.113.5")).toBe(0);
});

test("per client address, across accounts", async () => {
  for (let i = 0; i < 6; i++) expect(await check(`x${i}@example.com`, "198.51.100.7")).toBe(0);
  expect(await codeOf(check("y@example.com", "198.51.100.7"))).toBe("TOO_MANY_ATTEMPTS");
  expect(await codeOf(check("y@example.com", "198.51.100.8"))).toBeNull();
});

test("the account alone is slowed down, never locked: turns in arrival order, one per address, delays doubling up to maxDelay", async () => {
  const email = "slow@example.com";
  // 3 free attempts from 3 addresses, then one more runs at once (the queue is empty)
  for (let i = 0; i < 4; i++) expect(await check(email, `192.0.2.${10 + i}`)).toBe(0);
  // from here on, each new address is given a turn after the last one
  const waits: number[] = [];
  for (let i = 0; i < 5; i++) waits.push(await check(email, `192.0.2.${20 + i}`));
  for (let i = 1; i < waits.length; i++) expect(waits[i]).toBeGreaterThan(waits[i - 1]);
  // the spacing of the turns: 2, 4, 8, then maxDelay (8)
  expect(await turnSpacing()).toEqual([2, 4, 8, 8]);
  // asking again before its turn: the same turn, nothing moves
  expect(await check(email, "192.0.2.21")).toBeLessThanOrEqual(waits[1]);
  expect(await turnSpacing()).toEqual([2, 4, 8, 8]);
  // the turn comes: that address runs; one whose turn came and went long ago (60 s) starts over
  await later(waits[1]);
  expect(await check(email, "192.0.2.21")).toBe(0);
  expect(await check(email, "192.0.2.21")).toBeGreaterThan(0); // a new turn at the end of the queue
  // a turn not used within 60 s is dropped: the address starts over (here the queue has drained
  // meanwhile, so it runs at once)
  await later(120);
  expect(await check(email, "192.0.2.20")).toBe(0);
});

test("the window ends: the account's slow-down starts over", async () => {
  const email = "window@example.com";
  for (let i = 0; i < 4; i++) await check(email, `192.0.2.${30 + i}`);
  expect(await check(email, "192.0.2.40")).toBeGreaterThan(0);
  await db.owner.query("update app_private.attempt_counters set window_started_at = now() - interval '61 seconds' where scope = 'email'");
  expect(await check(email, "192.0.2.41")).toBe(0);
});

test("an address that signed in to the account is known: never slowed down, while others wait", async () => {
  const user = await createUser(db);
  const { rows } = await db.owner.query("select email from app_public.users where id = $1", [user.userId]);
  const email = rows[0].email as string;
  await signedIn(email, "198.51.100.200");
  for (let i = 0; i < 4; i++) await check(email, `192.0.2.${50 + i}`);
  expect(await check(email, "192.0.2.60")).toBeGreaterThan(0);
  expect(await check(email, "198.51.100.200")).toBe(0);
  expect(await check(email, "198.51.100.200")).toBe(0);
  // after 30 days it is a stranger again
  await db.owner.query("update app_private.attempt_counters set window_started_at = now() - interval '31 days' where scope = 'known'");
  expect(await check(email, "198.51.100.200")).toBeGreaterThan(0);
});

test("a signed-in success forgets the address's failures on the account (not the account's slow-down)", async () => {
  const email = "forget@example.com";
  for (let i = 0; i < 4; i++) expect(await check(email, "198.51.100.30")).toBe(0);
  await signedIn(email, "198.51.100.30");
  const { rows } = await db.owner.query("select scope, attempts from app_private.attempt_counters where action = 'authenticate' order by scope");
  expect(rows.map((r) => r.scope)).toEqual(["address", "email", "known"]);
});

test("per user, for signed-in actions; unlimited actions and scopes are not counted", async () => {
  const user = await createUser(db);
  for (let i = 0; i < 2; i++) await db.queryAs(user, "select app_hidden.check_attempt('change_email', null)");
  expect(await codeOf(db.queryAs(user, "select app_hidden.check_attempt('change_email', null)"))).toBe("TOO_MANY_ATTEMPTS");
  for (let i = 0; i < 10; i++) await db.queryAs(user, "select app_hidden.check_attempt('resend_verification_email', null)");
  await expect(db.queryAs(null, "select app_hidden.check_attempt('no_such_action', null)")).rejects.toThrow(/unknown attempt action/);
});

test("forgotPassword: requests from anyone never refused per account; one reset mail per address per window", async () => {
  const mails = async (email: string) => {
    const { rows } = await db.owner.query(
      `select count(*)::int as n from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
       where t.identifier = 'send_account_email' and j.payload->>'email' = $1`,
      [email],
    );
    return rows[0].n as number;
  };
  const email = "reset-rate@example.com";
  for (let i = 0; i < 10; i++) {
    expect(await check(email, `192.0.2.${100 + i}`, "forgot_password")).toBe(0);
    await db.queryAs(null, "select app_public.forgot_password($1)", [email]);
  }
  expect(await mails(email)).toBe(1);
  // the window passes: the next request queues a mail again
  await db.owner.query("delete from graphile_worker._private_jobs");
  await db.owner.query("update app_private.attempt_counters set window_started_at = now() - interval '601 seconds' where scope = 'mail'");
  await db.queryAs(null, "select app_public.forgot_password($1)", [email]);
  expect(await mails(email)).toBe(1);
});

test("30 concurrent attempts on one account from 30 addresses: max + 1 run now, each other one gets its own turn", async () => {
  const results = await Promise.all(Array.from({ length: 30 }, (_, i) => check("race@example.com", `203.0.113.${i}`)));
  expect(results.filter((r) => r === 0)).toHaveLength(4);
  expect(results.filter((r) => r > 0)).toHaveLength(26);
  // 26 turns, no two at once, spaced 2, 4, then maxDelay (8) seconds
  expect(await turnSpacing()).toEqual([2, 4, ...Array(23).fill(8)]);
});

test("the previous entry point count_attempt refuses at once; subjects are SHA-256 digests; app roles cannot read the counters", async () => {
  for (let i = 0; i < 4; i++) await db.queryAs(null, "select app_hidden.count_attempt('authenticate', 'compat@example.com')");
  expect(await codeOf(db.queryAs(null, "select app_hidden.count_attempt('authenticate', 'compat@example.com')"))).toBe("TOO_MANY_ATTEMPTS");
  await check("digest@example.com");
  const { rows } = await db.owner.query("select subject from app_private.attempt_counters");
  for (const r of rows) expect(r.subject).toMatch(/^[0-9a-f]{64}$/);
  await expect(db.queryAs(null, "select * from app_private.attempt_counters")).rejects.toThrow(/permission denied/);
});
