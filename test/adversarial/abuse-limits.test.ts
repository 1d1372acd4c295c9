// Attacks through ordinary inputs (issue "No tenant can hurt another", findings 9–12), kept as
// regression tests: names that could not make an organization, invitations as a spam channel,
// organizations created for their free credits, and inputs that validated too little.

import { randomBytes } from "node:crypto";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createOrganization, createUser } from "../helpers/fixtures.ts";
import { errorCode, invite, setPlan } from "../helpers/team.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let db: TestDatabase;
let server: TestServer;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

/** A deterministic pseudo-random source, so a failure can be replayed. */
function seeded(seed: number) {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state / 0x7fffffff;
  };
}

/** Random names from many scripts, with spaces, punctuation, emoji and invisible characters. */
function randomName(random: () => number): string {
  const ranges: [number, number][] = [
    [0x41, 0x5a], [0x61, 0x7a], [0x30, 0x39], [0x20, 0x2f], [0xc0, 0x24f], [0x370, 0x3ff], [0x400, 0x4ff],
    [0x590, 0x5ff], [0x600, 0x6ff], [0x4e00, 0x4fff], [0x3040, 0x30ff], [0x1f600, 0x1f64f], [0x200b, 0x200f],
  ];
  const length = 1 + Math.floor(random() * 99);
  let name = "";
  for (let i = 0; i < length; i++) {
    const [from, to] = ranges[Math.floor(random() * ranges.length)];
    name += String.fromCodePoint(from + Math.floor(random() * (to - from + 1)));
  }
  return name;
}

describe("organization names and slugs (finding 9)", () => {
  test("a name whose slug would be cut on a hyphen makes an organization", async () => {
    const owner = await createUser(db, "Acme Founder");
    const org = await createOrganization(db, owner, "Acme Rocket Propulsion Laboratories Inc Group");
    expect(org.slug).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/);
    expect(org.slug.length).toBeLessThanOrEqual(48);
  });

  test("300 random Unicode names each make an organization with a valid slug, or get INVALID_NAME", async () => {
    const random = seeded(20261130);
    const outcomes: Record<string, number> = {};
    for (let i = 0; i < 300; i++) {
      const name = randomName(random);
      const owner = await createUser(db, `Owner ${i}`);
      try {
        const { rows: created } = await db.queryAs(owner, "select slug, name from app_public.create_organization($1)", [name]);
        expect(created[0].slug).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/);
        expect(created[0].slug.length).toBeGreaterThanOrEqual(3);
        expect(created[0].slug.length).toBeLessThanOrEqual(48);
        outcomes.created = (outcomes.created ?? 0) + 1;
      } catch (error) {
        const code = await errorCode(Promise.reject(error));
        if (code !== "INVALID_NAME") throw new Error(`name ${JSON.stringify(name)}: ${code} ${(error as Error).message}`);
        outcomes.INVALID_NAME = (outcomes.INVALID_NAME ?? 0) + 1;
      }
    }
    expect(outcomes.created).toBeGreaterThan(200);
  }, 120_000);
});

describe("names of only invisible characters, and other loose inputs (finding 12)", () => {
  const invisible = ["\u200b", "\u200b\u200c\u200d", " \ufeff ", "\u2060\u00ad"];

  test.each(invisible)("an organization named %j is INVALID_NAME", async (name) => {
    const owner = await createUser(db);
    expect(await errorCode(db.queryAs(owner, "select app_public.create_organization($1)", [name]))).toBe("INVALID_NAME");
  });

  test("a person, project or API key cannot be named with invisible characters only, or with control characters", async () => {
    const owner = await createUser(db);
    const org = await createOrganization(db, owner, "Names Co");
    expect(await errorCode(db.queryAs(owner, "update app_public.users set name = $1 where id = $2", ["\u200b\u200b", owner.userId]))).toBe("INVALID_NAME");
    expect(await errorCode(db.queryAs(owner, "insert into app_public.projects (organization_id, name) values ($1, $2)", [org.id, "\u200d"]))).toBe("INVALID_NAME");
    expect(await errorCode(db.queryAs(owner, "insert into app_public.projects (organization_id, name) values ($1, $2)", [org.id, "bad\u0007bell"]))).toBe("INVALID_NAME");
    expect(await errorCode(db.queryAs(owner, "select app_public.create_api_key($1, $2, 'member', null)", [org.id, "\ufeff"]))).toBe("INVALID_NAME");
    // Invisible characters around a real name are trimmed, like spaces.
    const { rows } = await db.queryAs(owner, "insert into app_public.projects (organization_id, name) values ($1, $2) returning name", [org.id, "\u200b Launch \u200b"]);
    expect(rows[0].name).toBe("Launch");
  });

  test("updateUser with a name over 100 characters or with surrounding spaces answers with a code, not a masked error", async () => {
    const owner = await createUser(db);
    const query = "mutation($id: UUID!, $name: String!) { updateUser(input: { id: $id, patch: { name: $name } }) { user { name } } }";
    const long = await server.graphql(query, { id: owner.userId, name: "x".repeat(101) }, owner);
    expect(long.errors?.[0].extensions?.code).toBe("INVALID_NAME");
    const spaced = await server.graphql(query, { id: owner.userId, name: "  Ada  " }, owner);
    expect(spaced.errors).toBeUndefined();
    expect(spaced.data.updateUser.user.name).toBe("Ada");
  });

  test.each([
    'https://a.b/"><script>alert(1)</script>',
    "https://a.b/x'onerror='alert(1)",
    "https://a.b/<img>",
    "https://a.b/\\evil",
    "javascript:alert(1)",
    "https://a.b/x) ; background:url(https://evil.example/",
  ])("a logoUrl of %j is refused with INVALID_SETTINGS", async (logoUrl) => {
    const owner = await createUser(db);
    const org = await createOrganization(db, owner, "Brand Co");
    expect(
      await errorCode(db.queryAs(owner, "select app_public.update_organization_settings($1, $2)", [org.id, { branding: { logoUrl } }])),
    ).toBe("INVALID_SETTINGS");
  });

  test("an ordinary logo URL with a query string is accepted", async () => {
    const owner = await createUser(db);
    const org = await createOrganization(db, owner, "Logo Co");
    await db.queryAs(owner, "select app_public.update_organization_settings($1, $2)", [
      org.id,
      { branding: { logoUrl: "https://cdn.example.com/logos/acme.png?v=3&size=64#top" } },
    ]);
  });

  test.each(["tomorrow", "now", "today", "epoch", "infinity", "next friday", "2026-13-45"])(
    "a Datetime of %j is refused with INVALID_INPUT and changes nothing",
    async (expiresAt) => {
      const owner = await createUser(db);
      const org = await createOrganization(db, owner, "Keys Co");
      const response = await server.graphql(
        "mutation($org: UUID!, $at: Datetime) { createApiKey(input: { organizationId: $org, name: \"k\", expiresAt: $at }) { apiKey { id } } }",
        { org: org.id, at: expiresAt },
        owner,
      );
      expect(response.errors?.[0].extensions?.code).toBe("INVALID_INPUT");
      const inline = await server.graphql(
        `mutation { createApiKey(input: { organizationId: "${org.id}", name: "k", expiresAt: "${expiresAt}" }) { apiKey { id } } }`,
        {},
        owner,
      );
      expect(inline.errors?.[0].extensions?.code).toBe("INVALID_INPUT");
      const { rows } = await db.owner.query("select count(*)::int as n from app_public.api_keys where organization_id = $1", [org.id]);
      expect(rows[0].n).toBe(0);
    },
  );
});

describe("invitations as a spam channel (finding 10)", () => {
  test("invite → revoke → invite to one address stops at the plan's daily limit per address", async () => {
    const owner = await createUser(db);
    const org = await createOrganization(db, owner, "Spam Co");
    const target = `victim-${randomBytes(3).toString("hex")}@example.com`;
    const { rows: plan } = await db.owner.query("select max_invitations_per_email_per_day as n from app_public.plans where id = 'free'");
    const perAddress: number = plan[0].n;
    expect(perAddress).toBeGreaterThanOrEqual(2);
    const sent: string[] = [];
    for (let i = 0; i < perAddress; i++) {
      const invitation = await invite(db, owner, org.id, target);
      sent.push(invitation.id);
      await db.queryAs(owner, "select app_public.revoke_invitation($1)", [invitation.id]);
    }
    expect(await errorCode(invite(db, owner, org.id, target))).toBe("INVITATION_LIMIT_REACHED");
    // Resending is an email too.
    const other = `other-${randomBytes(3).toString("hex")}@example.com`;
    const invitation = await invite(db, owner, org.id, other);
    for (let i = 1; i < perAddress; i++) await db.queryAs(owner, "select app_public.resend_invitation($1)", [invitation.id]);
    expect(await errorCode(db.queryAs(owner, "select app_public.resend_invitation($1)", [invitation.id]))).toBe("INVITATION_LIMIT_REACHED");
    // Another organization can still invite the same address: the limits are per organization.
    const owner2 = await createUser(db);
    const org2 = await createOrganization(db, owner2, "Legit Co");
    await invite(db, owner2, org2.id, target);
    // Exactly the emails that were allowed were counted: the limit to each of the two addresses.
    const { rows } = await db.owner.query("select count(*)::int as n from app_private.invitation_sends where organization_id = $1", [org.id]);
    expect(rows[0].n).toBe(2 * perAddress);
  });

  test("an organization stops at its plan's hourly limit, counted across many addresses and concurrent requests", async () => {
    const owner = await createUser(db);
    const org = await createOrganization(db, owner, "Bulk Co");
    await setPlan(db, org.id, "enterprise"); // no seat limit; its hourly limit, 500, lowered for the test
    await db.owner.query("update app_public.plans set max_invitations_per_hour = 12 where id = 'enterprise'");
    try {
      const attempts = Array.from({ length: 30 }, async (_, i) => {
        const invitation = await invite(db, owner, org.id, `bulk-${i}@example.com`);
        await db.queryAs(owner, "select app_public.revoke_invitation($1)", [invitation.id]);
        return invitation;
      });
      const results = await Promise.allSettled(attempts);
      const ok = results.filter((r) => r.status === "fulfilled").length;
      const codes = await Promise.all(results.filter((r) => r.status === "rejected").map((r) => errorCode(Promise.reject((r as PromiseRejectedResult).reason))));
      expect(ok).toBe(12);
      expect(new Set(codes)).toEqual(new Set(["INVITATION_LIMIT_REACHED"]));
    } finally {
      await db.owner.query("update app_public.plans set max_invitations_per_hour = 500 where id = 'enterprise'");
    }
  });
});

describe("organizations created for their free credits (finding 11)", () => {
  test("a user may own 3 organizations on the free plan; the 4th is ORGANIZATION_LIMIT_REACHED, also when racing", async () => {
    const owner = await createUser(db);
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => db.queryAs(owner, "select app_public.create_organization($1)", [`Farm ${i}`])),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(3);
    for (const r of results.filter((r) => r.status === "rejected")) {
      expect(await errorCode(Promise.reject((r as PromiseRejectedResult).reason))).toBe("ORGANIZATION_LIMIT_REACHED");
    }
    // An organization moved to a paid plan no longer counts against the free ones.
    const { rows } = await db.owner.query(
      "select o.id from app_public.organizations o join app_public.organization_members m on m.organization_id = o.id where m.user_id = $1 limit 1",
      [owner.userId],
    );
    await setPlan(db, rows[0].id, "pro");
    await db.queryAs(owner, "select app_public.create_organization('Farm again')");
  });
});
