// The account mutations over real HTTP: email verification and what an unverified user may not
// do, password reset (racing, revoking every session), change password, change email, delete
// account, with the bad input of each (expired, reused, foreign, malformed tokens; wrong current
// password; weak new password).

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { codes, issueToken, queuedAccountMails, register, relaxAttemptLimits, signIn, uniqueEmail } from "../helpers/accounts.ts";

let db: TestDatabase;
let server: TestServer;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
  await relaxAttemptLimits(db); // the limits have their own test file (accounts-limits)
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const ME = `{ currentUser { id email name emailVerified } }`;
const VERIFY = `mutation($t: String!) { verifyEmail(input: {token: $t}) { success } }`;
const RESEND = `mutation { resendVerificationEmail(input: {}) { success } }`;
const FORGOT = `mutation($e: String!) { forgotPassword(input: {email: $e}) { success } }`;
const RESET = `mutation($t: String!, $p: String!) { resetPassword(input: {token: $t, newPassword: $p}) { jwtToken } }`;
const CHANGE_PASSWORD = `mutation($c: String!, $n: String!) { changePassword(input: {currentPassword: $c, newPassword: $n}) { success } }`;
const CHANGE_EMAIL = `mutation($e: String!, $p: String!) { changeEmail(input: {newEmail: $e, password: $p}) { success } }`;
const DELETE = `mutation($p: String!) { deleteAccount(input: {password: $p}) { success } }`;

async function expireTokens(userId: string) {
  await db.owner.query("update app_private.account_tokens set expires_at = now() - interval '1 second' where user_id = $1", [userId]);
}

describe("email verification", () => {
  test("register queues a verification mail; verifyEmail proves the address once", async () => {
    const ada = await register(server);
    expect((await server.graphql(ME, {}, ada.token)).data.currentUser.emailVerified).toBe(false);
    expect((await queuedAccountMails(db, ada.userId)).map((m) => m.kind)).toEqual(["verify_email"]);

    const token = await issueToken(db, "verify_email", ada.userId);
    const ok = await server.graphql(VERIFY, { t: token }); // anonymous: the link is opened anywhere
    expect(ok.errors).toBeUndefined();
    expect(ok.data.verifyEmail.success).toBe(true);
    expect((await server.graphql(ME, {}, ada.token)).data.currentUser.emailVerified).toBe(true);

    expect(codes(await server.graphql(VERIFY, { t: token }))).toEqual(["TOKEN_USED"]);
    expect(codes(await server.graphql(RESEND, {}, ada.token))).toEqual(["EMAIL_ALREADY_VERIFIED"]);
  });

  test("bad tokens: malformed, unknown, expired, replaced, another user's, the wrong kind", async () => {
    const bob = await register(server);
    const eve = await register(server);
    expect(codes(await server.graphql(VERIFY, { t: "not-a-token" }))).toEqual(["TOKEN_INVALID"]);
    expect(codes(await server.graphql(VERIFY, { t: "a".repeat(10_000) }))).toEqual(["TOKEN_INVALID"]);
    expect(codes(await server.graphql(VERIFY, { t: "0".repeat(64) }))).toEqual(["TOKEN_INVALID"]);

    const old = await issueToken(db, "verify_email", bob.userId);
    const fresh = await issueToken(db, "verify_email", bob.userId);
    expect(codes(await server.graphql(VERIFY, { t: old }))).toEqual(["TOKEN_INVALID"]); // replaced by a resend
    expect(codes(await server.graphql(VERIFY, { t: fresh }, eve.token))).toEqual(["TOKEN_USER_MISMATCH"]);
    const reset = await issueToken(db, "reset_password", bob.userId);
    expect(codes(await server.graphql(VERIFY, { t: reset }))).toEqual(["TOKEN_INVALID"]);
    await expireTokens(bob.userId);
    expect(codes(await server.graphql(VERIFY, { t: fresh }))).toEqual(["TOKEN_EXPIRED"]);
    expect((await server.graphql(ME, {}, bob.token)).data.currentUser.emailVerified).toBe(false);

    // resend queues one mail (a repeat replaces the unsent one) and the new token works
    expect((await server.graphql(RESEND, {}, bob.token)).data.resendVerificationEmail.success).toBe(true);
    expect((await queuedAccountMails(db, bob.userId)).filter((m) => m.kind === "verify_email")).toHaveLength(1);
    const again = await issueToken(db, "verify_email", bob.userId);
    expect((await server.graphql(VERIFY, { t: again }, bob.token)).data.verifyEmail.success).toBe(true);
  });

  test("an unverified user may not see or accept invitations or create API keys; everything else works", async () => {
    const owner = await register(server);
    const invitee = await register(server, uniqueEmail("invitee"));
    for (const u of [owner]) await server.graphql(VERIFY, { t: await issueToken(db, "verify_email", u.userId) });

    // createOrganization is open to unverified users by default
    const ownOrg = await server.graphql(`mutation { createOrganization(input: {name: "Unverified Co"}) { organization { id } } }`, {}, invitee.token);
    expect(ownOrg.errors).toBeUndefined();
    const key = await server.graphql(
      `mutation($o: UUID!) { createApiKey(input: {organizationId: $o, name: "k"}) { secret } }`,
      { o: ownOrg.data.createOrganization.organization.id },
      invitee.token,
    );
    expect(codes(key)).toEqual(["EMAIL_NOT_VERIFIED"]);

    const org = await server.graphql(`mutation { createOrganization(input: {name: "Inviting Co"}) { organization { id } } }`, {}, owner.token);
    const inv = await server.graphql(
      `mutation($o: UUID!, $e: String!) { inviteMember(input: {organizationId: $o, email: $e, role: member}) { invitationToken } }`,
      { o: org.data.createOrganization.organization.id, e: invitee.email },
      owner.token,
    );
    const invitationToken = inv.data.inviteMember.invitationToken;
    const pending = `{ myPendingInvitations { nodes { organizationId role } } }`;
    expect(codes(await server.graphql(pending, {}, invitee.token))).toEqual(["EMAIL_NOT_VERIFIED"]);
    const accept = `mutation($t: String!) { acceptInvitation(input: {token: $t}) { membership { role } } }`;
    // the inviter's token proves nothing about the address (the inviter has it too)
    expect(codes(await server.graphql(accept, { t: invitationToken }, invitee.token))).toEqual(["EMAIL_NOT_VERIFIED"]);

    await server.graphql(VERIFY, { t: await issueToken(db, "verify_email", invitee.userId) });
    expect((await server.graphql(pending, {}, invitee.token)).data.myPendingInvitations.nodes).toHaveLength(1);
    expect((await server.graphql(accept, { t: invitationToken }, invitee.token)).data.acceptInvitation.membership.role).toBe("member");
  });

  test("accepting an invitation with its token proves the invited address: no separate verification; another address is refused", async () => {
    const owner = await register(server);
    await server.graphql(VERIFY, { t: await issueToken(db, "verify_email", owner.userId) });
    const org = await server.graphql(`mutation { createOrganization(input: {name: "Invites Co"}) { organization { id } } }`, {}, owner.token);
    const orgId = org.data.createOrganization.organization.id;
    // The token the invitation email carries (read from the queued job: the mail is not sent here).
    const inviteTo = async (email: string) => {
      const invited = await server.graphql(
        `mutation($o: UUID!, $e: String!) { inviteMember(input: {organizationId: $o, email: $e, role: member}) { invitation { id } invitationToken } }`,
        { o: orgId, e: email },
        owner.token,
      );
      const { rows } = await db.owner.query("select payload->>'token' as token from graphile_worker._private_jobs where key = $1", [
        `invitation_email:${invited.data.inviteMember.invitation.id}`,
      ]);
      return { mailed: rows[0].token as string, inviters: invited.data.inviteMember.invitationToken as string };
    };
    const accept = `mutation($t: String!) { acceptInvitation(input: {token: $t}) { membership { role } } }`;
    const me = `{ currentUser { emailVerified } }`;

    // signs up from the invitation link, with the invited address, and accepts at once
    const email = uniqueEmail("link");
    const token = (await inviteTo(email)).mailed;
    const invitee = await register(server, email);
    const accepted = await server.graphql(accept, { t: token }, invitee.token);
    expect(accepted.errors).toBeUndefined();
    expect(accepted.data.acceptInvitation.membership.role).toBe("member");
    expect((await server.graphql(me, {}, invitee.token)).data.currentUser.emailVerified).toBe(true);

    // someone else holding the token, not verified, with another address: refused, still unverified
    const other = await register(server, uniqueEmail("other"));
    const second = await inviteTo(uniqueEmail("second"));
    expect(codes(await server.graphql(accept, { t: second.mailed }, other.token))).toEqual(["INVITATION_EMAIL_MISMATCH"]);
    expect((await server.graphql(me, {}, other.token)).data.currentUser.emailVerified).toBe(false);
  });

  test("the rule is a setting: with organizations required, createOrganization needs a verified address too", async () => {
    const carl = await register(server);
    await db.owner.query("update app_private.account_settings set verified_email_required_for = '{invitations,api_keys,organizations}'");
    try {
      const r = await server.graphql(`mutation { createOrganization(input: {name: "Nope"}) { organization { id } } }`, {}, carl.token);
      expect(codes(r)).toEqual(["EMAIL_NOT_VERIFIED"]);
    } finally {
      await db.owner.query("update app_private.account_settings set verified_email_required_for = '{invitations,api_keys}'");
    }
  });
});

describe("password reset", () => {
  test("forgotPassword answers the same for a known, an unknown and a malformed address, doing the same work", async () => {
    const known = await register(server);
    const unknown = uniqueEmail("nobody");
    const answers = [];
    for (const e of [known.email, unknown, "not an email", known.email.toUpperCase()]) {
      const r = await server.graphql(FORGOT, { e });
      answers.push({ status: r.status, body: JSON.stringify({ data: r.data, errors: r.errors }) });
    }
    expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
    expect(answers[0].body).toBe(JSON.stringify({ data: { forgotPassword: { success: true } } }));
    // one mail job per address, known or not (the worker finds the account); a repeat replaces it
    const { rows } = await db.owner.query(
      `select j.payload->>'email' as email, count(*)::int as n from graphile_worker._private_jobs j
       join graphile_worker._private_tasks t on t.id = j.task_id
       where t.identifier = 'send_account_email' and j.payload->>'kind' = 'reset_password' and j.payload->>'email' = any($1)
       group by 1 order by 1`,
      [[known.email, unknown]],
    );
    expect(rows).toEqual([known.email, unknown].sort().map((email) => ({ email, n: 1 })));
    // the worker's side: a token for the known address, nothing for the unknown one
    expect((await db.owner.query("select * from app_private.issue_reset_token($1)", [unknown])).rows).toEqual([]);
    expect((await db.owner.query("select * from app_private.issue_reset_token($1)", [known.email.toUpperCase()])).rows).toHaveLength(1);
  });

  test("resetPassword sets the password, signs out every session at once and returns a fresh token", async () => {
    const dana = await register(server);
    const sessions = [dana.token];
    for (let i = 0; i < 5; i++) sessions.push((await signIn(server, dana.email, dana.password)).data.authenticate.jwtToken);
    for (const t of sessions) expect((await server.graphql(ME, {}, t)).status).toBe(200);

    const token = await issueToken(db, "reset_password", dana.userId);
    // a weak password is refused and the token is not spent
    expect(codes(await server.graphql(RESET, { t: token, p: "short" }))).toEqual(["WEAK_PASSWORD"]);
    const r = await server.graphql(RESET, { t: token, p: "a brand new secret" });
    expect(r.errors).toBeUndefined();
    const fresh = r.data.resetPassword.jwtToken as string;

    const statuses = await Promise.all(sessions.map(async (t) => (await server.graphql(ME, {}, t)).status));
    expect(statuses).toEqual(sessions.map(() => 401));
    expect((await server.graphql(ME, {}, fresh)).data.currentUser.email).toBe(dana.email);
    expect(codes(await signIn(server, dana.email, dana.password))).toEqual(["INVALID_CREDENTIALS"]);
    expect((await signIn(server, dana.email, "a brand new secret")).data.authenticate.jwtToken).toBeTruthy();
    // reused, and using the link proved the address
    expect(codes(await server.graphql(RESET, { t: token, p: "another new secret" }))).toEqual(["TOKEN_USED"]);
    expect((await server.graphql(ME, {}, fresh)).data.currentUser.emailVerified).toBe(true);
  });

  test("expired, malformed and verification tokens are refused", async () => {
    const ed = await register(server);
    const token = await issueToken(db, "reset_password", ed.userId);
    await expireTokens(ed.userId);
    expect(codes(await server.graphql(RESET, { t: token, p: "a brand new secret" }))).toEqual(["TOKEN_EXPIRED"]);
    expect(codes(await server.graphql(RESET, { t: "x", p: "a brand new secret" }))).toEqual(["TOKEN_INVALID"]);
    const verify = await issueToken(db, "verify_email", ed.userId);
    expect(codes(await server.graphql(RESET, { t: verify, p: "a brand new secret" }))).toEqual(["TOKEN_INVALID"]);
    expect((await signIn(server, ed.email, ed.password)).data.authenticate.jwtToken).toBeTruthy();
  });

  test("twenty resetPassword calls racing with one token: exactly one wins, the rest are TOKEN_USED", async () => {
    const fay = await register(server);
    const token = await issueToken(db, "reset_password", fay.userId);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => server.graphql(RESET, { t: token, p: `racing password ${i}` })),
    );
    const winners = results.filter((r) => r.data?.resetPassword?.jwtToken);
    expect(winners).toHaveLength(1);
    expect(results.flatMap(codes).sort()).toEqual(Array(19).fill("TOKEN_USED"));
    const i = results.indexOf(winners[0]);
    expect((await signIn(server, fay.email, `racing password ${i}`)).data.authenticate.jwtToken).toBeTruthy();
  });
});

describe("change password", () => {
  test("needs the current password and a good new one; other sessions end, this one stays", async () => {
    const gus = await register(server);
    const other = (await signIn(server, gus.email, gus.password)).data.authenticate.jwtToken;
    expect(codes(await server.graphql(CHANGE_PASSWORD, { c: "wrong password", n: "new secret 123" }, gus.token))).toEqual(["WRONG_PASSWORD"]);
    expect(codes(await server.graphql(CHANGE_PASSWORD, { c: gus.password, n: "short" }, gus.token))).toEqual(["WEAK_PASSWORD"]);
    expect(codes(await server.graphql(CHANGE_PASSWORD, { c: gus.password, n: "é".repeat(37) }, gus.token))).toEqual(["WEAK_PASSWORD"]);
    expect(codes(await server.graphql(CHANGE_PASSWORD, { c: gus.password, n: "new secret 123" }))).toEqual(["NOT_AUTHENTICATED"]);
    expect((await server.graphql(ME, {}, other)).status).toBe(200); // nothing changed so far

    const ok = await server.graphql(CHANGE_PASSWORD, { c: gus.password, n: "new secret 123" }, gus.token);
    expect(ok.data.changePassword.success).toBe(true);
    expect((await server.graphql(ME, {}, other)).status).toBe(401);
    expect((await server.graphql(ME, {}, gus.token)).data.currentUser.id).toBe(gus.userId);
    expect((await signIn(server, gus.email, "new secret 123")).data.authenticate.jwtToken).toBeTruthy();
  });
});

describe("change email", () => {
  test("mails the new address; applies on verification; tells the old address", async () => {
    const hal = await register(server);
    const taken = await register(server);
    expect(codes(await server.graphql(CHANGE_EMAIL, { e: uniqueEmail(), p: "wrong password" }, hal.token))).toEqual(["WRONG_PASSWORD"]);
    expect(codes(await server.graphql(CHANGE_EMAIL, { e: "nope", p: hal.password }, hal.token))).toEqual(["INVALID_EMAIL"]);
    expect(codes(await server.graphql(CHANGE_EMAIL, { e: taken.email.toUpperCase(), p: hal.password }, hal.token))).toEqual(["EMAIL_TAKEN"]);
    expect(codes(await server.graphql(CHANGE_EMAIL, { e: hal.email, p: hal.password }, hal.token))).toEqual(["EMAIL_UNCHANGED"]);

    const next = uniqueEmail("new-hal");
    expect((await server.graphql(CHANGE_EMAIL, { e: next, p: hal.password }, hal.token)).data.changeEmail.success).toBe(true);
    const mails = await queuedAccountMails(db, hal.userId);
    expect(mails.at(-1)).toMatchObject({ kind: "change_email", email: next });
    expect((await server.graphql(ME, {}, hal.token)).data.currentUser.email).toBe(hal.email); // not yet

    const token = await issueToken(db, "change_email", hal.userId, next);
    expect(codes(await server.graphql(VERIFY, { t: token }, taken.token))).toEqual(["TOKEN_USER_MISMATCH"]);
    expect((await server.graphql(VERIFY, { t: token }, hal.token)).data.verifyEmail.success).toBe(true);
    const me = (await server.graphql(ME, {}, hal.token)).data.currentUser;
    expect(me).toMatchObject({ email: next, emailVerified: true });
    expect((await queuedAccountMails(db, hal.userId)).at(-1)).toMatchObject({ kind: "email_changed", oldEmail: hal.email, newEmail: next });
    expect(codes(await signIn(server, hal.email, hal.password))).toEqual(["INVALID_CREDENTIALS"]);
    expect((await signIn(server, next, hal.password)).data.authenticate.jwtToken).toBeTruthy();
    expect(codes(await server.graphql(VERIFY, { t: token }, hal.token))).toEqual(["TOKEN_USED"]);
  });

  test("an address taken between the request and the link: EMAIL_TAKEN, nothing changes", async () => {
    const ivy = await register(server);
    const wanted = uniqueEmail("wanted");
    await server.graphql(CHANGE_EMAIL, { e: wanted, p: ivy.password }, ivy.token);
    const token = await issueToken(db, "change_email", ivy.userId, wanted);
    await register(server, wanted);
    expect(codes(await server.graphql(VERIFY, { t: token }))).toEqual(["EMAIL_TAKEN"]);
    expect((await server.graphql(ME, {}, ivy.token)).data.currentUser.email).toBe(ivy.email);
  });
});

describe("delete account", () => {
  test("LAST_OWNER while the only owner of an organization with other members; then anonymised, audit kept", async () => {
    const jo = await register(server);
    const kim = await register(server);
    for (const u of [jo, kim]) await server.graphql(VERIFY, { t: await issueToken(db, "verify_email", u.userId) });
    const shared = (await server.graphql(`mutation { createOrganization(input: {name: "Shared"}) { organization { id } } }`, {}, jo.token))
      .data.createOrganization.organization.id;
    const alone = (await server.graphql(`mutation { createOrganization(input: {name: "Alone"}) { organization { id } } }`, {}, jo.token))
      .data.createOrganization.organization.id;
    const inv = await server.graphql(
      `mutation($o: UUID!, $e: String!) { inviteMember(input: {organizationId: $o, email: $e, role: member}) { invitationToken } }`,
      { o: shared, e: kim.email },
      jo.token,
    );
    await server.graphql(`mutation($t: String!) { acceptInvitation(input: {token: $t}) { membership { role } } }`, { t: inv.data.inviteMember.invitationToken }, kim.token);

    expect(codes(await server.graphql(DELETE, { p: "wrong password" }, jo.token))).toEqual(["WRONG_PASSWORD"]);
    expect(codes(await server.graphql(DELETE, { p: jo.password }, jo.token))).toEqual(["LAST_OWNER"]);
    expect(codes(await server.graphql(DELETE, { p: jo.password }))).toEqual(["NOT_AUTHENTICATED"]);

    await server.graphql(`mutation($o: UUID!, $u: UUID!) { transferOwnership(input: {organizationId: $o, userId: $u}) { membership { role } } }`,
      { o: shared, u: kim.userId }, jo.token);
    const ok = await server.graphql(DELETE, { p: jo.password }, jo.token);
    expect(ok.errors).toBeUndefined();
    expect(ok.data.deleteAccount.success).toBe(true);

    expect((await server.graphql(ME, {}, jo.token)).status).toBe(401);
    expect(codes(await signIn(server, jo.email, jo.password))).toEqual(["INVALID_CREDENTIALS"]);
    const { rows } = await db.owner.query("select email, name, deleted_at from app_public.users where id = $1", [jo.userId]);
    expect(rows[0].email).toBe(`deleted-${jo.userId}@deleted.invalid`);
    expect(rows[0].name).toBe("Deleted user");
    expect(rows[0].deleted_at).not.toBeNull();
    for (const table of ["app_private.user_secrets", "app_private.sessions", "app_private.account_tokens", "app_public.user_settings"]) {
      const c = await db.owner.query(`select count(*)::int as n from ${table} where user_id = $1`, [jo.userId]);
      expect([table, c.rows[0].n]).toEqual([table, 0]);
    }
    // the organization where jo was alone is deleted; the shared one keeps kim and its history
    const orgs = await db.owner.query("select id, deleted_at from app_public.organizations where id = any($1)", [[shared, alone]]);
    expect(Object.fromEntries(orgs.rows.map((r) => [r.id, r.deleted_at !== null]))).toEqual({ [shared]: false, [alone]: true });
    const audit = await server.graphql(
      `query($o: UUID!) { organization(id: $o) { auditEvents(orderBy: CREATED_AT_ASC) { nodes { action createdBy details } } } }`,
      { o: shared },
      kim.token,
    );
    const events = audit.data.organization.auditEvents.nodes;
    expect(events.map((e: { action: string }) => e.action)).toEqual(
      expect.arrayContaining(["member.added", "invitation.created", "member.removed"]),
    );
    expect(JSON.stringify(events)).not.toContain(jo.email);
  });

  test("the email can be registered again after deletion", async () => {
    const lu = await register(server);
    await server.graphql(DELETE, { p: lu.password }, lu.token);
    const again = await register(server, lu.email);
    expect(again.userId).not.toBe(lu.userId);
  });
});
