// Settings validated in the database: organization branding/features and user settings. Each
// wrong type, unknown key, bad colour, bad timezone and out-of-range retention is refused with
// INVALID_SETTINGS naming the path and nothing changed; partial updates merge; members read,
// admins write; every change is audited; cross-tenant isolation.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createOrganization, createUser, twoTenants } from "../../helpers/fixtures.ts";
import { expectCode } from "../../helpers/team.ts";

let db: TestDatabase;
let cast: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  cast = await twoTenants(db);
});
afterAll(() => db?.drop());

const update = (as: any, org: string, patch: unknown) =>
  db.queryAs(as, "select * from app_public.update_organization_settings($1, $2)", [org, JSON.stringify(patch)]);
const stored = async (org: string) =>
  (await db.owner.query("select branding, features from app_public.organization_settings where organization_id = $1", [org])).rows[0];

async function refusal(as: any, org: string, patch: unknown): Promise<string> {
  try {
    await update(as, org, patch);
  } catch (error: any) {
    expect(error.detail).toBe("INVALID_SETTINGS");
    return error.message;
  }
  throw new Error(`patch ${JSON.stringify(patch)} was accepted`);
}

test("every organization gets its settings row with defaults, in the transaction that creates it", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "Defaults");
  expect(await stored(org.id)).toEqual({
    branding: { logoUrl: null, primaryColor: "#4f46e5", customDomain: null },
    features: { ssoEnabled: false, apiAccessEnabled: true, auditLogRetentionDays: 30 },
  });
  const { rows } = await db.queryAs(
    owner,
    `select (app_public.organization_settings_branding_settings(s)).*, (app_public.organization_settings_feature_settings(s)).*
     from app_public.organization_settings s where organization_id = $1`,
    [org.id],
  );
  expect(rows[0]).toEqual({
    logo_url: null, primary_color: "#4f46e5", custom_domain: null,
    sso_enabled: false, api_access_enabled: true, audit_log_retention_days: 30,
  });
});

test("partial updates merge into what is there", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "Merge");
  await update(owner, org.id, { branding: { primaryColor: "#1A2b3c" } });
  await update(owner, org.id, { branding: { logoUrl: "https://cdn.example.com/logo.png" }, features: { auditLogRetentionDays: 90 } });
  await update(owner, org.id, { features: { ssoEnabled: true } });
  await update(owner, org.id, {});
  expect(await stored(org.id)).toEqual({
    branding: { logoUrl: "https://cdn.example.com/logo.png", primaryColor: "#1A2b3c", customDomain: null },
    features: { ssoEnabled: true, apiAccessEnabled: true, auditLogRetentionDays: 90 },
  });
  await update(owner, org.id, { branding: { logoUrl: null, customDomain: "app.example.com" } }); // null clears
  expect((await stored(org.id)).branding).toEqual({ logoUrl: null, primaryColor: "#1A2b3c", customDomain: "app.example.com" });
});

test("wrong types, unknown keys, bad values: INVALID_SETTINGS with the path, nothing changed", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "Strict");
  await update(owner, org.id, { branding: { primaryColor: "#000000" } });
  const before = await stored(org.id);
  const cases: [unknown, string][] = [
    [{ branding: { primaryColor: "red" } }, "branding.primaryColor"],
    [{ branding: { primaryColor: "#12345" } }, "branding.primaryColor"],
    [{ branding: { primaryColor: "#1234567" } }, "branding.primaryColor"],
    [{ branding: { primaryColor: "#gg0000" } }, "branding.primaryColor"],
    [{ branding: { primaryColor: 123456 } }, "branding.primaryColor"],
    [{ branding: { primaryColor: null } }, "branding.primaryColor"],
    [{ branding: { logoUrl: "http://insecure.example.com/x.png" } }, "branding.logoUrl"],
    [{ branding: { logoUrl: "javascript:alert(1)" } }, "branding.logoUrl"],
    [{ branding: { logoUrl: ["https://a.example.com"] } }, "branding.logoUrl"],
    [{ branding: { customDomain: "not a domain" } }, "branding.customDomain"],
    [{ branding: { customDomain: "https://app.example.com" } }, "branding.customDomain"],
    [{ branding: { colour: "#000000" } }, "branding.colour"],
    [{ branding: "blue" }, "branding"],
    [{ branding: null }, "branding"],
    [{ features: { ssoEnabled: "yes" } }, "features.ssoEnabled"],
    [{ features: { ssoEnabled: null } }, "features.ssoEnabled"],
    [{ features: { apiAccessEnabled: 1 } }, "features.apiAccessEnabled"],
    [{ features: { auditLogRetentionDays: 0 } }, "features.auditLogRetentionDays"],
    [{ features: { auditLogRetentionDays: 3651 } }, "features.auditLogRetentionDays"],
    [{ features: { auditLogRetentionDays: -5 } }, "features.auditLogRetentionDays"],
    [{ features: { auditLogRetentionDays: 30.5 } }, "features.auditLogRetentionDays"],
    [{ features: { auditLogRetentionDays: "30" } }, "features.auditLogRetentionDays"],
    [{ features: { darkMode: true } }, "features.darkMode"],
    [{ theme: {} }, "theme"],
    [[], "patch"],
    ["text", "patch"],
    // one good key does not carry a bad one through
    [{ branding: { primaryColor: "#ffffff", logoUrl: 5 } }, "branding.logoUrl"],
    [{ branding: { primaryColor: "#ffffff" }, features: { auditLogRetentionDays: 99999 } }, "features.auditLogRetentionDays"],
  ];
  for (const [patch, path] of cases) {
    const message = await refusal(owner, org.id, patch);
    expect(message.startsWith(`${path}:`)).toBe(true);
  }
  expect(await stored(org.id)).toEqual(before);
  // the limits themselves are fine
  await update(owner, org.id, { features: { auditLogRetentionDays: 1 } });
  await update(owner, org.id, { features: { auditLogRetentionDays: 3650 } });
});

test("the trigger validates every write path, not only the mutation", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "Direct");
  await expectCode(
    db.owner.query(`update app_public.organization_settings set features = features || '{"auditLogRetentionDays": 0}' where organization_id = $1`, [org.id]),
    "INVALID_SETTINGS",
  );
  await expectCode(
    db.owner.query(`update app_public.organization_settings set branding = '{"extra": 1}' where organization_id = $1`, [org.id]),
    "INVALID_SETTINGS",
  );
});

test("members read, admins and owners change; every change is audited with who did it", async () => {
  const { a } = cast;
  const { rows } = await db.queryAs(a.member, "select organization_id from app_public.organization_settings");
  expect(rows.map((r) => r.organization_id)).toEqual([a.org.id]);
  const before = await stored(a.org.id);
  await expectCode(update(a.member, a.org.id, { branding: { primaryColor: "#ff0000" } }), "FORBIDDEN");
  expect(await stored(a.org.id)).toEqual(before);
  // no direct writes for anyone
  await expect(
    db.queryAs(a.owner, "update app_public.organization_settings set features = '{}' where organization_id = $1", [a.org.id]),
  ).rejects.toMatchObject({ code: "42501" });

  await update(a.admin, a.org.id, { branding: { primaryColor: "#00ff00" } });
  const { rows: audit } = await db.owner.query(
    "select created_by, details from app_public.audit_events where organization_id = $1 and action = 'settings.changed'",
    [a.org.id],
  );
  expect(audit).toHaveLength(1);
  expect(audit[0].created_by).toBe(a.admin.userId);
  expect(audit[0].details.from.branding.primaryColor).toBe("#4f46e5");
  expect(audit[0].details.to.branding.primaryColor).toBe("#00ff00");
});

test("cross-tenant: B cannot read or change A's settings", async () => {
  const { a, b } = cast;
  const before = await stored(a.org.id);
  for (const who of [b.owner, b.admin, b.member]) {
    const { rows } = await db.queryAs(who, "select * from app_public.organization_settings where organization_id = $1", [a.org.id]);
    expect(rows).toEqual([]);
    await expectCode(update(who, a.org.id, { branding: { primaryColor: "#123456" } }), "NOT_FOUND");
  }
  expect(await stored(a.org.id)).toEqual(before);
});

describe("user settings", () => {
  const updateUser = (as: any, patch: unknown) =>
    db.queryAs(as, "select * from app_public.update_user_settings($1)", [JSON.stringify(patch)]);

  test("created with the user, merged on update, real IANA time zones only", async () => {
    const user = await createUser(db);
    const { rows } = await db.queryAs(user, "select locale, timezone, email_notifications from app_public.my_settings()");
    expect(rows[0]).toEqual({ locale: "en", timezone: "UTC", email_notifications: true });
    await updateUser(user, { timezone: "Europe/Berlin" });
    await updateUser(user, { emailNotifications: false, locale: "pt-BR" });
    const { rows: after } = await db.queryAs(user, "select locale, timezone, email_notifications from app_public.user_settings");
    expect(after).toEqual([{ locale: "pt-BR", timezone: "Europe/Berlin", email_notifications: false }]);

    for (const [patch, path] of [
      [{ timezone: "Mars/Olympus_Mons" }, "timezone"],
      [{ timezone: "europe/berlin" }, "timezone"],
      [{ timezone: 1 }, "patch.timezone"],
      [{ timezone: null }, "patch.timezone"],
      [{ locale: "english" }, "locale"],
      [{ locale: "EN" }, "locale"],
      [{ emailNotifications: "no" }, "patch.emailNotifications"],
      [{ theme: "dark" }, "patch.theme"],
      [[1], "patch"],
    ] as [unknown, string][]) {
      const e = await updateUser(user, patch).catch((error) => error);
      expect(e.detail).toBe("INVALID_SETTINGS");
      expect(e.message.startsWith(`${path}:`)).toBe(true);
    }
    const { rows: unchanged } = await db.queryAs(user, "select locale, timezone, email_notifications from app_public.user_settings");
    expect(unchanged).toEqual(after);
  });

  test("nobody sees or changes anyone else's settings", async () => {
    const one = await createUser(db);
    const two = await createUser(db);
    await updateUser(one, { timezone: "Asia/Tokyo" });
    const { rows } = await db.queryAs(two, "select user_id from app_public.user_settings");
    expect(rows.map((r) => r.user_id)).toEqual([two.userId]);
    // the mutation only ever touches the caller's row
    await updateUser(two, { timezone: "America/New_York" });
    const { rows: mine } = await db.owner.query("select timezone from app_public.user_settings where user_id = $1", [one.userId]);
    expect(mine[0].timezone).toBe("Asia/Tokyo");
    await expect(db.queryAs(null, "select app_public.update_user_settings('{}')")).rejects.toMatchObject({ code: "42501" });
  });
});
