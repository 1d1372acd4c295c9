// In our API `id` is the row's UUID (the value in Stripe metadata, logs and job payloads) and
// the Relay global identifier is called `nodeId`. Amber would otherwise rename an `id` column to
// `rowId` and use `id` for the global identifier.

export const IdAsUuidPlugin: GraphileConfig.Plugin = {
  name: "IdAsUuidPlugin",
  version: "1.0.0",
  inflection: {
    replace: {
      nodeIdFieldName() {
        return "nodeId";
      },
      _attributeName(_previous, _options, details) {
        const attribute = details.codec.attributes[details.attributeName];
        const name = attribute.extensions?.tags?.name || details.attributeName;
        return this.coerceToGraphQLName(name);
      },
    },
  },
};
