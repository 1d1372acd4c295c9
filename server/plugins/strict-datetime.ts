// Datetime input is an ISO 8601 timestamp and nothing else. PostgreSQL's own input also accepts
// words ('now', 'today', 'tomorrow', 'yesterday', 'epoch', 'infinity'), which made
// `expiresAt: "tomorrow"` mean whatever day the server was on; a client sending one of those
// almost certainly has a bug. Refused here, before any SQL runs, as a clear input error.

import { GraphQLError, Kind, type ValueNode } from "postgraphile/graphql";

/** 2026-11-30, 2026-11-30T23:59, 2026-11-30T23:59:59.123456Z, 2026-11-30 23:59:59+01:00 */
const ISO_8601 = /^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?)?$/;

function strictDatetime(value: unknown): string {
  if (typeof value !== "string" || value.length > 40 || !ISO_8601.test(value)) {
    throw new GraphQLError("A Datetime must be an ISO 8601 timestamp such as 2026-12-01T00:00:00Z.", {
      extensions: { code: "INVALID_INPUT" },
    });
  }
  return value;
}

export const StrictDatetimePlugin: GraphileConfig.Plugin = {
  name: "StrictDatetimePlugin",
  version: "1.0.0",
  schema: {
    hooks: {
      GraphQLScalarType(config) {
        if (config.name !== "Datetime") return config;
        return {
          ...config,
          parseValue: (value: unknown) => strictDatetime(value),
          parseLiteral: (ast: ValueNode, variables?: Record<string, unknown> | null) => {
            if (ast.kind === Kind.VARIABLE) return strictDatetime(variables?.[ast.name.value]);
            return strictDatetime(ast.kind === Kind.STRING ? ast.value : undefined);
          },
        };
      },
    },
  },
};
