// add_sso_domain / confirm_sso_domain / remove_sso_domain (sso-domains.sql): admins claim a
// domain, DNS proves it, one organization per verified domain, public mail domains refused.
import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants } from "../../helpers/fixtures.ts";
import { codeOf } from "../../helpers/sql-accounts.ts";
import { verifiedDomain } from "./sso.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

test("an admin adds a domain, verifies it with its TXT record, and the audit log says so", async () => {
  const { a } = await twoTenants(db);
  const added = (await db.queryAs(a.admin, "select id, domain, verified_at, app_public.sso_domains_verification_record(d) as record from app_public.add_sso_domain($1, ' Acme-Corp.TEST. ') d", [a.org.id])).rows[0];
  expect(added).toMatchObject({ domain: "acme-corp.test", verified_at: null, record: expect.stringMatching(/^tenantbase-verification=[0-9a-f]{32}$/) });
  // no record yet, or the wrong one
  expect(await codeOf(db.queryAs(a.admin, "select app_hidden.confirm_sso_domain($1, $2)", [added.id, []]))).toBe("SSO_DOMAIN_NOT_VERIFIED");
  expect(await codeOf(db.queryAs(a.admin, "select app_hidden.confirm_sso_domain($1, $2)", [added.id, ["tenantbase-verification=nope"]]))).toBe("SSO_DOMAIN_NOT_VERIFIED");
  const ok = (await db.queryAs(a.admin, "select (d).verified_at from app_hidden.confirm_sso_domain($1, $2) d", [added.id, [added.record]])).rows[0];
  expect(ok.verified_at).not.toBeNull();
  const audit = (await db.owner.query("select action from app_public.audit_events where organization_id = $1 and action like 'sso.%' order by created_at", [a.org.id])).rows.map((r) => r.action);
  expect(audit).toEqual(["sso.domain_added", "sso.domain_verified"]);
  // members and other organizations see no domain
  expect((await db.queryAs(a.member, "select * from app_public.sso_domains")).rows).toEqual([]);
  expect((await db.queryAs(a.admin, "select domain from app_public.sso_domains")).rows).toEqual([{ domain: "acme-corp.test" }]);
});

test("a domain verified by one organization cannot be verified (or added) by another: SSO_DOMAIN_TAKEN", async () => {
  const { a, b } = await twoTenants(db);
  // B adds it first (unverified), A verifies it, then B's verification is refused even with B's own record
  const bRow = (await db.queryAs(b.admin, "select id, verification_token from app_public.add_sso_domain($1, 'shared.test')", [b.org.id])).rows[0];
  await verifiedDomain(db, a.admin, a.org.id, "shared.test");
  expect(await codeOf(db.queryAs(b.admin, "select app_hidden.confirm_sso_domain($1, $2)", [bRow.id, [`tenantbase-verification=${bRow.verification_token}`]]))).toBe("SSO_DOMAIN_TAKEN");
  expect(await codeOf(db.queryAs(b.owner, "select app_public.add_sso_domain($1, 'shared.test')", [b.org.id]))).toBe("SSO_DOMAIN_TAKEN");
  // the index is the backstop
  await expect(db.owner.query("update app_public.sso_domains set verified_at = now() where id = $1", [bRow.id])).rejects.toMatchObject({ code: "23505" });
});

test("public mail domains, bad names, members, other organizations and anonymous callers are refused; nothing is stored", async () => {
  const { a, b } = await twoTenants(db);
  for (const domain of ["gmail.com", "Outlook.com", "proton.me"]) {
    expect(await codeOf(db.queryAs(a.admin, "select app_public.add_sso_domain($1, $2)", [a.org.id, domain]))).toBe("PUBLIC_EMAIL_DOMAIN");
  }
  for (const domain of ["", "localhost", "a..b", "x".repeat(300) + ".com", "-a.com", "a b.com"]) {
    expect(await codeOf(db.queryAs(a.admin, "select app_public.add_sso_domain($1, $2)", [a.org.id, domain]))).toBe("INVALID_INPUT");
  }
  expect(await codeOf(db.queryAs(a.member, "select app_public.add_sso_domain($1, 'member.test')", [a.org.id]))).toBe("FORBIDDEN");
  expect(await codeOf(db.queryAs(b.admin, "select app_public.add_sso_domain($1, 'other.test')", [a.org.id]))).toBe("NOT_FOUND");
  await expect(db.queryAs(null, "select app_public.add_sso_domain($1, 'anon.test')", [a.org.id])).rejects.toMatchObject({ code: "42501" });
  const { id } = await verifiedDomain(db, a.admin, a.org.id);
  expect(await codeOf(db.queryAs(b.admin, "select app_hidden.confirm_sso_domain($1, '{}')", [id]))).toBe("NOT_FOUND");
  expect(await codeOf(db.queryAs(a.member, "select app_public.remove_sso_domain($1)", [id]))).toBe("FORBIDDEN");
  expect(await codeOf(db.queryAs(b.owner, "select app_public.remove_sso_domain($1)", [id]))).toBe("NOT_FOUND");
  expect((await db.owner.query("select count(*)::int as n from app_public.sso_domains where organization_id = $1", [a.org.id])).rows[0].n).toBe(1);
  expect((await db.queryAs(a.admin, "select app_public.remove_sso_domain($1) as ok", [id])).rows[0].ok).toBe(true);
  expect((await db.owner.query("select count(*)::int as n from app_public.sso_domains where organization_id = $1", [a.org.id])).rows[0].n).toBe(0);
});

test("at most 20 domains per organization (SSO_DOMAIN_LIMIT_REACHED); adding one twice returns it", async () => {
  const { a } = await twoTenants(db);
  for (let i = 0; i < 20; i++) await db.queryAs(a.admin, "select app_public.add_sso_domain($1, $2)", [a.org.id, `d${i}.test`]);
  expect((await db.queryAs(a.admin, "select domain from app_public.add_sso_domain($1, 'd3.test')", [a.org.id])).rows[0].domain).toBe("d3.test");
  expect(await codeOf(db.queryAs(a.admin, "select app_public.add_sso_domain($1, 'd20.test')", [a.org.id]))).toBe("SSO_DOMAIN_LIMIT_REACHED");
});
