// Issue 11's limits: one default each, validated once in core/config.ts.

import { ConfigError, loadConfig, securityLimits } from "../../core/config.ts";

test("defaults", () => {
  expect(loadConfig({}).security).toEqual({
    graphqlMaxCost: 20_000,
    graphqlMaxMutations: 10,
    graphqlDefaultPageSize: 50,
    graphqlMaxPageSize: 200,
    graphqlStatementTimeoutMs: 5000,
    graphqlIdleInTransactionTimeoutMs: 15_000,
    promptSearchMinLength: 3,
    promptSearchMaxLength: 200,
    workerUnlockIntervalSeconds: 5,
    graphqlMaxDocumentBytes: 50_000,
    graphqlMaxFragments: 100,
    graphqlMaxFragmentSpreads: 500,
    graphqlMaxFragmentDepth: 20,
    graphqlDocumentCacheEntries: 500,
    graphqlDocumentCacheBytes: 64_000_000,
    graphqlMaxResponseBytes: 5_000_000,
  });
});

test("values are read and validated with a message naming the variable", () => {
  expect(securityLimits({ GRAPHQL_STATEMENT_TIMEOUT_MS: "250", GRAPHQL_MAX_PAGE_SIZE: "500", PROMPT_SEARCH_MAX_LENGTH: "80" })).toMatchObject({
    graphqlStatementTimeoutMs: 250,
    graphqlMaxPageSize: 500,
    promptSearchMaxLength: 80,
  });
  expect(() => securityLimits({ GRAPHQL_STATEMENT_TIMEOUT_MS: "0" })).toThrow(/GRAPHQL_STATEMENT_TIMEOUT_MS must be a whole number/);
  expect(() => securityLimits({ GRAPHQL_MAX_COST: "lots" })).toThrow(ConfigError);
  expect(() => securityLimits({ GRAPHQL_DEFAULT_PAGE_SIZE: "300" })).toThrow(/must not exceed GRAPHQL_MAX_PAGE_SIZE/);
  expect(() => securityLimits({ PROMPT_SEARCH_MIN_LENGTH: "10", PROMPT_SEARCH_MAX_LENGTH: "5" })).toThrow(/must not exceed PROMPT_SEARCH_MAX_LENGTH/);
  expect(() => securityLimits({ WORKER_UNLOCK_INTERVAL_SECONDS: "-1" })).toThrow(/WORKER_UNLOCK_INTERVAL_SECONDS/);
});

test("the document, cache and response limits of issue 25 are read and validated", () => {
  expect(
    securityLimits({
      GRAPHQL_MAX_DOCUMENT_BYTES: "20000",
      GRAPHQL_MAX_FRAGMENTS: "10",
      GRAPHQL_MAX_FRAGMENT_SPREADS: "40",
      GRAPHQL_MAX_FRAGMENT_DEPTH: "5",
      GRAPHQL_DOCUMENT_CACHE_ENTRIES: "0",
      GRAPHQL_DOCUMENT_CACHE_BYTES: "1000000",
      GRAPHQL_MAX_RESPONSE_BYTES: "2000000",
    }),
  ).toMatchObject({
    graphqlMaxDocumentBytes: 20_000,
    graphqlMaxFragments: 10,
    graphqlMaxFragmentSpreads: 40,
    graphqlMaxFragmentDepth: 5,
    graphqlDocumentCacheEntries: 0,
    graphqlDocumentCacheBytes: 1_000_000,
    graphqlMaxResponseBytes: 2_000_000,
  });
  expect(() => securityLimits({ GRAPHQL_MAX_FRAGMENT_DEPTH: "0" })).toThrow(/GRAPHQL_MAX_FRAGMENT_DEPTH must be a whole number/);
  expect(() => securityLimits({ GRAPHQL_MAX_RESPONSE_BYTES: "5MB" })).toThrow(/GRAPHQL_MAX_RESPONSE_BYTES/);
  expect(() => securityLimits({ GRAPHQL_MAX_DOCUMENT_BYTES: "10" })).toThrow(/GRAPHQL_MAX_DOCUMENT_BYTES/);
});
