// Trusted documents (persisted operations, issue 24): clients send a document id instead of the
// document's text, and in `only` mode nothing else runs — an allow-list of what production
// clients may do. The ids and texts come from manifests in graphql-codegen's persisted-documents
// format ({ "<id>": "<document>" }), written by codegen's client preset or by
// `npm run documents:manifest` (scripts/documents-manifest.ts).
//
// Where: grafserv's processGraphQLRequestBody, for HTTP and websockets alike, before anything
// reads the body. The id is replaced by its document's text, so a trusted document then goes
// through exactly what a text does: the document check and bounded cache of
// server/graphql-limits.ts (keyed by that text), validation, every limit, the plan cache.
//
// Why not @grafserv/persisted (1.0.0, which fits PostGraphile 5): every refusal there is one
// message without a code (an unknown id and a refused text look the same to a client), and a
// failed lookup is written to console.error with the whole request body, variables included —
// a log line per attacker request, with data our logs must never hold.
//
// Ids accepted (the first present wins): `documentId` (GraphQL over HTTP's persisted-documents
// appendix, graphql-codegen; with or without the `sha256:` prefix), Apollo's
// `extensions.persistedQuery.sha256Hash`, and Relay's `id`.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { SafeError } from "postgraphile/grafast";
import type { TextCaller, TrustedDocumentsConfig } from "../core/config.ts";

/** Longest id looked up; anything longer is no id of ours (a sha256 with its prefix is 71). */
export const MAX_DOCUMENT_ID_LENGTH = 128;
const DOCUMENT_ID = /^[A-Za-z0-9_.:-]+$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

export const PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND";
export const PERSISTED_QUERIES_ONLY = "PERSISTED_QUERIES_ONLY";
export const INVALID_DOCUMENT_ID = "INVALID_DOCUMENT_ID";

export interface TrustedDocuments {
  mode: TrustedDocumentsConfig["mode"];
  /** id (without a `sha256:` prefix) -> document text. */
  documents: ReadonlyMap<string, string>;
  allowTextFor: readonly TextCaller[];
}

/** The key a document is looked up by: `sha256:<hex>` and `<hex>` are the same document. */
export function normalizeDocumentId(id: string): string {
  return id.startsWith("sha256:") ? id.slice("sha256:".length) : id;
}

/** sha256 of a document's text, hex: what graphql-codegen's client preset uses by default. */
export function documentHash(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/**
 * Reads manifests into one map. A sha256-shaped id must be the hash of its text (a manifest
 * edited by hand, or a text changed after hashing, is refused at start-up rather than served);
 * other ids (codegen's custom hashAlgorithm) are taken as given. One id with two texts is refused.
 */
export function documentsFromManifests(manifests: { name: string; content: unknown }[]): Map<string, string> {
  const documents = new Map<string, string>();
  for (const { name, content } of manifests) {
    if (content === null || typeof content !== "object" || Array.isArray(content)) {
      throw new Error(`${name}: a manifest is a JSON object { "<document id>": "<document text>" }`);
    }
    for (const [rawId, text] of Object.entries(content as Record<string, unknown>)) {
      if (typeof text !== "string" || text.trim() === "") throw new Error(`${name}: the document of ${JSON.stringify(rawId)} is not a text`);
      const id = normalizeDocumentId(rawId);
      if (id.length === 0 || id.length > MAX_DOCUMENT_ID_LENGTH || !DOCUMENT_ID.test(id)) {
        throw new Error(`${name}: ${JSON.stringify(rawId.slice(0, 80))} is not a document id (1–${MAX_DOCUMENT_ID_LENGTH} of A-Z a-z 0-9 _ . : -)`);
      }
      if (rawId.startsWith("sha256:") && !SHA256_HEX.test(id)) throw new Error(`${name}: ${rawId} is not a sha256 hash`);
      if (SHA256_HEX.test(id) && documentHash(text) !== id) {
        throw new Error(`${name}: ${rawId} is not the sha256 of its document (rebuild the manifest)`);
      }
      const known = documents.get(id);
      if (known !== undefined && known !== text) throw new Error(`${name}: ${rawId} has two different documents`);
      documents.set(id, text);
    }
  }
  return documents;
}

export function loadTrustedDocuments(config: TrustedDocumentsConfig): TrustedDocuments {
  const manifests = config.manifests.map((file) => {
    let content: unknown;
    try {
      content = JSON.parse(readFileSync(file, "utf8"));
    } catch (error) {
      throw new Error(`TRUSTED_DOCUMENTS_MANIFEST: cannot read ${file} as JSON (${(error as Error).message})`);
    }
    return { name: file, content };
  });
  return { mode: config.mode, documents: documentsFromManifests(manifests), allowTextFor: config.allowTextFor };
}

/** Who is asking, from the request's settings (role app_anonymous or app_user; an API key's id). */
export function callerOf(pgSettings: Record<string, string> | undefined): TextCaller {
  if (pgSettings?.role !== "app_user") return "anonymous";
  return pgSettings["jwt.claims.api_key_id"] !== undefined ? "api_key" : "user";
}

function refusal(message: string, code: string): SafeError {
  return new SafeError(message, { statusCode: 400, code });
}

interface RequestBody {
  query?: unknown;
  id?: unknown;
  documentId?: unknown;
  extensions?: unknown;
}

/** The id a body names, if any (undefined: none given). */
function idOf(body: RequestBody): unknown {
  if (body.documentId !== undefined && body.documentId !== null) return body.documentId;
  const extensions = body.extensions as { persistedQuery?: { sha256Hash?: unknown } } | null | undefined;
  const apollo = extensions !== null && typeof extensions === "object" ? extensions.persistedQuery : undefined;
  if (apollo !== null && typeof apollo === "object" && apollo.sha256Hash !== undefined && apollo.sha256Hash !== null) return apollo.sha256Hash;
  if (body.id !== undefined && body.id !== null) return body.id;
  return undefined;
}

/**
 * Puts a trusted document's text in the body, or refuses the request. Throws the refusal (a
 * SafeError with a code: grafserv answers it as HTTP 400, graphql-ws as an error message).
 */
export function resolveTrustedDocument(body: RequestBody, trusted: TrustedDocuments, caller: () => TextCaller): void {
  const id = idOf(body);
  const textAllowed = () => trusted.mode !== "only" || trusted.allowTextFor.includes(caller());
  if (id === undefined) {
    if (!textAllowed()) {
      throw refusal("This server runs trusted documents only: send the document's id (documentId), not its text.", PERSISTED_QUERIES_ONLY);
    }
    return;
  }
  if (typeof id !== "string" || id.length === 0 || id.length > MAX_DOCUMENT_ID_LENGTH || !DOCUMENT_ID.test(id)) {
    throw refusal(`A document id is a string of 1 to ${MAX_DOCUMENT_ID_LENGTH} letters, digits and _ . : - (a sha256 hash).`, INVALID_DOCUMENT_ID);
  }
  const text = trusted.documents.get(normalizeDocumentId(id));
  if (text !== undefined) {
    body.query = text;
    return;
  }
  // An unknown id with a text (Apollo's automatic persisted queries resend the hash with the
  // text after PERSISTED_QUERY_NOT_FOUND): the text runs as a text, where text may run at all.
  // Nothing is registered: the manifest is the allow-list, clients cannot add to it.
  if (typeof body.query === "string" && body.query !== "" && textAllowed()) return;
  throw refusal("No trusted document has this id: rebuild the client and the manifest together.", PERSISTED_QUERY_NOT_FOUND);
}

/**
 * The grafserv middleware. `callerFor` says who sent a request (for TRUSTED_DOCUMENTS_ALLOW_TEXT);
 * it is only asked when a text arrives in `only` mode.
 */
export function trustedDocumentsPlugin(trusted: TrustedDocuments, callerFor: (event: { request?: unknown; graphqlWsContext?: unknown }) => TextCaller): GraphileConfig.Plugin {
  return {
    name: "TenantbaseTrustedDocumentsPlugin",
    version: "1.0.0",
    // First: the operations and error-codes plugins read the operation's name from the text.
    before: ["TenantbaseOperationsPlugin", "TenantbaseErrorCodesPlugin"],
    grafserv: {
      middleware: {
        processGraphQLRequestBody(next, event) {
          const body = event.body as RequestBody | null;
          if (body !== null && typeof body === "object") resolveTrustedDocument(body, trusted, () => callerFor(event));
          return next();
        },
      },
    },
  };
}
