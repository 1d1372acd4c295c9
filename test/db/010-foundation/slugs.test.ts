// Slugs: format and reserved words (INVALID_SLUG), uniqueness across current and old slugs
// (SLUG_TAKEN), one change only (SLUG_ALREADY_CHANGED), redirects in organization_by_slug,
// who may change it, and cross-tenant visibility.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createOrganization, createUser, twoTenants } from "../../helpers/fixtures.ts";
import { expectCode, tally } from "../../helpers/team.ts";

let db: TestDatabase;
let cast: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  cast = await twoTenants(db);
});
afterAll(() => db?.drop());

const change = (as: any, org: string, slug: string) =>
  db.queryAs(as, "select * from app_public.change_organization_slug($1, $2)", [org, slug]);
const bySlug = async (as: any, slug: string) =>
  (await db.queryAs(as, "select id from app_public.organization_by_slug($1)", [slug])).rows[0]?.id ?? null;

test("invalid slugs are refused with nothing changed", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "Format Check");
  for (const slug of ["ab", "a".repeat(49), "-abc", "abc-", "ab--cd", "ab_cd", "ab cd", "Ab!", "", "über"]) {
    await expectCode(change(owner, org.id, slug), "INVALID_SLUG");
  }
  for (const slug of ["api", "admin", "www", "graphql", "GraphiQL", "webhooks"]) {
    await expectCode(change(owner, org.id, slug), "INVALID_SLUG");
  }
  const { rows } = await db.owner.query("select slug, slug_changed_at from app_public.organizations where id = $1", [org.id]);
  expect(rows[0]).toEqual({ slug: org.slug, slug_changed_at: null });
  // upper case and spaces around are normalised, 48 characters fit
  const { rows: changed } = await change(owner, org.id, `  ${"A".repeat(48)} `);
  expect(changed[0].slug).toBe("a".repeat(48));
});

test("a slug changes once; the old one keeps resolving; both stay taken", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "Old Name");
  expect(org.slug).toBe("old-name");
  const { rows } = await change(owner, org.id, "new-name");
  expect(rows[0]).toMatchObject({ id: org.id, slug: "new-name" });
  expect(await bySlug(owner, "new-name")).toBe(org.id);
  expect(await bySlug(owner, "old-name")).toBe(org.id);
  expect(await bySlug(owner, "OLD-NAME")).toBe(org.id);
  await expectCode(change(owner, org.id, "newer-name"), "SLUG_ALREADY_CHANGED");

  const other = await createOrganization(db, owner, "Someone Else");
  await expectCode(change(owner, other.id, "old-name"), "SLUG_TAKEN"); // still redirecting
  await expectCode(change(owner, other.id, "new-name"), "SLUG_TAKEN");
  // new organizations skip it as well
  expect((await createOrganization(db, owner, "Old Name")).slug).toBe("old-name-2");

  const { rows: audit } = await db.owner.query(
    "select details, created_by from app_public.audit_events where organization_id = $1 and action = 'organization.slug_changed'",
    [org.id],
  );
  expect(audit).toEqual([{ details: { from: "old-name", to: "new-name" }, created_by: owner.userId }]);
});

test("admins may change the slug, members may not, outsiders see nothing", async () => {
  const { a, b } = cast;
  await expectCode(change(a.member, a.org.id, "members-try"), "FORBIDDEN");
  for (const who of [b.owner, b.admin, b.member]) {
    await expectCode(change(who, a.org.id, "intruders"), "NOT_FOUND");
    expect(await bySlug(who, a.org.slug)).toBeNull();
  }
  const { rows } = await change(a.admin, a.org.id, "alpha-renamed");
  expect(rows[0].slug).toBe("alpha-renamed");
  for (const who of [b.owner, b.admin, b.member]) {
    expect(await bySlug(who, "alpha-renamed")).toBeNull();
    expect(await bySlug(who, a.org.slug)).toBeNull(); // the redirect is A's too
    expect((await db.queryAs(who, "select * from app_public.organization_slug_redirects")).rows.every((r) => r.organization_id !== a.org.id)).toBe(true);
  }
  expect(await bySlug(a.member, a.org.slug)).toBe(a.org.id);
  expect(await bySlug(null as any, a.org.slug).catch((e) => e.code)).toBe("42501");
});

test("two organizations racing for one slug: exactly one gets it", async () => {
  const owner = await createUser(db);
  const orgs = [];
  for (let i = 0; i < 8; i++) orgs.push(await createOrganization(db, owner, `Racer ${i}`));
  const result = await tally(orgs.map((o) => change(owner, o.id, "the-prize")));
  expect(result).toEqual({ ok: 1, codes: { SLUG_TAKEN: 7 } });
});

test("a slug being vacated and taken at once: it ends up either redirecting or current, never both", async () => {
  const owner = await createUser(db);
  for (let round = 0; round < 5; round++) {
    const x = await createOrganization(db, owner, `Swap X ${round}`);
    const y = await createOrganization(db, owner, `Swap Y ${round}`);
    await Promise.allSettled([change(owner, x.id, `swap-x-${round}-moved`), change(owner, y.id, x.slug)]);
    const { rows } = await db.owner.query(
      `select (select count(*) from app_public.organizations where slug = $1)::int
            + (select count(*) from app_public.organization_slug_redirects where slug = $1)::int as n`,
      [x.slug],
    );
    expect(rows[0].n).toBe(1);
  }
});
