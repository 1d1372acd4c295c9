// verifyEmail, resendVerificationEmail, emailVerified (own only) and the rule of what needs a
// verified address (require_verified_email, one setting).

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { addMember, createOrganization, createUser } from "../../helpers/fixtures.ts";
import { codeOf, registerInSql, token } from "../../helpers/sql-accounts.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

test("emailVerified is false, then true after verifyEmail; others see null for it", async () => {
  const u = await registerInSql(db);
  const peer = await createUser(db);
  const org = await createOrganization(db, peer);
  await addMember(db, org.id, u);
  const status = async (actor: any) =>
    (await db.queryAs(actor, "select app_public.users_email_verified(u) as v from app_public.users u where id = $1", [u.userId])).rows[0]?.v;
  expect(await status(u)).toBe(false);
  expect(await status(peer)).toBeNull();
  await db.queryAs(null, "select app_public.verify_email($1)", [await token(db, "verify_email", u.userId)]);
  expect(await status(u)).toBe(true);
  expect(await status(peer)).toBeNull();
  expect(await codeOf(db.queryAs(u, "select app_public.resend_verification_email()"))).toBe("EMAIL_ALREADY_VERIFIED");
});

test("resend: signed-in only; a link for an address the account no longer has proves nothing", async () => {
  const u = await registerInSql(db);
  expect(await codeOf(db.queryAs(null, "select app_public.resend_verification_email()"))).toBe("NOT_AUTHENTICATED");
  expect(await codeOf(db.queryAs(u, "select app_public.resend_verification_email()"))).toBeNull();
  const t = await token(db, "verify_email", u.userId);
  await db.owner.query("update app_public.users set email = 'elsewhere-' || id || '@example.com' where id = $1", [u.userId]);
  expect(await codeOf(db.queryAs(null, "select app_public.verify_email($1)", [t]))).toBe("TOKEN_INVALID");
});

test("require_verified_email: invitations and api_keys by default, organizations when set, nothing for verified users", async () => {
  const u = await registerInSql(db);
  const need = (feature: string) => codeOf(db.queryAs(u, "select app_hidden.require_verified_email($1)", [feature]));
  expect(await need("invitations")).toBe("EMAIL_NOT_VERIFIED");
  expect(await need("api_keys")).toBe("EMAIL_NOT_VERIFIED");
  expect(await need("organizations")).toBeNull();
  expect(await codeOf(db.queryAs(u, "select * from app_public.my_pending_invitations()"))).toBe("EMAIL_NOT_VERIFIED");
  await db.owner.query("update app_private.account_settings set verified_email_required_for = '{}'");
  expect(await need("invitations")).toBeNull();
  await db.owner.query("update app_private.account_settings set verified_email_required_for = '{invitations,api_keys,organizations}'");
  expect(await codeOf(db.queryAs(u, "select app_public.create_organization('X')"))).toBe("EMAIL_NOT_VERIFIED");
  await db.owner.query("update app_public.users set email_verified_at = now() where id = $1", [u.userId]);
  expect(await need("organizations")).toBeNull();
  await db.owner.query("update app_private.account_settings set verified_email_required_for = '{invitations,api_keys}'");
});
