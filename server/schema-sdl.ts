// The GraphQL schema as committed in schema.graphql: sorted, so that the file changes only when
// the API does.

import { lexicographicSortSchema, printSchema, type GraphQLSchema } from "postgraphile/graphql";

export function schemaToSdl(schema: GraphQLSchema): string {
  return printSchema(lexicographicSortSchema(schema)) + "\n";
}
