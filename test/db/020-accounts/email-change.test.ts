// changeEmail and apply_email_change: password required, address validated and free, the change
// applied only through the link, the old address told, old links void.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { codeOf, registerInSql, token } from "../../helpers/sql-accounts.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

test("refusals, then the change on verification", async () => {
  const u = await registerInSql(db);
  const other = await registerInSql(db);
  const change = (email: string, password: string, actor: any = u) => codeOf(db.queryAs(actor, "select app_public.change_email($1, $2)", [email, password]));
  expect(await change("new@example.com", "pw", null)).toBe("NOT_AUTHENTICATED");
  expect(await change("new@example.com", "wrong password")).toBe("WRONG_PASSWORD");
  expect(await change("not an address", u.password)).toBe("INVALID_EMAIL");
  expect(await change(other.email, u.password)).toBe("EMAIL_TAKEN");
  expect(await change(u.email.toUpperCase(), u.password)).toBe("EMAIL_UNCHANGED");
  expect(await change("New@Example.com", u.password)).toBeNull();
  const oldVerify = await token(db, "verify_email", u.userId);
  const t = await token(db, "change_email", u.userId, "New@Example.com");
  expect((await db.owner.query("select email from app_public.users where id = $1", [u.userId])).rows[0].email).toBe(u.email);
  await db.queryAs(null, "select app_public.verify_email($1)", [t]);
  const { rows } = await db.owner.query("select email, email_verified_at is not null as v from app_public.users where id = $1", [u.userId]);
  expect(rows[0]).toEqual({ email: "new@example.com", v: true });
  expect(await codeOf(db.queryAs(null, "select app_public.verify_email($1)", [oldVerify]))).toBe("TOKEN_INVALID");
  const notice = await db.owner.query(
    `select j.payload from graphile_worker._private_jobs j join graphile_worker._private_tasks k on k.id = j.task_id
     where k.identifier = 'send_account_email' and j.payload->>'kind' = 'email_changed' and j.payload->>'userId' = $1`,
    [u.userId],
  );
  expect(notice.rows[0].payload).toMatchObject({ oldEmail: u.email, newEmail: "new@example.com" });
});
