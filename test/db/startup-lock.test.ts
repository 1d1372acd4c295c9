// The start-up lock (db/startup-lock.ts) and the races it removes: many processes creating the
// same database and roles at once all succeed, exactly one creates; a process waiting for the
// lock logs it, goes on when it is released, and gives up with a clear error past its limit.

import pg from "pg";
import { randomBytes } from "node:crypto";
import { ensureDatabase, ensureRoles } from "../../db/roles.ts";
import { STARTUP_LOCKS, StartupLockTimeout, withStartupLock } from "../../db/startup-lock.ts";

const rootUrl = () => process.env.TB_TEST_ROOT_URL!;
const passwords = () => ({
  ownerPassword: process.env.TB_TEST_OWNER_PASSWORD!,
  authenticatorPassword: process.env.TB_TEST_AUTHENTICATOR_PASSWORD!,
});

test("12 processes creating the same database and roles at once: all succeed, exactly one creates", async () => {
  const name = `tb_race_${randomBytes(4).toString("hex")}`;
  try {
    const results = await Promise.all(
      Array.from({ length: 12 }, async () => {
        await ensureRoles(rootUrl(), passwords(), { timeoutMs: 60_000 });
        return ensureDatabase(rootUrl(), name, { timeoutMs: 60_000 });
      }),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
  } finally {
    const admin = new pg.Client({ connectionString: rootUrl() });
    await admin.connect();
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.end();
  }
});

test("a process waits for the lock, logs it, and goes on when it is released; past the limit it gives up", async () => {
  // A private lock name, so that nothing else in the run is held up.
  const name = `${STARTUP_LOCKS.schema}:test:${randomBytes(4).toString("hex")}`;
  const holder = new pg.Client({ connectionString: rootUrl() });
  await holder.connect();
  try {
    await holder.query("select pg_advisory_lock(hashtext($1))", [name]);

    const lines: string[] = [];
    const timedOut = withStartupLock(rootUrl(), name, "migrating the database", { timeoutMs: 300, log: (l) => lines.push(l) }, async () => "ran");
    await expect(timedOut).rejects.toBeInstanceOf(StartupLockTimeout);
    await expect(timedOut).rejects.toThrow(/gave up after 300 ms waiting for another process to finish migrating the database \(raise STARTUP_LOCK_TIMEOUT_MS/);
    expect(lines).toEqual([expect.stringMatching(/^waiting for another process to finish migrating the database \(up to 300 ms/)]);

    const waited: string[] = [];
    const waiting = withStartupLock(rootUrl(), name, "migrating the database", { timeoutMs: 30_000, log: (l) => waited.push(l) }, async () => "ran");
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(waited).toHaveLength(1); // still waiting
    await holder.query("select pg_advisory_unlock(hashtext($1))", [name]);
    await expect(waiting).resolves.toBe("ran");
    expect(waited[1]).toMatch(/^another process finished migrating the database after \d+ ms; going on$/);

    // Released afterwards: the lock is free again.
    const { rows } = await holder.query("select pg_try_advisory_lock(hashtext($1)) as got", [name]);
    expect(rows[0].got).toBe(true);
  } finally {
    await holder.end();
  }
});
