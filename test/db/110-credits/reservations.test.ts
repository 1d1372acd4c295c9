// Reservations (db/functions/110-credits/reservations.sql): idempotent reserve and settle, the
// soonest-expiring grants held and spent first, expiry at expires_at, and the generation that
// fails with its expired reservation.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createOrganization, createUser } from "../../helpers/fixtures.ts";
import { codeOf } from "../../helpers/codes.ts";
import { creditHelpers } from "../../helpers/credits.ts";
import { generationHelpers } from "../../helpers/generations.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const { account, ledgerCount, expectConsistent, emptyOrganization, reserve, capture, release } = creditHelpers(() => db);
const { project, start, complete } = generationHelpers(() => db);

test("idempotency: a repeated call returns the first result and writes nothing", async () => {
  const { org, owner } = await emptyOrganization();
  await db.owner.query("select app_private.grant_credits($1, 10, 'purchase', null, null)", [org.id]);
  const first = await reserve(owner, org.id, 4, "same-key");
  const n = await ledgerCount(org.id);
  const again = await reserve(owner, org.id, 4, "same-key");
  expect(again.id).toBe(first.id);
  expect(await ledgerCount(org.id)).toBe(n);
  expect(await account(org.id)).toEqual({ available: 6, reserved: 4 });
  expect(await codeOf(reserve(owner, org.id, 5, "same-key"))).toBe("IDEMPOTENCY_KEY_REUSED");
  const c1 = await capture(owner, first.id, 3, "capture-key");
  const c2 = await capture(owner, first.id, 3, "capture-key");
  expect(c2).toEqual(c1);
  expect(await ledgerCount(org.id)).toBe(n + 2); // capture + release of the rest, once
  expect(await codeOf(capture(owner, first.id, 2, "capture-key"))).toBe("IDEMPOTENCY_KEY_REUSED");
  expect(await codeOf(release(owner, first.id, "capture-key"))).toBe("IDEMPOTENCY_KEY_REUSED");
  // a reserve replayed after its capture still returns the reservation, now captured
  expect((await reserve(owner, org.id, 4, "same-key")).status).toBe("captured");
  const r = await reserve(owner, org.id, 2, "other");
  expect((await release(owner, r.id, "release-key")).status).toBe("released");
  expect((await release(owner, r.id, "release-key")).status).toBe("released");
  expect(await account(org.id)).toEqual({ available: 7, reserved: 0 });
  await expectConsistent();
});

test("spending takes the soonest-expiring grant first; expiry removes what is left with its own entry", async () => {
  const { org, owner } = await emptyOrganization();
  const grant = async (amount: number, expires: string | null, key: string) =>
    (await db.owner.query(`select grant_id from app_private.grant_credits($1, $2, 'manual', ${expires ?? "null"}, $3)`, [org.id, amount, key])).rows[0].grant_id;
  const never = await grant(10, null, "never");
  const later = await grant(10, "now() + interval '10 days'", "later");
  const soon = await grant(10, "now() + interval '1 day'", "soon");
  const remaining = async () => {
    const { rows } = await db.owner.query("select id, remaining::int from app_public.credit_grants where organization_id = $1 and source = 'manual'", [org.id]);
    return Object.fromEntries(rows.map((r) => [r.id, r.remaining]));
  };
  const r1 = await reserve(owner, org.id, 15, "a");
  expect(await remaining()).toEqual({ [never]: 10, [later]: 5, [soon]: 0 });
  await capture(owner, r1.id, 7); // 7 of the soon grant consumed, 3 back to it, 5 back to later
  expect(await remaining()).toEqual({ [never]: 10, [later]: 10, [soon]: 3 });

  // the "soon" grant expires: the job removes its 3 credits with an 'expire' entry, once
  await db.owner.query("update app_public.credit_grants set expires_at = now() - interval '1 second' where id = $1", [soon]);
  expect((await db.owner.query("select app_private.expire_grants($1) as n", [org.id])).rows[0].n).toBe(1);
  expect((await db.owner.query("select app_private.expire_grants($1) as n", [org.id])).rows[0].n).toBe(0);
  expect(await account(org.id)).toEqual({ available: 20, reserved: 0 });
  const { rows } = await db.owner.query("select kind, amount::int, source from app_public.credit_ledger where grant_id = $1 order by seq", [soon]);
  expect(rows).toEqual([{ kind: "grant", amount: 10, source: "manual" }, { kind: "expire", amount: -3, source: "grant_expired" }]);

  // credits reserved from a grant that expires meanwhile expire when they come back
  const r2 = await reserve(owner, org.id, 12, "b"); // 10 from later, 2 from never
  await db.owner.query("update app_public.credit_grants set expires_at = now() - interval '1 second' where id = $1", [later]);
  await release(owner, r2.id);
  expect(await account(org.id)).toEqual({ available: 10, reserved: 0 });
  expect(await remaining()).toEqual({ [never]: 10, [later]: 0, [soon]: 0 });
  // a reserve never spends an expired grant, even before the job ran
  await grant(5, "now() + interval '1 hour'", "c");
  await db.owner.query("update app_public.credit_grants set expires_at = now() - interval '1 second' where organization_id = $1 and remaining = 5", [org.id]);
  expect(await codeOf(reserve(owner, org.id, 11, "d"))).toBe("INSUFFICIENT_CREDITS");
  await reserve(owner, org.id, 10, "e");
  expect(await account(org.id)).toEqual({ available: 0, reserved: 10 });
  await expectConsistent();
});

test("an expired reservation cannot be captured; the expiry releases it once", async () => {
  const { org, owner } = await emptyOrganization();
  await db.owner.query("select app_private.grant_credits($1, 10, 'purchase', null, null)", [org.id]);
  const r = await reserve(owner, org.id, 6, "x", 60);
  // the expiry job was queued for expires_at with a job key
  const job = await db.owner.query("select run_at, key from graphile_worker.jobs where key = $1", [`credits:expire-reservation:${r.id}`]);
  expect(job.rows[0].run_at.getTime()).toBe(r.expires_at.getTime());
  // before expiry the job does nothing
  expect((await db.owner.query("select app_private.expire_reservation($1, $2) as done", [org.id, r.id])).rows[0].done).toBe(false);
  await db.owner.query("update app_public.credit_reservations set expires_at = now() - interval '1 second' where id = $1", [r.id]);
  expect(await codeOf(capture(owner, r.id))).toBe("RESERVATION_EXPIRED");
  expect((await db.owner.query("select app_private.expire_reservation($1, $2) as done", [org.id, r.id])).rows[0].done).toBe(true);
  expect((await db.owner.query("select app_private.expire_reservation($1, $2) as done", [org.id, r.id])).rows[0].done).toBe(false);
  expect(await account(org.id)).toEqual({ available: 10, reserved: 0 });
  expect(await codeOf(capture(owner, r.id))).toBe("RESERVATION_EXPIRED");
  expect(await codeOf(release(owner, r.id))).toBe("RESERVATION_ALREADY_SETTLED");
  const status = await db.owner.query("select status from app_public.credit_reservations where id = $1", [r.id]);
  expect(status.rows[0].status).toBe("expired");
  await expectConsistent();
});

test("when its reservation expires, a running generation fails and cannot be completed", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner);
  const p = await project(owner, org.id);
  const g = await start(owner, org.id, p, 10, "slow");
  await db.owner.query("update app_public.credit_reservations set expires_at = now() - interval '1 second' where id = $1", [g.reservation_id]);
  expect(await codeOf(complete(owner, g.id, 3))).toBe("RESERVATION_EXPIRED");
  await db.owner.query("select app_private.expire_reservation($1, $2)", [org.id, g.reservation_id]);
  const { rows } = await db.owner.query("select status, credits_charged::int, error from app_public.generations where id = $1", [g.id]);
  expect(rows[0]).toMatchObject({ status: "failed", credits_charged: 0 });
  expect(rows[0].error).toMatch(/expired/);
  expect(await codeOf(complete(owner, g.id, 3))).toBe("GENERATION_ALREADY_FINISHED");
  expect(await account(org.id)).toEqual({ available: 100, reserved: 0 });
  await expectConsistent();
});

test("a captured or released reservation takes its expiry job out of the shared queue in the same transaction", async () => {
  const { org, owner } = await emptyOrganization();
  await db.owner.query("select app_private.grant_credits($1, 100, 'purchase', null, null)", [org.id]);
  const queued = async () =>
    Number((await db.owner.query(`select count(*) from graphile_worker.jobs
       where key in (select 'credits:expire-reservation:' || r.id from app_public.credit_reservations r where r.organization_id = $1)`, [org.id])).rows[0].count);
  const pairs: { id: string }[] = [];
  for (let i = 0; i < 20; i++) pairs.push(await reserve(owner, org.id, 1, `pair-${i}`));
  expect(await queued()).toBe(20);
  for (const r of pairs.slice(0, 10)) await release(owner, r.id);
  for (const r of pairs.slice(10, 19)) await capture(owner, r.id, 1);
  expect(await queued()).toBe(1); // only the open one keeps its job
  const { rows } = await db.owner.query("select key from graphile_worker.jobs where key like 'credits:expire-reservation:%' and key = any($1)", [
    pairs.map((r) => `credits:expire-reservation:${r.id}`),
  ]);
  expect(rows).toEqual([{ key: `credits:expire-reservation:${pairs[19].id}` }]);

  // a settlement that rolls back keeps the job
  await db.as(owner, async (client) => {
    await client.query("savepoint s");
    await client.query("select * from app_public.release_credits($1, null)", [pairs[19].id]);
    await client.query("rollback to savepoint s");
  });
  expect(await queued()).toBe(1);

  // generations: completing or failing one removes its reservation's job too
  const p = await project(owner, org.id);
  const g1 = await start(owner, org.id, p, 5, "job-g1");
  const g2 = await start(owner, org.id, p, 5, "job-g2");
  expect(await queued()).toBe(3);
  await complete(owner, g1.id, 3);
  await db.queryAs(owner, "select app_public.fail_generation($1, 'x')", [g2.id]);
  expect(await queued()).toBe(1);
  await expectConsistent();
});
