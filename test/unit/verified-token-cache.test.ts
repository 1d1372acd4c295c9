// server/auth.ts verifiedTokenCache: a verified token is remembered only until its exp; a token
// that fails verification is never remembered. Times are pinned (Date.now is mocked).

import jwt from "jsonwebtoken";
import { InvalidTokenError, verifiedTokenCache } from "../../server/auth.ts";

const settings = { secret: "unit-secret-that-is-at-least-32-characters", audience: "tenantbase", issuer: "tenantbase" };
const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const sign = (claims: Record<string, unknown>, secret = settings.secret) =>
  jwt.sign({ sub: "01a20000-0000-7000-8000-000000000001", session_id: "01a20000-0000-7000-8000-000000000002", ...claims }, secret, {
    algorithm: "HS256",
    audience: settings.audience,
    issuer: settings.issuer,
  });

afterEach(() => jest.restoreAllMocks());

test("a cached token stops working at its exp", () => {
  const now = jest.spyOn(Date, "now").mockReturnValue(NOW);
  const verify = verifiedTokenCache(settings);
  const token = sign({ exp: NOW / 1000 + 60, iat: NOW / 1000 });
  expect(verify(token)).toEqual({ userId: "01a20000-0000-7000-8000-000000000001", sessionId: "01a20000-0000-7000-8000-000000000002" });
  expect(verify(token).userId).toBe("01a20000-0000-7000-8000-000000000001"); // from the cache
  now.mockReturnValue(NOW + 61_000);
  expect(() => verify(token)).toThrow(InvalidTokenError);
  expect(() => verify(token)).toThrow("Token has expired.");
});

test("a token that fails verification is refused every time (nothing cached)", () => {
  jest.spyOn(Date, "now").mockReturnValue(NOW);
  const verify = verifiedTokenCache(settings);
  const forged = sign({ exp: NOW / 1000 + 60, iat: NOW / 1000 }, "another-secret-that-is-at-least-32-characters");
  for (let i = 0; i < 3; i++) expect(() => verify(forged)).toThrow("Token is not valid.");
});

test("the cache is bounded: the oldest token is verified again after eviction", () => {
  jest.spyOn(Date, "now").mockReturnValue(NOW);
  const spy = jest.spyOn(jwt, "verify");
  const verify = verifiedTokenCache(settings, 2);
  const tokens = [1, 2, 3].map((n) => sign({ exp: NOW / 1000 + 60, iat: NOW / 1000, n }));
  for (const token of tokens) verify(token);
  expect(spy).toHaveBeenCalledTimes(3);
  verify(tokens[2]);
  expect(spy).toHaveBeenCalledTimes(3);
  verify(tokens[0]);
  expect(spy).toHaveBeenCalledTimes(4);
});
