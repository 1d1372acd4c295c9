// What a client may learn from an error, and what the log keeps of it.
//
// Every error a client can cause carries a stable `extensions.code` (docs/error-codes.md); a
// masked error ("An error occurred (logged with hash …)", code INTERNAL) means a bug. Where each
// code comes from:
// - Business rules raised in SQL through app_hidden.raise_error(code, message): SQLSTATE TB000
//   with the public code in DETAIL, passed through as they are.
// - A value PostgreSQL cannot take as its type or that breaks a column's CHECK: INVALID_INPUT
//   with a fixed message (PostgreSQL's own names types and values).
// - Errors that depend on who asked (a missing privilege is NOT_AUTHENTICATED for an anonymous
//   caller; a row refused by a policy's WITH CHECK is FORBIDDEN): coded after execution, where
//   the request's role is known (errorCodesPlugin below).
// - GraphQL-level mistakes (syntax, validation, variables, cursors, empty patches, HTTP errors
//   answered before execution): coded from the kind of error (errorCodesPlugin below).
// Masked errors are logged as one JSON line with the operation name and the error's kind and
// message: never the request's source text or variables, never a stack trace.

import { createHash, randomBytes } from "node:crypto";
import type { Request } from "express";
import { GraphQLError } from "postgraphile/graphql";
import { isSafeError } from "postgraphile/grafast";
import { currentLogContext, rootLogger, type Logger } from "../core/logger.ts";

export const BUSINESS_ERROR_SQLSTATE = "TB000";
const CODE = /^[A-Z][A-Z0-9_]{1,63}$/;

/** SQLSTATEs of class 22 that only a malformed or out-of-range input value causes. */
const BAD_INPUT_SQLSTATES = new Set([
  "22P02", // invalid_text_representation: 'abc'::numeric
  "22003", // numeric_value_out_of_range
  "22007", // invalid_datetime_format
  "22008", // datetime_field_overflow
  "22001", // string_data_right_truncation
  "22021", // character_not_in_repertoire
  "22P05", // untranslatable_character
]);

/**
 * query_canceled: the request roles' statement_timeout passed (or the query was cancelled because
 * its client hung up, when nobody is left to read the answer).
 */
const QUERY_CANCELED_SQLSTATE = "57014";

/** Fixed messages for other bad-input SQLSTATEs, where a more precise one helps the client. */
const BAD_INPUT_MESSAGES: Record<string, string> = {
  "2201W": "`first` and `last` must not be negative.", // invalid_row_count_in_limit_clause
  "2201X": "`offset` must not be negative.", // invalid_row_count_in_result_offset_clause
  "23502": "A required value is missing.", // not_null_violation
};

/** The database is down, restarting or out of connections: not the client's mistake, nor a bug. */
const UNAVAILABLE_SQLSTATE = /^(?:08|57P0[123]$|53300$)/;
const UNAVAILABLE_MESSAGE = /^(?:Client has encountered a connection error|Connection terminated|timeout exceeded when trying to connect)/;

/**
 * Errors grafast and PostGraphile raise for a client's mistake (SafeError: their text is meant
 * for the client), by the start of their message.
 */
const SAFE_ERROR_CODES: [RegExp, string][] = [
  [/^Invalid cursor|^Invalid '(?:before|after)' cursor|cursor when there is a unique defined order/, "INVALID_CURSOR"],
  [/no new values were specified/, "EMPTY_PATCH"],
  [/^Cannot use 'offset' with 'last'/, "INVALID_ARGUMENTS"],
];

/** Not-executed responses: errors graphql-js and grafserv answer before anything runs. */
const REQUEST_ERROR_CODES: [RegExp, string][] = [
  [/^Syntax Error:/, "GRAPHQL_PARSE_FAILED"],
  [/^Maximum introspection depth exceeded/, "INTROSPECTION_TOO_DEEP"],
  [/^Variable "\$[^"]*" (?:got invalid value|of required type|of non-null type)/, "INVALID_VARIABLES"],
  [/^Unknown operation named|^Must provide operation name/, "INVALID_OPERATION_NAME"],
];

/** grafserv's own HTTP errors (thrown before parsing), by status. */
const HTTP_STATUS_CODES: Record<number, string> = {
  400: "BAD_REQUEST",
  405: "METHOD_NOT_ALLOWED",
  406: "NOT_ACCEPTABLE",
  413: "REQUEST_TOO_LARGE",
  415: "UNSUPPORTED_MEDIA_TYPE",
};

interface PgErrorLike {
  code?: unknown;
  detail?: unknown;
  message?: unknown;
  hint?: unknown;
  routine?: unknown;
  constraint?: unknown;
  table?: unknown;
}

function coded(error: GraphQLError, message: string, code: string, extra: Record<string, string | number | boolean> = {}): GraphQLError {
  return new GraphQLError(message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    extensions: { ...extra, code },
  });
}

/**
 * Extra public fields raised with app_hidden.raise_error_with (HINT holds a flat JSON object,
 * e.g. {"retryAfter": 60}): only short keys with string, number or boolean values pass; `code`
 * cannot be overridden.
 */
export function extraExtensions(hint: unknown): Record<string, string | number | boolean> {
  if (typeof hint !== "string" || !hint.startsWith("{")) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(hint);
  } catch {
    return {};
  }
  const out: Record<string, string | number | boolean> = {};
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return out;
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (key === "code" || !/^[a-zA-Z][a-zA-Z0-9]{0,31}$/.test(key)) continue;
    if (typeof value === "number" || typeof value === "boolean" || (typeof value === "string" && value.length <= 200)) {
      out[key] = value;
    }
  }
  return out;
}


/** The client-facing form of an error raised while executing (grafserv's maskError hook). */
export function maskError(error: GraphQLError, logger: Logger = rootLogger()): GraphQLError {
  if (typeof error.extensions?.code === "string") return error;
  // Variables that do not coerce to their type, an unknown operationName: graphql-js words them.
  const requestCode = REQUEST_ERROR_CODES.find(([pattern]) => pattern.test(error.message))?.[1];
  if (requestCode) return coded(error, error.message, requestCode);
  const original = error.originalError as (Error & PgErrorLike) | undefined;
  // A non-null field that resolved to null: the schema promised something the code did not keep.
  if (!original && /^Cannot return null for non-nullable field/.test(error.message)) return masked(error, error, logger);
  // graphql-js's other execution errors state the problem in GraphQL terms, never in SQL ones.
  if (!original || original instanceof GraphQLError) return error;
  if (original.code === BUSINESS_ERROR_SQLSTATE && typeof original.detail === "string" && CODE.test(original.detail) && typeof original.message === "string") {
    return coded(error, original.message, original.detail, extraExtensions(original.hint));
  }
  if (original.code === QUERY_CANCELED_SQLSTATE) {
    return coded(error, "The query took too long and was cancelled; ask for less (smaller pages, narrower filters).", "QUERY_TIMEOUT");
  }
  if (typeof original.code === "string") {
    if (BAD_INPUT_SQLSTATES.has(original.code)) {
      return coded(error, "A value has the wrong format or is out of range for its field.", "INVALID_INPUT");
    }
    if (BAD_INPUT_MESSAGES[original.code]) return coded(error, BAD_INPUT_MESSAGES[original.code], "INVALID_INPUT");
    if (original.code === "23514" && typeof original.constraint === "string") {
      // A CHECK constraint's name says which rule (e.g. users_name_check); its values stay out.
      return coded(error, `A value breaks the rule ${original.constraint}.`, "INVALID_INPUT");
    }
  }
  if ((typeof original.code === "string" && UNAVAILABLE_SQLSTATE.test(original.code)) || UNAVAILABLE_MESSAGE.test(String(original.message ?? ""))) {
    logger.warn({ operation: currentLogContext().operation ?? null, path: error.path ?? null, sqlstate: original.code ?? null }, "database unavailable");
    return coded(error, "The database is unavailable right now; try again shortly.", "DATABASE_UNAVAILABLE");
  }
  if (isSafeError(original)) {
    const own = (original as { extensions?: { code?: unknown } }).extensions?.code;
    const code = typeof own === "string" ? own : (SAFE_ERROR_CODES.find(([pattern]) => pattern.test(original.message))?.[1] ?? "INVALID_REQUEST");
    return coded(error, original.message, code);
  }
  return masked(error, original, logger);
}

function masked(error: GraphQLError, original: Error & PgErrorLike, logger: Logger): GraphQLError {
  // Grouping key: the error's text and where it happened (as grafserv's default does).
  const hash = createHash("sha1").update(String(error)).digest("base64url").slice(0, 27);
  const errorId = randomBytes(5).toString("hex").toUpperCase();
  const context = currentLogContext();
  logger.error(
    {
      errorId,
      hash,
      operation: context.operation ?? null,
      path: error.path ?? null,
      // (not under `error`/`err`: the logger's error serializer would add an empty stack)
      failure: {
        type: original.constructor?.name ?? "Error",
        message: String(original.message ?? "").slice(0, 500),
        ...(typeof original.code === "string" ? { sqlstate: original.code } : {}),
        ...(typeof original.routine === "string" ? { routine: original.routine } : {}),
        ...(typeof original.table === "string" ? { table: original.table } : {}),
        ...(typeof original.constraint === "string" ? { constraint: original.constraint } : {}),
      },
    },
    "masked error",
  );
  return new GraphQLError(`An error occurred (logged with hash: '${hash}', id: '${errorId}')`, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    extensions: { code: "INTERNAL", errorId },
  });
}

const NOT_AUTHENTICATED = "Sign in first: this needs a signed-in user or an organization API key.";
const FORBIDDEN = "Your role may not make this change in this organization.";

/**
 * Codes for errors whose meaning depends on who asked. A missing privilege (42501 from the
 * privilege check) for an anonymous caller is NOT_AUTHENTICATED: every member-only field and
 * mutation is granted to app_user only. For a signed-in caller it stays masked: app_user has every
 * privilege its fields need, so it would be a bug. A row refused by a policy's WITH CHECK is
 * FORBIDDEN for anyone.
 */
export function codeForCaller(error: GraphQLError, role: string | undefined): GraphQLError {
  const original = error.originalError as PgErrorLike | undefined;
  if (!original || original.code !== "42501" || typeof error.extensions?.code === "string") return error;
  if (typeof original.message === "string" && original.message.includes("violates row-level security policy")) {
    return coded(error, FORBIDDEN, "FORBIDDEN");
  }
  if (role === "app_anonymous") return coded(error, NOT_AUTHENTICATED, "NOT_AUTHENTICATED");
  return error;
}

/** Gives a code to each error of a response that was answered without executing. */
export function codeRequestErrors(body: { errors?: { message?: unknown; extensions?: Record<string, unknown> }[] }, status: number): boolean {
  let changed = false;
  for (const error of body.errors ?? []) {
    const extensions = error.extensions ?? {};
    if (typeof extensions.code === "string") continue;
    const message = typeof error.message === "string" ? error.message : "";
    const httpStatus = typeof extensions.statusCode === "number" ? extensions.statusCode : null;
    let code = REQUEST_ERROR_CODES.find(([pattern]) => pattern.test(message))?.[1];
    if (!code && httpStatus !== null) code = HTTP_STATUS_CODES[httpStatus] ?? "BAD_REQUEST";
    code ??= status >= 500 ? "INTERNAL" : "GRAPHQL_VALIDATION_FAILED";
    if (code === "REQUEST_TOO_LARGE" && message === "Too much data") error.message = "Request body is larger than the limit.";
    error.extensions = { ...extensions, code };
    changed = true;
  }
  return changed;
}

function expressRequest(value: any): Request | undefined {
  return value?.requestContext?.expressv4?.req ?? value?.expressv4?.req;
}

function operationNameOf(body: { operationName?: unknown; query?: unknown } | null | undefined): string | null {
  if (!body) return null;
  if (typeof body.operationName === "string" && body.operationName) return body.operationName;
  if (typeof body.query !== "string") return null;
  return /^\s*(?:query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)/m.exec(body.query)?.[1] ?? null;
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return value != null && typeof (value as any)[Symbol.asyncIterator] === "function";
}

/**
 * Codes that need the caller's role, codes for requests refused before execution, and the
 * operation name for masked-error log lines (maskError itself is set in the preset). Ordered
 * after the operations plugin so that its metrics count the final codes.
 */
export function errorCodesPlugin(): GraphileConfig.Plugin {
  return {
    name: "TenantbaseErrorCodesPlugin",
    version: "1.0.0",
    after: ["TenantbaseOperationsPlugin"],
    grafserv: {
      middleware: {
        processGraphQLRequestBody(next, event) {
          // The masked-error log line names the operation: bound to this request's log context.
          const store = currentLogContext();
          store.operation = operationNameOf(event.body as any) ?? "anonymous";
          return next();
        },
        async processRequest(next, event) {
          const result = await next();
          const req = expressRequest(event.requestDigest);
          if (!result || result.type !== "buffer" || req?.graphqlExecuted) return result;
          const contentType = String(result.headers?.["content-type"] ?? "");
          if (!/json/.test(contentType)) return result;
          let body: any;
          try {
            body = JSON.parse(result.buffer.toString("utf8"));
          } catch {
            return result;
          }
          if (!codeRequestErrors(body, result.statusCode)) return result;
          const buffer = Buffer.from(JSON.stringify(body), "utf8");
          return { ...result, buffer, headers: { ...result.headers, "content-length": String(buffer.length) } };
        },
      },
    },
    grafast: {
      middleware: {
        async execute(next, event) {
          const result = await next();
          if (isAsyncIterable(result) || !result.errors?.length) return result;
          const role = (event.args.contextValue as { pgSettings?: { role?: string } })?.pgSettings?.role;
          return { ...result, errors: result.errors.map((error) => codeForCaller(error, role)) };
        },
      },
    },
  };
}
