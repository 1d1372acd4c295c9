// Grafast reads GRAPHILE_ENV when it is first imported: development adds checks and readable
// output, production is faster. Import this module before anything that imports postgraphile.
process.env.GRAPHILE_ENV ??= process.env.NODE_ENV === "production" ? "production" : "development";
// Behind PgBouncer in transaction mode (1.18, Debian's, has no prepared-statement support) each
// transaction may land on another server connection, so PostGraphile must not use named
// prepared statements: PG_PREPARED_STATEMENTS=false turns them off (validated in config.ts).
if (/^(0|false|off|no)$/i.test(process.env.PG_PREPARED_STATEMENTS?.trim() ?? "")) {
  process.env.DATAPLAN_PG_PREPARED_STATEMENT_CACHE_SIZE ??= "0";
}
