// The linking rules of app_private.sign_in_with_identity (identity-linking.sql), one test per row
// of its table: identities keyed by (issuer, subject); an email leads to an existing account only
// when the provider verified it and so did the account, and an unverified account loses what its
// registrant had before it is linked.

import { randomBytes } from "node:crypto";
import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createUser } from "../../helpers/fixtures.ts";
import { codeOf, registerInSql, token } from "../../helpers/sql-accounts.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const ISSUER = "https://issuer.example.com";
const sub = () => `sub-${randomBytes(6).toString("hex")}`;
const email = (label = "p") => `${label}-${randomBytes(5).toString("hex")}@example.com`;

async function signInWith(subject: string, address: string | null, verified: boolean, linkUserId: string | null = null, issuer = ISSUER) {
  const { rows } = await db.owner.query(
    "select app_private.sign_in_with_identity('google', $1, $2, $3, $4, 'Ada Lovelace', $5) as id",
    [issuer, subject, address, verified, linkUserId],
  );
  return rows[0].id as string;
}
const ownerOf = async (identityId: string) =>
  (await db.owner.query("select user_id from app_private.identities where id = $1", [identityId])).rows[0]?.user_id;

test("a new identity with a verified email no account has: a new verified account", async () => {
  const address = email("new");
  const id = await signInWith(sub(), address, true);
  const { rows } = await db.owner.query("select u.* from app_public.users u join app_private.identities i on i.user_id = u.id where i.id = $1", [id]);
  expect(rows[0].email).toBe(address);
  expect(rows[0].name).toBe("Ada Lovelace");
  expect(rows[0].email_verified_at).not.toBeNull();
  expect((await db.owner.query("select count(*)::int as n from app_private.user_secrets where user_id = $1", [rows[0].id])).rows[0].n).toBe(0);
});

test("a known identity signs in to its account, whatever email it now reports (never keyed by email)", async () => {
  const subject = sub();
  const first = await signInWith(subject, email("a"), true);
  const user = await ownerOf(first);
  const other = await createUser(db); // verified account with another address
  // the provider now reports the other account's address, even unverified: still the same account
  expect(await ownerOf(await signInWith(subject, other.email, false))).toBe(user);
  expect(await signInWith(subject, other.email, true)).toBe(first);
  // the same subject at another issuer is another identity
  expect(await codeOf(signInWith(subject, null, false, null, "https://other.example.com"))).toBe("PROVIDER_EMAIL_NOT_VERIFIED");
});

test("a new identity whose email the provider did not verify (or gave none): refused, nothing created", async () => {
  const address = email("unverified");
  expect(await codeOf(signInWith(sub(), address, false))).toBe("PROVIDER_EMAIL_NOT_VERIFIED");
  expect(await codeOf(signInWith(sub(), null, true))).toBe("PROVIDER_EMAIL_NOT_VERIFIED");
  expect((await db.owner.query("select count(*)::int as n from app_public.users where email = $1", [address])).rows[0].n).toBe(0);
});

test("an unverified provider email matching a verified account: never linked", async () => {
  const victim = await createUser(db);
  const subject = sub();
  expect(await codeOf(signInWith(subject, victim.email, false))).toBe("PROVIDER_EMAIL_NOT_VERIFIED");
  expect((await db.owner.query("select count(*)::int as n from app_private.identities where subject = $1", [subject])).rows[0].n).toBe(0);
});

test("a verified provider email matching a verified account: linked to it, its password and sessions kept", async () => {
  const owner = await registerInSql(db);
  await db.owner.query("update app_public.users set email_verified_at = now() where id = $1", [owner.userId]);
  const id = await signInWith(sub(), owner.email.toUpperCase(), true);
  expect(await ownerOf(id)).toBe(owner.userId);
  expect((await db.owner.query("select count(*)::int as n from app_private.user_secrets where user_id = $1", [owner.userId])).rows[0].n).toBe(1);
  expect((await db.owner.query("select revoked_at from app_private.sessions where id = $1", [owner.sessionId])).rows[0].revoked_at).toBeNull();
});

test("an attacker's unverified account pre-registered on the victim's address: its password, sessions, mail tokens and unverified identities are removed before linking", async () => {
  const squatter = await registerInSql(db); // registered, never verified (cannot read the mailbox)
  const attackerSubject = sub();
  await db.owner.query(
    "insert into app_private.identities (user_id, provider, issuer, subject, email, email_verified) values ($1, 'github', 'https://github.com', $2, $3, false)",
    [squatter.userId, attackerSubject, squatter.email],
  );
  const pendingChange = await token(db, "change_email", squatter.userId, email("attacker"));
  // the address's owner signs in with a provider that verified it
  const id = await signInWith(sub(), squatter.email, true);
  expect(await ownerOf(id)).toBe(squatter.userId);
  const state = await db.owner.query(
    `select (select count(*)::int from app_private.user_secrets where user_id = $1) as passwords,
            (select count(*)::int from app_private.sessions where user_id = $1 and revoked_at is null) as sessions,
            (select count(*)::int from app_private.identities where user_id = $1) as identities,
            (select email_verified_at is not null from app_public.users where id = $1) as verified`,
    [squatter.userId],
  );
  expect(state.rows[0]).toEqual({ passwords: 0, sessions: 0, identities: 1, verified: true });
  // the old password no longer signs in; the pending email change no longer works
  expect(await codeOf(db.queryAs(null, "select app_public.authenticate($1, $2)", [squatter.email, squatter.password]))).toBe("INVALID_CREDENTIALS");
  expect(await codeOf(db.queryAs(null, "select app_public.verify_email($1)", [pendingChange]))).toBe("TOKEN_INVALID");
});

test("a signed-in user links a new identity whatever its email; one already linked elsewhere is IDENTITY_TAKEN", async () => {
  const me = await createUser(db);
  const someoneElse = await createUser(db);
  const mine = await signInWith(sub(), null, false, me.userId);
  expect(await ownerOf(mine)).toBe(me.userId);
  const theirsSubject = sub();
  const theirs = await signInWith(theirsSubject, null, false, someoneElse.userId);
  expect(await codeOf(signInWith(theirsSubject, me.email, true, me.userId))).toBe("IDENTITY_TAKEN");
  expect(await ownerOf(theirs)).toBe(someoneElse.userId);
});

test("a known identity of a deleted account is stale: removed, and the sign-in goes on as for a new identity", async () => {
  const subject = sub();
  const first = await signInWith(subject, email("gone"), true);
  const user = await ownerOf(first);
  await db.owner.query("update app_public.users set deleted_at = now(), email = 'deleted-' || id || '@deleted.invalid' where id = $1", [user]);
  const address = email("back");
  const second = await signInWith(subject, address, true);
  expect(second).not.toBe(first);
  expect(await ownerOf(second)).not.toBe(user);
});

test("a provider name that makes no display name (none, blank, invisible characters) gives the address's local part", async () => {
  for (const name of [null, "   ", "\u200b\u200b"]) {
    const local = `nameless-${randomBytes(4).toString("hex")}`;
    const { rows } = await db.owner.query(
      "select app_private.sign_in_with_identity('google', $1, $2, $3, true, $4, null) as id",
      [ISSUER, sub(), `${local}@example.com`, name],
    );
    const user = await db.owner.query("select u.name from app_public.users u join app_private.identities i on i.user_id = u.id where i.id = $1", [rows[0].id]);
    expect(user.rows[0].name).toBe(local);
  }
});
