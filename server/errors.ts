// What a client may learn from an error. Business errors are raised in SQL through
// app_hidden.raise_error(code, message): SQLSTATE TB000 with the public code in DETAIL. They pass
// through with `extensions.code`. A value PostgreSQL cannot take as its type (an amount of "abc",
// an impossible date, a string too long for its column) is the client's bad input: INVALID_INPUT,
// with a fixed message (PostgreSQL's own names types and values). Every other error (SQL,
// permissions, bugs, division by zero) is masked by grafserv's default, which logs it with a hash
// and tells the client only that hash.

import { GraphQLError } from "postgraphile/graphql";
import { defaultMaskError } from "postgraphile/grafserv";

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

interface PgErrorLike {
  code?: unknown;
  detail?: unknown;
  message?: unknown;
  hint?: unknown;
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

export function maskError(error: GraphQLError): GraphQLError {
  const original = error.originalError as PgErrorLike | undefined;
  if (
    original &&
    original.code === BUSINESS_ERROR_SQLSTATE &&
    typeof original.detail === "string" &&
    CODE.test(original.detail) &&
    typeof original.message === "string"
  ) {
    return new GraphQLError(original.message, {
      nodes: error.nodes,
      source: error.source,
      positions: error.positions,
      path: error.path,
      extensions: { ...extraExtensions(original.hint), code: original.detail },
    });
  }
  if (original && typeof original.code === "string" && BAD_INPUT_SQLSTATES.has(original.code)) {
    return new GraphQLError("A value has the wrong format or is out of range for its field.", {
      nodes: error.nodes,
      source: error.source,
      positions: error.positions,
      path: error.path,
      extensions: { code: "INVALID_INPUT" },
    });
  }
  if (original && original.code === QUERY_CANCELED_SQLSTATE) {
    return new GraphQLError("The query took too long and was cancelled; ask for less (smaller pages, narrower filters).", {
      nodes: error.nodes,
      source: error.source,
      positions: error.positions,
      path: error.path,
      extensions: { code: "QUERY_TIMEOUT" },
    });
  }
  return defaultMaskError(error);
}
