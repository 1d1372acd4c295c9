// Learning which addresses have accounts (issue 25, A12). Decision (README "Accounts", and the
// signin notes): `authenticate` and `forgotPassword` answer the same for any address, and keep
// doing so; `register` and `changeEmail` keep answering EMAIL_TAKEN, because register signs the
// new account in at once and no answer that carries a working session can look the same for a
// taken address (closing it means a confirm-first sign-up, a different API). What they tell is
// bounded instead: per client address, per address and email, per signed-in user. These tests
// hold both halves of that decision.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { createUser } from "../helpers/fixtures.ts";
import { codes, register, uniqueEmail } from "../helpers/accounts.ts";
import { accountsConfig } from "../../core/config.ts";

let db: TestDatabase;
let server: TestServer;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
  await db.owner.query("update app_private.account_settings set attempt_limits = $1", [
    JSON.stringify(accountsConfig({}).attemptLimits),
  ]);
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});
afterEach(() => db.owner.query("delete from app_private.attempt_counters"));

const AUTH = `mutation($e: String!, $p: String!) { authenticate(input: {email: $e, password: $p}) { jwtToken } }`;
const FORGOT = `mutation($e: String!) { forgotPassword(input: {email: $e}) { success } }`;
const REGISTER = `mutation($e: String!) { register(input: {email: $e, password: "long enough", name: "Eve"}) { jwtToken } }`;
const CHANGE_EMAIL = `mutation($e: String!, $p: String!) { changeEmail(input: {newEmail: $e, password: $p}) { success } }`;

test("sign-in and password reset answer the same for an address with an account and one without", async () => {
  const known = await createUser(db);
  const unknown = uniqueEmail("nobody");
  const a = await server.graphql(AUTH, { e: known.email, p: "not the password" });
  const b = await server.graphql(AUTH, { e: unknown, p: "not the password" });
  expect(codes(a)).toEqual(["INVALID_CREDENTIALS"]);
  expect(b.errors?.map((e) => [e.message, e.extensions])).toEqual(a.errors?.map((e) => [e.message, e.extensions]));
  const c = await server.graphql(FORGOT, { e: known.email });
  const d = await server.graphql(FORGOT, { e: unknown });
  expect(c).toEqual(d);
});

test("register tells EMAIL_TAKEN, at most 5 times per address and email and 50 times per client address an hour", async () => {
  const accounts = await Promise.all(Array.from({ length: 10 }, () => createUser(db)));
  const answers: (string | undefined)[] = [];
  for (const account of accounts) {
    for (let i = 0; i < 6; i++) answers.push(...codes(await server.graphql(REGISTER, { e: account.email })));
  }
  // 5 answers per address, then that pair is refused; the client address ran out after 50 requests
  expect(answers.filter((c) => c === "EMAIL_TAKEN")).toHaveLength(50);
  expect(answers.slice(0, 6)).toEqual(["EMAIL_TAKEN", "EMAIL_TAKEN", "EMAIL_TAKEN", "EMAIL_TAKEN", "EMAIL_TAKEN", "TOO_MANY_ATTEMPTS"]);
  expect(codes(await server.graphql(REGISTER, { e: uniqueEmail("fresh") }))).toEqual(["TOO_MANY_ATTEMPTS"]);
});

test("changeEmail tells EMAIL_TAKEN only to a signed-in user with their password, 5 times an hour", async () => {
  const eve = await register(server);
  const others = await Promise.all(Array.from({ length: 6 }, () => createUser(db)));
  const answers: (string | undefined)[] = [];
  for (const other of others) answers.push(...codes(await server.graphql(CHANGE_EMAIL, { e: other.email, p: eve.password }, eve.token)));
  expect(answers).toEqual([...Array(5).fill("EMAIL_TAKEN"), "TOO_MANY_ATTEMPTS"]);
  // without the password nothing is told about the address
  await db.owner.query("delete from app_private.attempt_counters");
  expect(codes(await server.graphql(CHANGE_EMAIL, { e: others[0].email, p: "not my password" }, eve.token))).toEqual(["WRONG_PASSWORD"]);
});
