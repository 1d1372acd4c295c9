// Issue 11, finding 8: bcrypt reads only 72 bytes, so a password of 36 × 'é' (72 bytes) + anything
// used to log in with 36 × 'é' alone. Passwords over 72 bytes are now refused wherever one is set
// (register, resetPassword, changePassword) and never match when signing in.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { codes, issueToken, register, relaxAttemptLimits, signIn, uniqueEmail } from "../helpers/accounts.ts";

let db: TestDatabase;
let server: TestServer;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
  await relaxAttemptLimits(db);
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const E36 = "é".repeat(36); // 36 characters, 72 bytes
const REGISTER = `mutation($e: String!, $p: String!) { register(input: {email: $e, password: $p, name: "B"}) { jwtToken } }`;

test("register refuses 36 × 'é' + anything (73+ bytes, 37+ characters) and takes exactly 72 bytes", async () => {
  for (const password of [`${E36}x`, `${E36}secret suffix`, "😀".repeat(19), "a".repeat(73)]) {
    const email = uniqueEmail("long");
    expect(codes(await server.graphql(REGISTER, { e: email, p: password }))).toEqual(["WEAK_PASSWORD"]);
    expect(codes(await signIn(server, email, E36))).toEqual(["INVALID_CREDENTIALS"]); // no account was made
  }
  const ok = await register(server, uniqueEmail("exact"), E36);
  expect((await signIn(server, ok.email, E36)).data.authenticate.jwtToken).toBeTruthy();
  // 72 bytes of 'é' is not a prefix key for longer guesses
  expect(codes(await signIn(server, ok.email, `${E36}x`))).toEqual(["INVALID_CREDENTIALS"]);
});

test("an old hash of a long password (made before the fix) never lets its 72-byte prefix in through a longer guess", async () => {
  const victim = await register(server);
  // what register used to store for 36 × 'é' + "secret": bcrypt of the first 72 bytes
  await db.owner.query("update app_private.user_secrets set password_hash = crypt($2, gen_salt('bf', 10)) where user_id = $1", [
    victim.userId,
    `${E36}secret`,
  ]);
  expect(codes(await signIn(server, victim.email, `${E36}anything else`))).toEqual(["INVALID_CREDENTIALS"]);
  expect(codes(await signIn(server, victim.email, `${E36}secret`))).toEqual(["INVALID_CREDENTIALS"]);
});

test("resetPassword and changePassword refuse passwords over 72 bytes too", async () => {
  const user = await register(server);
  const token = await issueToken(db, "reset_password", user.userId);
  const RESET = `mutation($t: String!, $p: String!) { resetPassword(input: {token: $t, newPassword: $p}) { jwtToken } }`;
  expect(codes(await server.graphql(RESET, { t: token, p: `${E36}x` }))).toEqual(["WEAK_PASSWORD"]);
  const CHANGE = `mutation($c: String!, $n: String!) { changePassword(input: {currentPassword: $c, newPassword: $n}) { success } }`;
  expect(codes(await server.graphql(CHANGE, { c: user.password, n: `${E36}x` }, user.token))).toEqual(["WEAK_PASSWORD"]);
  expect(codes(await signIn(server, user.email, E36))).toEqual(["INVALID_CREDENTIALS"]);
  expect((await signIn(server, user.email, user.password)).data.authenticate.jwtToken).toBeTruthy();
});
