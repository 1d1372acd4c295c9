// Finding 5: aliases multiplied expensive mutations. 249 aliased `authenticate` calls in one
// request spent 18 s of bcrypt, and a 30-guess document returned a token for the right guess.
// Now a request runs at most one password-checking mutation and a bounded number in all,
// refused before anything runs.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createOrganization, createUser } from "../helpers/fixtures.ts";
import { tokenFor } from "../helpers/server.ts";
import { postGraphQL, startServer, type OpsServer } from "../helpers/operations.ts";
import { expectOtherTenantServed, measureOtherTenantServed } from "./other-tenants.ts";

let db: TestDatabase;
let server: OpsServer;
const email = "target@example.com";
const password = "correct horse battery";

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startServer(db); // default: 10 mutations, 1 password check per request
  const res = await postGraphQL(server.url, {
    query: `mutation { register(input: {email: "${email}", password: "${password}", name: "Target"}) { jwtToken } }`,
  });
  expect(res.body.errors).toBeUndefined();
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const guesses = (n: number, right: number) =>
  `mutation Guess { ${Array.from(
    { length: n },
    (_, i) => `g${i}: authenticate(input: {email: "${email}", password: "${i === right ? password : `wrong guess ${i}`}"}) { jwtToken }`,
  ).join(" ")} }`;

async function sessions(): Promise<number> {
  const { rows } = await db.owner.query(
    "select count(*)::int as n from app_private.sessions s join app_public.users u on u.id = s.user_id where u.email = $1",
    [email],
  );
  return rows[0].n;
}

test("30 guesses in one request are refused with TOO_MANY_PASSWORD_MUTATIONS; no token, no session", async () => {
  const before = await sessions();
  const res = await postGraphQL(server.url, { query: guesses(30, 17) });
  expect(res.body.data).toBeUndefined();
  expect(res.body.errors).toEqual([
    expect.objectContaining({
      message: "Operation Guess runs 30 mutations that check a password; at most 1 may run in one request.",
      extensions: { code: "TOO_MANY_PASSWORD_MUTATIONS" },
    }),
  ]);
  expect(JSON.stringify(res.body)).not.toContain("jwtToken");
  expect(await sessions()).toBe(before);
  // one guess per request still signs in
  const one = await postGraphQL(server.url, { query: guesses(1, 0) });
  expect(one.body.data.g0.jwtToken).toEqual(expect.any(String));
  expect(await sessions()).toBe(before + 1);
});

test("every mutation taking a password counts, through fragments too", async () => {
  const register = (alias: string, n: number) =>
    `${alias}: register(input: {email: "new${n}@example.com", password: "long enough password", name: "New"}) { jwtToken }`;
  const documents = [
    `mutation { ${register("a", 1)} ${register("b", 2)} }`,
    `mutation { ${register("a", 3)} x: authenticate(input: {email: "${email}", password: "${password}"}) { jwtToken } }`,
    `mutation { ...M ...M } fragment M on Mutation { authenticate(input: {email: "${email}", password: "nope"}) { jwtToken } }`,
    `mutation { ... on Mutation { ${register("a", 4)} } ... on Mutation { ${register("b", 5)} } }`,
  ];
  for (const query of documents) {
    const res = await postGraphQL(server.url, { query });
    expect(res.body.errors?.map((e: any) => e.extensions?.code)).toContain("TOO_MANY_PASSWORD_MUTATIONS");
  }
  const { rows } = await db.owner.query("select count(*)::int as n from app_public.users where email like 'new%@example.com'");
  expect(rows[0].n).toBe(0);
});

test("more than 10 mutations in one request are refused with TOO_MANY_MUTATIONS before any runs", async () => {
  const owner = await createUser(db, "Owner");
  const org = await createOrganization(db, owner, "Renamed Never");
  const renames = (n: number) =>
    `mutation R($id: UUID!) { ${Array.from(
      { length: n },
      (_, i) => `r${i}: updateOrganization(input: {id: $id, patch: {name: "Name ${i}"}}) { organization { name } }`,
    ).join(" ")} }`;
  const auth = { authorization: `Bearer ${tokenFor(owner)}` };
  const refused = await postGraphQL(server.url, { query: renames(11), variables: { id: org.id } }, auth);
  expect(refused.body.data).toBeUndefined();
  expect(refused.body.errors).toEqual([
    expect.objectContaining({ extensions: { code: "TOO_MANY_MUTATIONS" }, message: "Operation R runs 11 mutations; at most 10 may run in one request." }),
  ]);
  const { rows } = await db.owner.query("select name from app_public.organizations where id = $1", [org.id]);
  expect(rows[0].name).toBe("Renamed Never");
  const ok = await postGraphQL(server.url, { query: renames(10), variables: { id: org.id } }, auth);
  expect(ok.body.errors).toBeUndefined();
  expect(ok.body.data.r9.organization.name).toBe("Name 9");
});

test("another tenant is still served while 40-guess documents are sent again and again", async () => {
  const victim = await createUser(db, "Victim");
  await createOrganization(db, victim, "Victim Org");
  const query = guesses(40, -1);
  const report = await measureOtherTenantServed({
    url: server.url,
    victimToken: tokenFor(victim),
    attack: () => postGraphQL(server.url, { query }),
    attackers: 10, // as reported: 10 concurrent 40-guess requests pinned both cores for 16 s
  });
  expectOtherTenantServed(report);
});
