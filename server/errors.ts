// What a client may learn from an error. Business errors are raised in SQL through
// app_hidden.raise_error(code, message): SQLSTATE TB000 with the public code in DETAIL. They pass
// through with `extensions.code`; every other error (SQL, permissions, bugs) is masked by
// grafserv's default, which logs it with a hash and tells the client only that hash.

import { GraphQLError } from "postgraphile/graphql";
import { defaultMaskError } from "postgraphile/grafserv";

export const BUSINESS_ERROR_SQLSTATE = "TB000";
const CODE = /^[A-Z][A-Z0-9_]{1,63}$/;

interface PgErrorLike {
  code?: unknown;
  detail?: unknown;
  message?: unknown;
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
      extensions: { code: original.detail },
    });
  }
  return defaultMaskError(error);
}
