// Invitations in SQL: who may invite, tokens (hash only, one-time), accepting, revoking,
// resending, expiry, the one-pending-per-email index, seats (members + pending <= max_seats)
// under concurrency, and the invite/revoke and accept/revoke races.

import { createHash } from "node:crypto";
import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createUser, twoTenants } from "../../helpers/fixtures.ts";
import { accept, createUserWithEmail, expectCode, invite, setPlan, tally } from "../../helpers/team.ts";

let db: TestDatabase;
let cast: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  cast = await twoTenants(db);
  // the free plan has 3 seats and the cast already fills them; most tests need room
  await setPlan(db, cast.a.org.id, "enterprise");
  await setPlan(db, cast.b.org.id, "enterprise");
});
afterAll(() => db?.drop());

let n = 0;
const freshEmail = () => `invitee-${process.pid}-${++n}@example.com`;

/** The token the invitation email carries (the queued job's payload; never the inviter's). */
async function mailToken(invitationId: string): Promise<string> {
  const { rows } = await db.owner.query("select payload->>'token' as token from graphile_worker._private_jobs where key = $1", [
    `invitation_email:${invitationId}`,
  ]);
  return rows[0].token;
}

async function invitationRow(id: string) {
  const { rows } = await db.owner.query("select * from app_public.invitations where id = $1", [id]);
  return rows[0];
}

test("an admin invites: the payload has the token once, the database only its hash, and jobs are queued", async () => {
  const email = freshEmail();
  const inv = await invite(db, cast.a.admin, cast.a.org.id, email.toUpperCase());
  expect(inv).toMatchObject({ email, role: "member", status: "pending" });
  expect(inv.token).toMatch(/^tbinv_[0-9a-f]{64}$/); // 256 random bits

  const row = await invitationRow(inv.id);
  expect(row.invited_by).toBe(cast.a.admin.userId);
  expect(row.expires_at.getTime() - row.created_at.getTime()).toBe(7 * 24 * 3600 * 1000);

  const { rows: tokens } = await db.owner.query(
    "select token_hash from app_private.invitation_tokens where invitation_id = $1",
    [inv.id],
  );
  expect(tokens[0].token_hash.toString("hex")).toBe(createHash("sha256").update(inv.token).digest("hex"));
  const { rows: anywhere } = await db.owner.query(
    "select count(*)::int as n from app_public.invitations i where to_jsonb(i)::text like '%' || $1 || '%'",
    [inv.token],
  );
  expect(anywhere[0].n).toBe(0);

  const { rows: jobs } = await db.owner.query(
    "select task_identifier, key, run_at from graphile_worker.jobs where key like '%' || $1 order by key",
    [inv.id],
  );
  expect(jobs.map((j) => [j.task_identifier, j.key])).toEqual([
    ["send_invitation_email", `invitation_email:${inv.id}`],
    ["expire_invitations", `invitation_expiry:${inv.id}`],
  ]);
  expect(jobs[1].run_at.getTime()).toBe(row.expires_at.getTime());

  const { rows: audit } = await db.owner.query(
    "select action, created_by from app_public.audit_events where target_id = $1",
    [inv.id],
  );
  expect(audit).toEqual([{ action: "invitation.created", created_by: cast.a.admin.userId }]);
});

test("who may invite: members cannot, outsiders see no organization, only owners invite owners", async () => {
  const org = cast.a.org.id;
  await expectCode(invite(db, cast.a.member, org, freshEmail()), "FORBIDDEN");
  await expectCode(invite(db, cast.b.owner, org, freshEmail()), "NOT_FOUND");
  await expectCode(invite(db, cast.a.admin, org, freshEmail(), "owner"), "FORBIDDEN");
  // anonymous callers may not even call it
  await expect(db.queryAs(null, "select app_public.invite_member($1, $2)", [org, freshEmail()])).rejects.toMatchObject({ code: "42501" });
  const asOwner = await invite(db, cast.a.owner, org, freshEmail(), "owner");
  expect(asOwner.role).toBe("owner");
  await invite(db, cast.a.admin, org, freshEmail(), "admin");
});

test("bad input is refused with nothing written", async () => {
  const before = (await db.owner.query("select count(*)::int as n from app_public.invitations")).rows[0].n;
  for (const email of ["", "not-an-email", "a@b", "x y@example.com", `${"a".repeat(250)}@example.com`]) {
    await expectCode(invite(db, cast.a.admin, cast.a.org.id, email), "INVALID_EMAIL");
  }
  await expectCode(invite(db, cast.a.admin, cast.a.org.id, cast.a.member.email.toUpperCase()), "ALREADY_MEMBER");
  const after = (await db.owner.query("select count(*)::int as n from app_public.invitations")).rows[0].n;
  expect(after).toBe(before);
});

test("one pending invitation per email (case-insensitive); re-inviting after revoke, accept or expiry works", async () => {
  const org = cast.a.org.id;
  const email = freshEmail();
  const first = await invite(db, cast.a.admin, org, email);
  await expectCode(invite(db, cast.a.owner, org, email.toUpperCase()), "INVITATION_ALREADY_PENDING");

  await db.queryAs(cast.a.admin, "select app_public.revoke_invitation($1)", [first.id]);
  const second = await invite(db, cast.a.admin, org, email);

  await db.owner.query("update app_public.invitations set expires_at = now() - interval '1 second' where id = $1", [second.id]);
  const third = await invite(db, cast.a.admin, org, email); // the stale pending one is expired on the way
  expect((await invitationRow(second.id)).status).toBe("expired");

  const user = await createUserWithEmail(db, email);
  await accept(db, user, third.token);
  await db.queryAs(user, "select app_public.leave_organization($1)", [org]);
  const fourth = await invite(db, cast.a.admin, org, email);
  expect(fourth.status).toBe("pending");

  // the index, not application logic: a direct second insert fails
  await expect(
    db.owner.query("insert into app_public.invitations (organization_id, email) values ($1, $2)", [org, email]),
  ).rejects.toMatchObject({ code: "23505" });
});

test("accepting: the user's email must match (case-insensitively); works for users who registered after being invited", async () => {
  const org = cast.a.org.id;
  const email = freshEmail();
  const inv = await invite(db, cast.a.admin, org, email, "admin");

  const stranger = await createUser(db, "Stranger");
  await expectCode(accept(db, stranger, inv.token), "INVITATION_EMAIL_MISMATCH");
  await expect(db.queryAs(null, "select app_public.accept_invitation($1)", [inv.token])).rejects.toMatchObject({ code: "42501" });

  // registers only now, with different capitalisation
  const { rows } = await db.queryAs(null, "select (app_public.register($1, 'password123', 'Late Comer')).sub as id", [
    email.toUpperCase(),
  ]);
  const user = { userId: rows[0].id, sessionId: null };
  // not verified yet: the inviter's token is not enough (the inviter has it too) ...
  const verified = async (id: string) =>
    (await db.owner.query("select email_verified_at is not null as v from app_public.users where id = $1", [id])).rows[0].v;
  expect(await verified(user.userId)).toBe(false);
  await expectCode(accept(db, user, inv.token), "EMAIL_NOT_VERIFIED");
  // ... but the token from the email arrived at the invited address: accepting with it proves it
  const membership = await accept(db, user, await mailToken(inv.id));
  expect(await verified(user.userId)).toBe(true);
  expect(membership).toMatchObject({ organization_id: org, user_id: user.userId, role: "admin", invited_by: cast.a.admin.userId });

  const row = await invitationRow(inv.id);
  expect(row).toMatchObject({ status: "accepted", accepted_by: user.userId });
  expect(row.accepted_at).toBeInstanceOf(Date);
  // the seat moved from the invitation to the member
  const { rows: counter } = await db.owner.query("select seat_count from app_public.usage_counters where organization_id = $1", [org]);
  const { rows: members } = await db.owner.query("select count(*)::int as n from app_public.organization_members where organization_id = $1", [org]);
  expect(counter[0].seat_count).toBe(members[0].n);

  const { rows: audit } = await db.owner.query(
    "select action, created_by from app_public.audit_events where organization_id = $1 and (target_id = $2 or target_id = $3) order by created_at, action",
    [org, inv.id, user.userId],
  );
  expect(audit.map((a) => a.action)).toEqual(expect.arrayContaining(["invitation.created", "member.added", "invitation.accepted"]));
  expect(audit.find((a) => a.action === "invitation.accepted").created_by).toBe(user.userId);
});

test("the mailed token proves only the invited address: an unverified account with another address is refused and stays unverified", async () => {
  const org = cast.a.org.id;
  const inv = await invite(db, cast.a.admin, org, freshEmail());
  const other = freshEmail();
  const { rows } = await db.queryAs(null, "select (app_public.register($1, 'password123', 'Other')).sub as id", [other]);
  const user = { userId: rows[0].id, sessionId: null };
  const mailed = await mailToken(inv.id);
  expect(mailed).toMatch(/^tbinv_[0-9a-f]{64}$/);
  expect(mailed).not.toBe(inv.token);
  await expectCode(accept(db, user, mailed), "INVITATION_EMAIL_MISMATCH");
  const { rows: after } = await db.owner.query("select email_verified_at from app_public.users where id = $1", [user.userId]);
  expect(after[0].email_verified_at).toBeNull();
  // and an unverified account with the invited address but an unknown token proves nothing
  const { rows: invited } = await db.queryAs(null, "select (app_public.register($1, 'password123', 'Invited')).sub as id", [inv.email]);
  await expectCode(accept(db, { userId: invited[0].id, sessionId: null }, "tbinv_" + "1".repeat(64)), "INVITATION_INVALID");
  const { rows: still } = await db.owner.query("select email_verified_at from app_public.users where id = $1", [invited[0].id]);
  expect(still[0].email_verified_at).toBeNull();
});

test("used, revoked and unknown tokens all answer INVITATION_INVALID; expired ones INVITATION_EXPIRED", async () => {
  const org = cast.a.org.id;
  const used = await invite(db, cast.a.admin, org, freshEmail());
  const usedBy = await createUserWithEmail(db, used.email);
  await accept(db, usedBy, used.token);
  await expectCode(accept(db, usedBy, used.token), "INVITATION_INVALID");

  const revoked = await invite(db, cast.a.admin, org, freshEmail());
  const revokedFor = await createUserWithEmail(db, revoked.email);
  await db.queryAs(cast.a.admin, "select app_public.revoke_invitation($1)", [revoked.id]);
  await expectCode(accept(db, revokedFor, revoked.token), "INVITATION_INVALID");

  await expectCode(accept(db, revokedFor, "tbinv_" + "0".repeat(64)), "INVITATION_INVALID");
  await expectCode(accept(db, revokedFor, ""), "INVITATION_INVALID");
  await expectCode(accept(db, revokedFor, null as unknown as string), "INVITATION_INVALID");

  const expired = await invite(db, cast.a.admin, org, freshEmail());
  const expiredFor = await createUserWithEmail(db, expired.email);
  await db.owner.query("update app_public.invitations set expires_at = now() - interval '1 minute' where id = $1", [expired.id]);
  await expectCode(accept(db, expiredFor, expired.token), "INVITATION_EXPIRED"); // before the job ran
  const { rows } = await db.owner.query("select app_private.expire_invitations() as n");
  expect(rows[0].n).toBeGreaterThanOrEqual(1);
  expect((await invitationRow(expired.id)).status).toBe("expired");
  await expectCode(accept(db, expiredFor, expired.token), "INVITATION_EXPIRED"); // after it ran
});

test("resend: new token and expiry, the old token is dead; works for expired invitations too", async () => {
  const org = cast.a.org.id;
  const inv = await invite(db, cast.a.admin, org, freshEmail());
  await db.owner.query("update app_public.invitations set expires_at = now() + interval '1 hour' where id = $1", [inv.id]);
  const { rows } = await db.queryAs(
    cast.a.admin,
    "select r.invitation_token as token, (r.invitation).expires_at from app_public.resend_invitation($1) r",
    [inv.id],
  );
  expect(rows[0].token).not.toBe(inv.token);
  expect(rows[0].expires_at.getTime()).toBeGreaterThan(Date.now() + 6 * 24 * 3600 * 1000);
  const user = await createUserWithEmail(db, inv.email);
  await expectCode(accept(db, user, inv.token), "INVITATION_INVALID");
  await accept(db, user, rows[0].token);

  const late = await invite(db, cast.a.admin, org, freshEmail());
  await db.owner.query("update app_public.invitations set expires_at = now() - interval '1 minute' where id = $1", [late.id]);
  await db.owner.query("select app_private.expire_invitations($1)", [late.id]);
  const { rows: again } = await db.queryAs(cast.a.owner, "select (r.invitation).status::text, r.invitation_token as token from app_public.resend_invitation($1) r", [late.id]);
  expect(again[0].status).toBe("pending");
  await accept(db, await createUserWithEmail(db, late.email), again[0].token);

  await expectCode(db.queryAs(cast.a.admin, "select app_public.resend_invitation($1)", [inv.id]), "INVITATION_NOT_PENDING");
  await expectCode(db.queryAs(cast.a.member, "select app_public.resend_invitation($1)", [late.id]), "FORBIDDEN");
});

test("revoke: admins only, pending only", async () => {
  const inv = await invite(db, cast.a.admin, cast.a.org.id, freshEmail());
  await expectCode(db.queryAs(cast.a.member, "select app_public.revoke_invitation($1)", [inv.id]), "FORBIDDEN");
  const { rows } = await db.queryAs(cast.a.owner, "select status::text from app_public.revoke_invitation($1)", [inv.id]);
  expect(rows[0].status).toBe("revoked");
  await expectCode(db.queryAs(cast.a.owner, "select app_public.revoke_invitation($1)", [inv.id]), "INVITATION_NOT_PENDING");
  const { rows: jobs } = await db.owner.query("select count(*)::int as n from graphile_worker.jobs where key like '%' || $1", [inv.id]);
  expect(jobs[0].n).toBe(0); // email and expiry jobs removed
});

test("cross-tenant: B's admin and owner cannot see, revoke, resend or invite into A", async () => {
  const inv = await invite(db, cast.a.admin, cast.a.org.id, freshEmail());
  for (const who of [cast.b.owner, cast.b.admin, cast.b.member]) {
    const { rows } = await db.queryAs(who, "select id from app_public.invitations where organization_id = $1", [cast.a.org.id]);
    expect(rows).toEqual([]);
    await expectCode(db.queryAs(who, "select app_public.revoke_invitation($1)", [inv.id]), "NOT_FOUND");
    await expectCode(db.queryAs(who, "select app_public.resend_invitation($1)", [inv.id]), "NOT_FOUND");
    await expectCode(invite(db, who, cast.a.org.id, freshEmail()), "NOT_FOUND");
  }
  // members of A see no invitations either (admins' business); A's admin sees them
  expect((await db.queryAs(cast.a.member, "select id from app_public.invitations")).rows).toEqual([]);
  const { rows } = await db.queryAs(cast.a.admin, "select id from app_public.invitations where id = $1", [inv.id]);
  expect(rows).toHaveLength(1);
  expect((await invitationRow(inv.id)).status).toBe("pending");
});

test("the invitee sees their pending invitations (not other people's)", async () => {
  const email = freshEmail();
  await invite(db, cast.a.admin, cast.a.org.id, email);
  const user = await createUserWithEmail(db, email);
  const { rows } = await db.queryAs(user, "select email::text from app_public.my_pending_invitations()");
  expect(rows).toEqual([{ email }]);
  expect((await db.queryAs(cast.b.member, "select * from app_public.my_pending_invitations()")).rows).toEqual([]);
});

describe("seats: members + pending invitations <= max_seats", () => {
  test("pending invitations hold seats; revoking or expiry frees them", async () => {
    const owner = await createUser(db, "Seat Owner");
    const { rows } = await db.queryAs(owner, "select id from app_public.create_organization('Seat Co')");
    const org = rows[0].id; // free plan: 3 seats, 1 taken by the owner
    const one = await invite(db, owner, org, freshEmail());
    await invite(db, owner, org, freshEmail());
    await expectCode(invite(db, owner, org, freshEmail()), "SEAT_LIMIT_REACHED");
    await db.queryAs(owner, "select app_public.revoke_invitation($1)", [one.id]);
    const three = await invite(db, owner, org, freshEmail());
    await expectCode(invite(db, owner, org, freshEmail()), "SEAT_LIMIT_REACHED");
    await db.owner.query("update app_public.invitations set expires_at = now() - interval '1 second' where id = $1", [three.id]);
    await invite(db, owner, org, freshEmail()); // an invitation past its time holds no seat
  });

  test("10 concurrent invites with 2 seats left: exactly 2 succeed, the rest SEAT_LIMIT_REACHED", async () => {
    const owner = await createUser(db, "Race Owner");
    const { rows } = await db.queryAs(owner, "select id from app_public.create_organization('Invite Race')");
    const org = rows[0].id; // free: 3 seats, 1 used
    const result = await tally(Array.from({ length: 10 }, () => invite(db, owner, org, freshEmail())));
    expect(result).toEqual({ ok: 2, codes: { SEAT_LIMIT_REACHED: 8 } });
    const { rows: pending } = await db.owner.query(
      "select count(*)::int as n from app_public.invitations where organization_id = $1 and status = 'pending'",
      [org],
    );
    expect(pending[0].n).toBe(2);
  });

  test("10 concurrent accepts with 2 seats left: exactly 2 succeed, the rest SEAT_LIMIT_REACHED", async () => {
    const owner = await createUser(db, "Accept Owner");
    const { rows } = await db.queryAs(owner, "select id from app_public.create_organization('Accept Race')");
    const org = rows[0].id;
    await setPlan(db, org, "enterprise");
    const invitations = [];
    for (let i = 0; i < 10; i++) {
      const inv = await invite(db, owner, org, freshEmail());
      invitations.push({ inv, user: await createUserWithEmail(db, inv.email) });
    }
    await setPlan(db, org, "free"); // downgraded: 3 seats, 1 member → 2 left for 10 invitees
    const result = await tally(invitations.map(({ inv, user }) => accept(db, user, inv.token)));
    expect(result).toEqual({ ok: 2, codes: { SEAT_LIMIT_REACHED: 8 } });
    const { rows: counts } = await db.owner.query(
      `select c.seat_count, (select count(*)::int from app_public.organization_members m where m.organization_id = c.organization_id) as members
       from app_public.usage_counters c where c.organization_id = $1`,
      [org],
    );
    expect(counts[0]).toEqual({ seat_count: 3, members: 3 });
    // the 8 who lost keep pending invitations (nothing half-done)
    const { rows: pending } = await db.owner.query(
      "select count(*)::int as n from app_public.invitations where organization_id = $1 and status = 'pending'",
      [org],
    );
    expect(pending[0].n).toBe(8);
  });
});

test("accept and revoke racing on one invitation: exactly one wins, and the state agrees with it", async () => {
  for (let round = 0; round < 8; round++) {
    const inv = await invite(db, cast.a.admin, cast.a.org.id, freshEmail());
    const user = await createUserWithEmail(db, inv.email);
    const [accepted, revoked] = await Promise.allSettled([
      accept(db, user, inv.token),
      db.queryAs(cast.a.admin, "select app_public.revoke_invitation($1)", [inv.id]),
    ]);
    const row = await invitationRow(inv.id);
    const { rows } = await db.owner.query(
      "select count(*)::int as n from app_public.organization_members where organization_id = $1 and user_id = $2",
      [cast.a.org.id, user.userId],
    );
    if (accepted.status === "fulfilled") {
      expect(revoked.status).toBe("rejected");
      expect((revoked as PromiseRejectedResult).reason.detail).toBe("INVITATION_NOT_PENDING");
      expect(row.status).toBe("accepted");
      expect(rows[0].n).toBe(1);
    } else {
      expect(revoked.status).toBe("fulfilled");
      expect(accepted.reason.detail).toBe("INVITATION_INVALID");
      expect(row.status).toBe("revoked");
      expect(rows[0].n).toBe(0);
    }
  }
});

test("invite and revoke racing for the same email: never two pending invitations, never an orphan", async () => {
  for (let round = 0; round < 6; round++) {
    const email = freshEmail();
    const first = await invite(db, cast.a.admin, cast.a.org.id, email);
    const results = await Promise.allSettled([
      db.queryAs(cast.a.owner, "select app_public.revoke_invitation($1)", [first.id]),
      invite(db, cast.a.admin, cast.a.org.id, email),
    ]);
    expect(results[0].status).toBe("fulfilled");
    if (results[1].status === "rejected") expect(results[1].reason.detail).toBe("INVITATION_ALREADY_PENDING");
    const { rows } = await db.owner.query(
      "select status::text, count(*)::int as n from app_public.invitations where email = $1 group by status order by status",
      [email],
    );
    const pending = rows.find((r) => r.status === "pending")?.n ?? 0;
    expect(pending).toBe(results[1].status === "fulfilled" ? 1 : 0);
    expect(rows.find((r) => r.status === "revoked")?.n).toBe(1);
  }
});

test("accepting into an organization you already joined another way: ALREADY_MEMBER, invitation left pending", async () => {
  const inv = await invite(db, cast.a.admin, cast.a.org.id, freshEmail());
  const user = await createUserWithEmail(db, inv.email);
  await db.owner.query("insert into app_public.organization_members (organization_id, user_id) values ($1, $2)", [cast.a.org.id, user.userId]);
  await expectCode(accept(db, user, inv.token), "ALREADY_MEMBER");
  expect((await invitationRow(inv.id)).status).toBe("pending");
});
