// Issue 20, item 12: accepting an invitation with the token from its email proves the invited
// address (the account becomes verified). The attack this must not open: Mallory registers an
// account with Victim's address (she cannot verify it: the mail goes to Victim), creates her own
// organization, invites that address and receives the invitation token in inviteMember's answer.
// Accepting with that token must not verify her account (a verified address would show her the
// invitations other organizations send to Victim, and unlock API keys). Only the token mailed to
// the address proves it; the inviter never sees that one.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createUser } from "../helpers/fixtures.ts";
import { expectCode, invite } from "../helpers/team.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const verified = async (id: string) =>
  (await db.owner.query("select email_verified_at is not null as v from app_public.users where id = $1", [id])).rows[0].v as boolean;

test("an inviter who registered someone else's address cannot get it verified through her own invitation", async () => {
  const victim = `victim-${process.pid}@example.com`;
  // Mallory's squatting account: registered with Victim's address, never verified
  const { rows } = await db.queryAs(null, "select (app_public.register($1, 'password123', 'Squatter')).sub as id", [victim]);
  const squatter = { userId: rows[0].id as string, sessionId: null };
  // Mallory's real, verified account owns an organization and invites Victim's address
  const mallory = await createUser(db, "Mallory");
  const { rows: orgs } = await db.queryAs(mallory, "select id from app_public.create_organization('Mallory Co')");
  const inv = await invite(db, mallory, orgs[0].id, victim);
  expect(inv.token).toMatch(/^tbinv_/); // the inviter holds this token

  await expectCode(db.queryAs(squatter, "select app_public.accept_invitation($1)", [inv.token]), "EMAIL_NOT_VERIFIED");
  expect(await verified(squatter.userId)).toBe(false);
  // and with it she still cannot list what other organizations send to that address
  await expectCode(db.queryAs(squatter, "select * from app_public.my_pending_invitations()"), "EMAIL_NOT_VERIFIED");

  // nothing the inviter can read holds the mailed token: only its hash is stored
  const { rows: tokens } = await db.owner.query(
    "select token_hash, mail_token_hash from app_private.invitation_tokens where invitation_id = $1",
    [inv.id],
  );
  expect(tokens[0].mail_token_hash).toBeInstanceOf(Buffer);
  expect(tokens[0].mail_token_hash.equals(tokens[0].token_hash)).toBe(false);
});
