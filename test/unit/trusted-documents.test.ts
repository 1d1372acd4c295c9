// Trusted documents' configuration (TRUSTED_DOCUMENTS*) and what each mode does with a request
// body (server/trusted-documents.ts); over HTTP and websockets in test/adversarial/trusted-documents.test.ts.

import { isSafeError } from "postgraphile/grafast";
import { ConfigError, trustedDocumentsConfig } from "../../core/config.ts";
import { documentHash, resolveTrustedDocument, type TrustedDocuments } from "../../server/trusted-documents.ts";

const TEXT = "query Me { currentUser { id } }";
const ID = documentHash(TEXT);

test("defaults: off without a manifest; with one, only in production and allow elsewhere", () => {
  expect(trustedDocumentsConfig({})).toEqual({ mode: "off", manifests: [], allowTextFor: [] });
  expect(trustedDocumentsConfig({ NODE_ENV: "production" }).mode).toBe("off");
  expect(trustedDocumentsConfig({ TRUSTED_DOCUMENTS_MANIFEST: "a.json" }).mode).toBe("allow");
  expect(trustedDocumentsConfig({ NODE_ENV: "production", TRUSTED_DOCUMENTS_MANIFEST: "a.json, b.json" })).toMatchObject({
    mode: "only",
    manifests: [expect.stringMatching(/\/a\.json$/), expect.stringMatching(/\/b\.json$/)],
  });
  expect(trustedDocumentsConfig({ NODE_ENV: "production", TRUSTED_DOCUMENTS_MANIFEST: "a.json", TRUSTED_DOCUMENTS: "allow" }).mode).toBe("allow");
  expect(trustedDocumentsConfig({ TRUSTED_DOCUMENTS_MANIFEST: "a.json", TRUSTED_DOCUMENTS: "off" })).toEqual({ mode: "off", manifests: [], allowTextFor: [] });
  expect(trustedDocumentsConfig({ TRUSTED_DOCUMENTS_MANIFEST: "a.json", TRUSTED_DOCUMENTS_ALLOW_TEXT: "user, api_key,user" }).allowTextFor).toEqual(["user", "api_key"]);
});

test("bad values stop start-up with the variable's name", () => {
  expect(() => trustedDocumentsConfig({ TRUSTED_DOCUMENTS: "only" })).toThrow(ConfigError);
  expect(() => trustedDocumentsConfig({ TRUSTED_DOCUMENTS: "only" })).toThrow(/TRUSTED_DOCUMENTS_MANIFEST/);
  expect(() => trustedDocumentsConfig({ TRUSTED_DOCUMENTS: "strict", TRUSTED_DOCUMENTS_MANIFEST: "a.json" })).toThrow(/TRUSTED_DOCUMENTS must be/);
  expect(() => trustedDocumentsConfig({ TRUSTED_DOCUMENTS_MANIFEST: "a.json", TRUSTED_DOCUMENTS_ALLOW_TEXT: "admin" })).toThrow(/TRUSTED_DOCUMENTS_ALLOW_TEXT/);
});

function codeOf(run: () => void): string | null {
  try {
    run();
    return null;
  } catch (error) {
    expect(isSafeError(error as Error)).toBe(true);
    return (error as { extensions: { code: string } }).extensions.code;
  }
}

test("allow: ids and text both run; only: ids, or text from an allowed caller", () => {
  const documents = new Map([[ID, TEXT]]);
  const allow: TrustedDocuments = { mode: "allow", documents, allowTextFor: [] };
  const only: TrustedDocuments = { mode: "only", documents, allowTextFor: ["api_key"] };
  for (const [mode, caller, body, expected] of [
    [allow, "anonymous", { query: "{ __typename }" }, { query: "{ __typename }" }],
    [allow, "anonymous", { documentId: `sha256:${ID}` }, { query: TEXT }],
    [allow, "anonymous", { id: ID, query: "{ __typename }" }, { query: TEXT }],
    [only, "api_key", { query: "{ __typename }" }, { query: "{ __typename }" }],
    [only, "user", { extensions: { persistedQuery: { version: 1, sha256Hash: ID } } }, { query: TEXT }],
    // Apollo's retry after PERSISTED_QUERY_NOT_FOUND (hash and text): the text runs where text may
    [allow, "anonymous", { documentId: "0".repeat(64), query: "{ __typename }" }, { query: "{ __typename }" }],
    [only, "api_key", { documentId: "0".repeat(64), query: "{ __typename }" }, { query: "{ __typename }" }],
  ] as const) {
    const copy: Record<string, unknown> = { ...body };
    expect(codeOf(() => resolveTrustedDocument(copy, mode, () => caller))).toBeNull();
    expect(copy).toMatchObject(expected);
  }
  expect(codeOf(() => resolveTrustedDocument({ documentId: "0".repeat(64) }, allow, () => "user"))).toBe("PERSISTED_QUERY_NOT_FOUND");
  expect(codeOf(() => resolveTrustedDocument({ query: TEXT }, only, () => "user"))).toBe("PERSISTED_QUERIES_ONLY");
  expect(codeOf(() => resolveTrustedDocument({ documentId: "0".repeat(64), query: TEXT }, only, () => "user"))).toBe("PERSISTED_QUERY_NOT_FOUND");
  expect(codeOf(() => resolveTrustedDocument({ documentId: 42 }, only, () => "user"))).toBe("INVALID_DOCUMENT_ID");
});
