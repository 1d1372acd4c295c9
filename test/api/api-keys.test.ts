// Organization API keys over HTTP: createApiKey / revokeApiKey, requests with
// Authorization: Bearer tb_live_…, INVALID_TOKEN for revoked, expired and unknown keys, api_calls
// counting, and a key of organization A trying every root field and every mutation against B.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants } from "../helpers/fixtures.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { errorProblems, INTROSPECT, named, required, sampleInput, type FullType, type TypeRef } from "../helpers/api-sweep.ts";

let db: TestDatabase;
let server: TestServer;
let cast: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
  cast = await twoTenants(db);
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const CREATE = `mutation($input: CreateApiKeyInput!) {
  createApiKey(input: $input) { apiKey { id name role lastUsedAt expiresAt secretPrefix } secret }
}`;

async function createKey(role = "MEMBER", expiresAt: string | null = null, as = cast.a.admin) {
  const response = await server.graphql(
    CREATE,
    { input: { organizationId: cast.a.org.id, name: `key ${role}`, role: role.toLowerCase(), expiresAt } },
    as,
  );
  expect(response.errors).toBeUndefined();
  return response.data.createApiKey as { apiKey: any; secret: string };
}

const apiCalls = async (org: string) =>
  Number((await db.owner.query("select api_calls from app_public.usage_counters where organization_id = $1", [org])).rows[0].api_calls);

test("createApiKey returns the key and its secret once; the key reads its organization alone", async () => {
  const { apiKey, secret } = await createKey("MEMBER");
  expect(apiKey).toMatchObject({ name: "key MEMBER", role: "member", lastUsedAt: null, expiresAt: null });
  expect(secret).toMatch(/^tb_live_[0-9a-f]{64}$/);

  const before = await apiCalls(cast.a.org.id);
  const response = await server.graphql(`{ organizations { nodes { id } } currentUser { id } organizationMembers { totalCount } }`, {}, secret);
  expect(response.status).toBe(200);
  expect(response.errors).toBeUndefined();
  expect(response.data.organizations.nodes).toEqual([{ id: cast.a.org.id }]);
  expect(response.data.currentUser).toBeNull();
  expect(response.data.organizationMembers.totalCount).toBe(3);
  expect(await apiCalls(cast.a.org.id)).toBe(before + 1);
  await server.graphql(`{ organizations { totalCount } }`, {}, secret);
  expect(await apiCalls(cast.a.org.id)).toBe(before + 2);

  // admins see when it was used; the secret is nowhere in the API
  const listed = await server.graphql(`{ apiKeys { nodes { id lastUsedAt secretPrefix } } }`, {}, cast.a.admin);
  const mine = listed.data.apiKeys.nodes.find((k: any) => k.id === apiKey.id);
  expect(mine.lastUsedAt).not.toBeNull();
  expect(JSON.stringify(listed)).not.toContain(secret);
});

test("the key's role is what RLS sees: a member key cannot read admin-only tables, an admin key can", async () => {
  const member = await createKey("MEMBER");
  const admin = await createKey("ADMIN");
  const query = `{ auditEvents { totalCount } apiKeys { totalCount } invitations { totalCount } }`;
  const asMember = await server.graphql(query, {}, member.secret);
  expect(asMember.data).toEqual({ auditEvents: { totalCount: 0 }, apiKeys: { totalCount: 0 }, invitations: { totalCount: 0 } });
  const asAdmin = await server.graphql(query, {}, admin.secret);
  expect(asAdmin.data.auditEvents.totalCount).toBeGreaterThan(0);
  expect(asAdmin.data.apiKeys.totalCount).toBeGreaterThanOrEqual(2);
});

test("a member key writes under the same RLS policies: creates a project in its organization, never in B", async () => {
  const { secret } = await createKey("MEMBER");
  const create = (organizationId: string) =>
    server.graphql(
      `mutation($o: UUID!) { createProject(input: {project: {organizationId: $o, name: "From the backend"}}) { project { id organizationId createdBy } } }`,
      { o: organizationId },
      secret,
    );
  const mine = await create(cast.a.org.id);
  expect(mine.errors).toBeUndefined();
  expect(mine.data.createProject.project).toMatchObject({ organizationId: cast.a.org.id, createdBy: null });
  const theirs = await create(cast.b.org.id);
  expect(theirs.errors).toBeDefined();
  const { rows } = await db.owner.query("select count(*)::int as n from app_public.projects where organization_id = $1", [cast.b.org.id]);
  expect(rows[0].n).toBe(0);
});

test("a key drives the generation lifecycle for its organization (how a customer's backend calls it)", async () => {
  const { secret } = await createKey("MEMBER");
  const project = await server.graphql(
    `mutation($o: UUID!) { createProject(input: {project: {organizationId: $o, name: "Backend jobs"}}) { project { id } } }`,
    { o: cast.a.org.id },
    secret,
  );
  const projectId = project.data.createProject.project.id;
  const START = `mutation($o: UUID!, $p: UUID!, $k: String!) {
    startGeneration(input: {organizationId: $o, projectId: $p, kind: image, model: "flux-1",
      metadata: {prompt: "a kitten"}, estimatedCredits: "10", idempotencyKey: $k}) { generation { id status creditsEstimated } }
  }`;
  const started = await server.graphql(START, { o: cast.a.org.id, p: projectId, k: "key-gen-1" }, secret);
  expect(started.errors).toBeUndefined();
  const id = started.data.startGeneration.generation.id;
  const done = await server.graphql(
    `mutation($id: UUID!) { completeGeneration(input: {generationId: $id, credits: "7"}) { generation { status creditsCharged } } }`,
    { id },
    secret,
  );
  expect(done.errors).toBeUndefined();
  expect(done.data.completeGeneration.generation).toEqual({ status: "succeeded", creditsCharged: "7" });
  // and never for another organization
  const elsewhere = await server.graphql(START, { o: cast.b.org.id, p: projectId, k: "key-gen-2" }, secret);
  expect(elsewhere.errors?.map((e) => e.extensions?.code)).toEqual(["NOT_FOUND"]);
});

test("revoked, expired, unknown and malformed keys are 401 INVALID_TOKEN", async () => {
  const { apiKey, secret } = await createKey("MEMBER");
  expect((await server.graphql(`{ organizations { totalCount } }`, {}, secret)).status).toBe(200);

  const revoked = await server.graphql(
    `mutation($id: UUID!) { revokeApiKey(input: {id: $id}) { apiKey { id revokedAt } } }`,
    { id: apiKey.id },
    cast.a.admin,
  );
  expect(revoked.data.revokeApiKey.apiKey.revokedAt).not.toBeNull();

  const expiring = await createKey("MEMBER", new Date(Date.now() + 3600_000).toISOString());
  expect(expiring.apiKey.expiresAt).not.toBeNull();
  await db.owner.query("update app_public.api_keys set expires_at = now() - interval '1 second' where id = $1", [expiring.apiKey.id]);

  const before = await apiCalls(cast.a.org.id);
  for (const bad of [secret, expiring.secret, `tb_live_${"0".repeat(64)}`, "tb_live_short", `${secret}x`]) {
    const response = await server.graphql(`{ organizations { totalCount } }`, {}, bad);
    expect(response.status).toBe(401);
    expect(response.errors?.[0].extensions?.code).toBe("INVALID_TOKEN");
    expect(response.data).toBeUndefined();
  }
  expect(await apiCalls(cast.a.org.id)).toBe(before);
});

test("key management over GraphQL: members FORBIDDEN, B's people NOT_FOUND, keys themselves NOT_AUTHENTICATED", async () => {
  const input = { organizationId: cast.a.org.id, name: "nope" };
  const member = await server.graphql(CREATE, { input }, cast.a.member);
  expect(member.errors?.[0].extensions?.code).toBe("FORBIDDEN");
  const outsider = await server.graphql(CREATE, { input }, cast.b.owner);
  expect(outsider.errors?.[0].extensions?.code).toBe("NOT_FOUND");
  const { secret } = await createKey("ADMIN");
  const byKey = await server.graphql(CREATE, { input }, secret);
  expect(byKey.errors?.[0].extensions?.code).toBe("NOT_AUTHENTICATED");
  const badRole = await server.graphql(CREATE, { input: { ...input, role: "owner" } }, cast.a.owner);
  expect(badRole.errors?.[0].extensions?.code).toBe("INVALID_ROLE");
});

// ------------------------------------------------------------------------------------------------
// A's admin key against everything of B's
// ------------------------------------------------------------------------------------------------

describe("an admin API key of A against organization B", () => {
  let types: Map<string, FullType>;
  let secret: string;
  let bIds: string[];

  function scalars(typeName: string): string {
    const fields = (types.get(typeName)!.fields ?? []).filter(
      (f) => ["SCALAR", "ENUM"].includes(named(f.type).kind) && f.args.every((a) => !required(a.type)),
    );
    return fields.map((f) => f.name).join(" ") || "__typename";
  }
  function selection(type: TypeRef): string {
    const base = named(type);
    if (base.kind === "SCALAR" || base.kind === "ENUM") return "";
    const full = types.get(base.name!)!;
    if (full.kind !== "OBJECT") return "{ __typename }";
    const nodes = full.fields?.find((f) => f.name === "nodes");
    if (base.name!.endsWith("Connection") && nodes) return `{ nodes { ${scalars(named(nodes.type).name!)} } }`;
    // payloads: every object-typed field's scalars one level down
    const objectFields = (full.fields ?? []).filter((f) => named(f.type).kind === "OBJECT" && f.args.every((a) => !required(a.type)) && f.name !== "query");
    const nested = objectFields.map((f) => `${f.name} { ${scalars(named(f.type).name!)} }`).join(" ");
    return `{ ${scalars(base.name!)} ${nested} }`;
  }
  // the fields an API key's probes always fill (besides required ones and every UUID)
  const sample = (type: TypeRef, uuid: string) =>
    sampleInput(types, type, uuid, {
      alsoFill: ["name", "organizationId", "id", "userId", "email", "slug", "role"],
      datetime: new Date(Date.now() + 86400_000).toISOString(),
      text: "cross-tenant-probe",
    });
  async function snapshotOfB(): Promise<string> {
    const { rows: tables } = await db.owner.query(
      `select c.relname, exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'organization_id') as tenant
       from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'app_public' and c.relkind = 'r' order by 1`,
    );
    const parts: string[] = [];
    for (const { relname, tenant } of tables) {
      if (!tenant && relname !== "organizations") continue;
      const where = relname === "organizations" ? "t.id = $1" : "t.organization_id = $1";
      const { rows } = await db.owner.query(
        `select count(*)::int as n, md5(coalesce(string_agg(t::text, ',' order by t::text), '')) as h from app_public.${relname} t where ${where}`,
        [cast.b.org.id],
      );
      parts.push(`${relname}=${rows[0].n}:${rows[0].h}`);
    }
    return parts.join("\n");
  }
  const leaks = (payload: unknown) => {
    const text = JSON.stringify(payload ?? null);
    return [...bIds, cast.b.org.slug].filter((s) => text.includes(s));
  };

  beforeAll(async () => {
    const introspection = await server.graphql(INTROSPECT, {}, cast.a.owner);
    types = new Map((introspection.data.__schema.types as FullType[]).map((t) => [t.name, t]));
    secret = (await createKey("ADMIN")).secret;
    // some rows of B's to find
    await server.graphql(
      `mutation($o: UUID!) { inviteMember(input: {organizationId: $o, email: "b-invitee@example.com"}) { clientMutationId } }`,
      { o: cast.b.org.id },
      cast.b.owner,
    );
    await server.graphql(
      `mutation($o: UUID!) { createApiKey(input: {organizationId: $o, name: "b key"}) { clientMutationId } }`,
      { o: cast.b.org.id },
      cast.b.owner,
    );
    const ids = new Set([cast.b.org.id, cast.b.owner.userId, cast.b.admin.userId, cast.b.member.userId]);
    const { rows } = await db.owner.query(
      `select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where n.nspname = 'app_public' and c.relkind = 'r'
         and exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'organization_id')
         and exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'id')`,
    );
    for (const { relname } of rows) {
      const found = await db.owner.query(`select id::text from app_public.${relname} where organization_id = $1 limit 5`, [cast.b.org.id]);
      for (const row of found.rows) ids.add(row.id);
    }
    bIds = [...ids];
    expect(bIds.length).toBeGreaterThanOrEqual(6);
  });

  test("every root query field: nothing of B comes back", async () => {
    const tried: string[] = [];
    const problems: string[] = [];
    for (const field of types.get("Query")!.fields!) {
      if (field.name === "node" || field.name === "query") continue;
      const req = field.args.filter((a) => required(a.type));
      const attempts: Record<string, unknown>[] = [];
      if (req.length === 0) attempts.push({});
      else if (req.every((a) => named(a.type).name === "UUID")) for (const id of bIds) attempts.push(Object.fromEntries(req.map((a) => [a.name, id])));
      else if (req.length === 1 && req[0].name === "slug") attempts.push({ slug: cast.b.org.slug });
      else if (req.length === 1 && req[0].name === "email") attempts.push({ email: cast.b.owner.email });
      else continue;
      tried.push(field.name);
      const defs = req.map((a) => `$${a.name}: ${named(a.type).name}!`).join(", ");
      const args = req.length ? `(${req.map((a) => `${a.name}: $${a.name}`).join(", ")})` : "";
      const text = `query${defs ? `(${defs})` : ""} { result: ${field.name}${args} ${selection(field.type)} }`;
      for (const variables of attempts) {
        const response = await server.graphql(text, variables, secret);
        expect(response.status).toBe(200);
        const leaked = leaks(response.data);
        if (leaked.length) problems.push(`${field.name}${JSON.stringify(variables)}: ${leaked.join(", ")}`);
      }
    }
    expect(tried).toEqual(expect.arrayContaining(["organizations", "organization", "organizationBySlug", "invitations", "apiKeys", "organizationSettings", "auditEvents", "users"]));
    expect(problems).toEqual([]);
  });

  test("every mutation, given B's ids: nothing of B changes or comes back", async () => {
    const before = await snapshotOfB();
    const tried: string[] = [];
    const problems: string[] = [];
    for (const field of types.get("Mutation")!.fields!) {
      const input = field.args.find((a) => a.name === "input");
      if (!input) continue;
      tried.push(field.name);
      const text = `mutation($input: ${named(input.type).name}!) { result: ${field.name}(input: $input) ${selection(field.type)} }`;
      for (const id of bIds) {
        const response = await server.graphql(text, { input: sample(input.type, id) }, secret);
        const leaked = leaks(response.data);
        if (leaked.length) problems.push(`${field.name}(${id}): ${leaked.join(", ")}`);
        for (const problem of errorProblems(response.errors)) problems.push(`${field.name}(${id}): ${problem}`);
      }
    }
    expect(tried).toEqual(
      expect.arrayContaining([
        "inviteMember", "revokeInvitation", "resendInvitation", "changeMemberRole", "removeMember", "leaveOrganization",
        "transferOwnership", "changeOrganizationSlug", "updateOrganizationSettings", "createApiKey", "revokeApiKey",
        "restoreOrganization", "deleteOrganization", "updateOrganization",
      ]),
    );
    expect(problems).toEqual([]);
    expect(await snapshotOfB()).toEqual(before);
  });
});
