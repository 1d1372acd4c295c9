// Every connection gets a default and a maximum page size. Without them `generations { nodes
// { … } }` returned every row of the organization, and 30 aliases of it took the server to
// 1.8 GB. A connection asked for without `first` or `last` returns `defaultPageSize` rows;
// `first`/`last` outside 0…`maxPageSize` (e.g. -1, or 10,000) is refused with INVALID_PAGE_SIZE.
//
// How: PostGraphile's own `first`/`last` arguments call setFirst/setLast on the connection step
// (graphile-build-pg's PgFirstLastBeforeAfterArgsPlugin), and only when given. This plugin takes
// that over: the connection field's plan sets both from one checked value, and the arguments'
// own applyPlan is replaced by a no-op so the step is set once. The values may come from
// variables, so the check runs when the operation runs (a lambda step), not when it is planned.

import { lambda, SafeError, type Step } from "postgraphile/grafast";

export interface PageSizes {
  defaultPageSize: number;
  maxPageSize: number;
}

export function checkedPageSize(name: "first" | "last", value: unknown, max: number): number | null {
  if (value == null) return null;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > max) {
    throw new SafeError(`\`${name}\` must be a whole number from 0 to ${max} (got ${String(value)}).`, {
      code: "INVALID_PAGE_SIZE",
    });
  }
  return value;
}

interface ConnectionLike {
  setFirst(step: Step): void;
  setLast(step: Step): void;
}

function isConnection(step: unknown): step is ConnectionLike {
  return (
    step != null &&
    typeof (step as ConnectionLike).setFirst === "function" &&
    typeof (step as ConnectionLike).setLast === "function"
  );
}

const noop = () => {};

export function makePageSizePlugin(sizes: PageSizes): GraphileConfig.Plugin {
  const { defaultPageSize, maxPageSize } = sizes;
  return {
    name: "TenantbasePageSizePlugin",
    version: "1.0.0",
    after: ["PgFirstLastBeforeAfterArgsPlugin"],
    schema: {
      hooks: {
        GraphQLObjectType_fields_field(field, _build, context) {
          if (!context.scope.isPgFieldConnection || !field.plan) return field;
          const plan = field.plan;
          return {
            ...field,
            plan(...args: Parameters<typeof plan>) {
              const $connection = (plan as any)(...args);
              if (!isConnection($connection)) return $connection;
              const fieldArgs = args[1] as { getRaw(name: string): Step };
              const info = args[2] as { field?: { args: readonly { name: string }[] } } | undefined;
              const has = (name: string) => info?.field?.args.some((arg) => arg.name === name) ?? false;
              if (!has("first")) return $connection;
              const $first = fieldArgs.getRaw("first");
              const $last = has("last") ? fieldArgs.getRaw("last") : null;
              $connection.setFirst(
                lambda(
                  [$first, $last ?? $first],
                  ([first, last]) => {
                    const f = checkedPageSize("first", first, maxPageSize);
                    const l = $last ? checkedPageSize("last", last, maxPageSize) : null;
                    // Neither given: the default page. `last` alone: no `first` (it would cut
                    // the set from the wrong end).
                    return f ?? (l == null ? defaultPageSize : null);
                  },
                  true,
                ),
              );
              if ($last) $connection.setLast(lambda($last, (last) => checkedPageSize("last", last, maxPageSize), true));
              return $connection;
            },
          } as typeof field;
        },
        GraphQLObjectType_fields_field_args_arg(arg, _build, context) {
          const { scope } = context;
          if (!scope.isPgFieldConnection || (scope.argName !== "first" && scope.argName !== "last")) return arg;
          return {
            ...arg,
            // No numbers here: they are configuration, and schema.graphql is committed.
            description: `${arg.description ?? ""} Bounded by the server's maximum page size; without \`first\` or \`last\` a default page size applies.`.trim(),
            applyPlan: noop,
          };
        },
      },
    },
  };
}
