// Filters on generation lists that the built-in `condition` (equality on indexed columns) cannot
// express: a created_at range, metadata containment (GIN index), and fuzzy prompt
// search (pg_trgm index). Specific conditions rather than a generic filter plugin, so every
// filter a client can send is one an index serves. RLS still decides which rows exist.

import { addPgTableCondition } from "postgraphile/utils";
import { SafeError } from "postgraphile/grafast";
import type { GraphQLInputType } from "postgraphile/graphql";

const generations = { schemaName: "app_public", tableName: "generations" };

const createdFrom = addPgTableCondition(generations, "createdFrom", (build) => ({
  description: "Only generations created at or after this moment.",
  type: build.getTypeByName("Datetime") as GraphQLInputType,
  apply(condition, value) {
    if (value == null) return;
    const { sqlValueWithCodec, TYPES } = build.dataplanPg;
    condition.where(build.sql`${condition.alias}.created_at >= ${sqlValueWithCodec(value, TYPES.timestamptz)}`);
  },
}));

const createdBefore = addPgTableCondition(generations, "createdBefore", (build) => ({
  description: "Only generations created before this moment.",
  type: build.getTypeByName("Datetime") as GraphQLInputType,
  apply(condition, value) {
    if (value == null) return;
    const { sqlValueWithCodec, TYPES } = build.dataplanPg;
    condition.where(build.sql`${condition.alias}.created_at < ${sqlValueWithCodec(value, TYPES.timestamptz)}`);
  },
}));

const metadataContains = addPgTableCondition(generations, "metadataContains", (build) => ({
  description: 'Only generations whose metadata contains this JSON object, e.g. {"size": "1024x1024"}.',
  type: build.getTypeByName("JSON") as GraphQLInputType,
  apply(condition, value) {
    if (value == null) return;
    const { sqlValueWithCodec, TYPES } = build.dataplanPg;
    condition.where(build.sql`${condition.alias}.metadata @> ${sqlValueWithCodec(value, TYPES.jsonb)}`);
  },
}));

export interface PromptSearchLimits {
  promptSearchMinLength: number;
  promptSearchMaxLength: number;
}

/**
 * The fuzzy match costs time in proportion to rows × pattern length (a 4,000-character pattern
 * over 20k generations took 5.6 s; 84 KB took minutes), and a pattern under three characters
 * has no trigram to use the index with: both ends are bounded, checked before any SQL runs.
 */
export function checkPromptSearch(value: string, limits: PromptSearchLimits): void {
  const length = [...value.trim()].length;
  if (length < limits.promptSearchMinLength || [...value].length > limits.promptSearchMaxLength) {
    throw new SafeError(
      `promptSearch must be ${limits.promptSearchMinLength} to ${limits.promptSearchMaxLength} characters long (got ${[...value].length}).`,
      { code: "INVALID_SEARCH" },
    );
  }
}

const promptSearch = (limits: PromptSearchLimits) =>
  addPgTableCondition(generations, "promptSearch", (build) => ({
    description:
      "Fuzzy search of the prompt (metadata.prompt), case-insensitive. A generation matches when some run of words in its prompt " +
      "is similar to the whole search text: pg_trgm word similarity of at least 0.6 (pg_trgm.word_similarity_threshold), i.e. at " +
      "least 60% of the text's trigrams (three-letter pieces of each word, padded with spaces) appear in that run. So the typos " +
      "tolerated grow with the text's length: 'kiten' finds 'kitten' and 'orange kiten' finds 'orange kitten', but a wrong letter " +
      "in a short word ('orenge') or one in each of two short words ('orenge kiten') finds nothing. Words count together, in any " +
      "order. Length bounded by the server (INVALID_SEARCH outside).",
    type: build.graphql.GraphQLString,
    apply(condition, value) {
      if (value == null) return;
      checkPromptSearch(String(value), limits);
      const { sqlValueWithCodec, TYPES } = build.dataplanPg;
      condition.where(
        build.sql`(${condition.alias}.metadata ->> 'prompt') operator(public.%>) ${sqlValueWithCodec(value, TYPES.text)}`,
      );
    },
  }));

export function makeGenerationConditionsPlugins(limits: PromptSearchLimits) {
  return [createdFrom, createdBefore, metadataContains, promptSearch(limits)];
}
