// `@flattenPayload` on a mutation function that returns a composite type puts the composite's
// fields straight on the mutation payload instead of under `result`. Used for the mutations that
// return a row plus a one-time secret: `inviteMember { invitation { … } invitationToken }`,
// `createApiKey { apiKey { … } secret }` (db/migrations/committed/000004-team-lifecycle.sql). Each payload field
// reuses the plan of the composite type's own field, applied to the mutation's result.

import type { GraphQLFieldConfig, GraphQLObjectType } from "postgraphile/graphql";

export const FlattenPayloadPlugin: GraphileConfig.Plugin = {
  name: "FlattenPayloadPlugin",
  version: "1.0.0",
  schema: {
    hooks: {
      GraphQLObjectType_fields(fields, build, context) {
        const { scope } = context;
        const resource = (scope as { pgTypeResource?: { extensions?: { tags?: Record<string, unknown> } } }).pgTypeResource;
        if (!scope.isMutationPayload || !resource?.extensions?.tags?.flattenPayload) return fields;
        const resultEntry = Object.entries(fields).find(([name]) => name !== "clientMutationId" && name !== "query");
        if (!resultEntry) return fields;
        const [resultName, resultField] = resultEntry;
        const resultType = build.graphql.getNamedType(resultField.type) as GraphQLObjectType;
        if (!build.graphql.isObjectType(resultType)) return fields;
        const flattened: Record<string, GraphQLFieldConfig<any, any>> = {};
        for (const [name, field] of Object.entries(resultType.toConfig().fields)) {
          // A field without a plan gets grafast's default: $parent.get(fieldName).
          const plan =
            (field.extensions as { grafast?: { plan?: (...args: any[]) => any } } | undefined)?.grafast?.plan ??
            (($parent: any) => $parent.get(name));
          flattened[name] = {
            ...field,
            extensions: {
              ...field.extensions,
              grafast: {
                plan: ($payload: any, args: any, info: any) => plan($payload.get("result"), args, info),
              },
            },
          };
        }
        const { [resultName]: _removed, ...rest } = fields;
        return { ...rest, ...flattened };
      },
    },
  },
};
