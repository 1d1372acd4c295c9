// Grafast reads GRAPHILE_ENV when it is first imported: development adds checks and readable
// output, production is faster. Import this module before anything that imports postgraphile.
process.env.GRAPHILE_ENV ??= process.env.NODE_ENV === "production" ? "production" : "development";
