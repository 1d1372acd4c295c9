// Limits on what one GraphQL request may ask for, checked during validation (before anything
// touches the database). Each rejection is a GraphQL error with a stable extensions.code,
// answered with HTTP 400 (200 for legacy application/json clients).
//
// The measurement is linear in the document's size: every fragment is measured once and its
// result reused at each spread (a fragment spread twice in a fragment spread twice … twenty
// deep is 2^20 fields, counted with arithmetic, not by walking them), and a fragment that spreads
// itself is refused. Every selection counts, the introspection meta-fields (__schema, __type,
// __typename) included: 500 aliases of __schema are 500 introspections' worth of output.
//
// Besides depth and field count, a cost estimate multiplies what is selected under a
// connection's `nodes`/`edges` by the page size it may return (its `first`/`last`, the default
// page size when neither is given, the maximum when it comes from a variable), so 30 aliases of
// a list are 30 pages, not 30 fields. And mutations are counted: aliases must not multiply
// expensive ones (a password check costs ~70 ms of bcrypt and is a guess at a password).

import {
  GraphQLError,
  Kind,
  Lexer,
  NoSchemaIntrospectionCustomRule,
  Source,
  TokenKind,
  parse,
  validate,
  getNamedType,
  isInputObjectType,
  isInterfaceType,
  isObjectType,
  type ASTVisitor,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLNamedType,
  type GraphQLSchema,
  type DocumentNode,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
} from "postgraphile/graphql";
import { SafeError } from "postgraphile/grafast";

export interface GraphQLLimits {
  /** Deepest field nesting, e.g. `{ a { b { c } } }` is 3. */
  maxDepth: number;
  /** Fields in the operation after expanding fragments (aliases and meta-fields count). */
  maxNodes: number;
  /** Estimated fields returned: what is under a connection's nodes/edges times its page size. */
  maxCost: number;
  /** Largest request body in bytes (HTTP 413 above it). */
  maxBodyBytes: number;
  /** false: the introspection meta-fields __schema and __type are refused (production). */
  introspection: boolean;
  /** Root fields of one mutation operation (aliases count). */
  maxMutations: number;
  /** Mutations taking a password (authenticate, register, …) per request. */
  maxPasswordMutations: number;
  /** Page size of a connection when neither `first` nor `last` is given. */
  defaultPageSize: number;
  /** Largest `first`/`last` a connection accepts. */
  maxPageSize: number;
  /** statement_timeout of every request transaction (QUERY_TIMEOUT past it). */
  statementTimeoutMs: number;
  /** idle_in_transaction_session_timeout of every request transaction. */
  idleInTransactionTimeoutMs: number;
  /** Bounds of generations' promptSearch condition, in characters (INVALID_SEARCH outside). */
  promptSearchMinLength: number;
  promptSearchMaxLength: number;
  /** Largest GraphQL document (the `query` text) in bytes: DOCUMENT_TOO_LARGE above it. */
  maxDocumentBytes: number;
  /** Fragment definitions in one document: TOO_MANY_FRAGMENTS above it. */
  maxFragments: number;
  /** Fragment spreads (`...Name`) written in one document: TOO_MANY_FRAGMENT_SPREADS above it. */
  maxFragmentSpreads: number;
  /** Longest chain of fragments spreading fragments: FRAGMENT_NESTING_TOO_DEEP above it. */
  maxFragmentDepth: number;
  /** Parsed documents kept for reuse: at most this many, and at most maxDocumentCacheBytes (estimated). */
  documentCacheEntries: number;
  documentCacheBytes: number;
  /** Largest response body in bytes: RESPONSE_TOO_LARGE above it (the data is dropped). */
  maxResponseBytes: number;
}

export const DEFAULT_LIMITS: GraphQLLimits = {
  maxDepth: 12,
  maxNodes: 500,
  maxCost: 20_000,
  maxBodyBytes: 100_000,
  introspection: true,
  maxMutations: 10,
  maxPasswordMutations: 1,
  defaultPageSize: 50,
  maxPageSize: 200,
  statementTimeoutMs: 5000,
  idleInTransactionTimeoutMs: 15_000,
  promptSearchMinLength: 3,
  promptSearchMaxLength: 200,
  maxDocumentBytes: 50_000,
  maxFragments: 100,
  maxFragmentSpreads: 500,
  maxFragmentDepth: 20,
  documentCacheEntries: 500,
  documentCacheBytes: 64_000_000,
  maxResponseBytes: 5_000_000,
};

/**
 * What one JSON value counts for in the cost estimate. Generation metadata may hold 16 kB of
 * text, far more than an id or a name: with 5, the finding's 20 aliases × 200 rows of
 * `{ id metadata }` (~60 MB) cost 24,000 and are refused before anything runs (QUERY_TOO_COSTLY),
 * while 30 default pages of generations with metadata still run. What remains within the cost
 * limit (at most ~3,300 metadata values) is bounded by the response budget below.
 */
export const JSON_VALUE_COST = 5;

interface Measure {
  depth: number;
  nodes: number;
  /** Cost of the selections other than nodes/edges. */
  flat: number;
  /** Cost of the selections named nodes/edges: multiplied by the page size of a connection. */
  paged: number;
}

const ZERO: Measure = { depth: 0, nodes: 0, flat: 0, paged: 0 };

/** A fragment spreading itself (directly or through others): refused, it would never end. */
class FragmentCycle extends Error {
  readonly fragment: string;
  constructor(fragment: string) {
    super(fragment);
    this.fragment = fragment;
  }
}

type PageSizes = Pick<GraphQLLimits, "defaultPageSize" | "maxPageSize">;

function fieldDefinition(parent: GraphQLNamedType | undefined, name: string): GraphQLField<unknown, unknown> | undefined {
  if (parent && (isObjectType(parent) || isInterfaceType(parent))) return parent.getFields()[name];
  return undefined;
}

/** How many rows a connection field may return, judged from the document alone. */
function pageSizeOf(field: FieldNode, pages: PageSizes): number {
  let size: number | null = null;
  for (const arg of field.arguments ?? []) {
    if (arg.name.value !== "first" && arg.name.value !== "last") continue;
    if (arg.value.kind === Kind.INT) {
      const n = Number(arg.value.value);
      // Out of range is refused when the field runs (server/plugins/page-size.ts); here it is
      // estimated at the maximum.
      size = Math.max(size ?? 0, n >= 0 && n <= pages.maxPageSize ? n : pages.maxPageSize);
    } else if (arg.value.kind === Kind.NULL) {
      continue;
    } else {
      size = pages.maxPageSize; // a variable: could be anything up to the maximum
    }
  }
  return size ?? pages.defaultPageSize;
}

/**
 * Measures operations and fragments of one document. Fragments are memoised (by name) so each
 * is walked once however often it is spread.
 */
class DocumentMeasurer {
  private readonly memo = new Map<string, Measure>();
  private readonly visiting = new Set<string>();

  private readonly schema: GraphQLSchema;
  private readonly fragments: Map<string, FragmentDefinitionNode>;
  private readonly pages: PageSizes;

  constructor(schema: GraphQLSchema, fragments: Map<string, FragmentDefinitionNode>, pages: PageSizes) {
    this.schema = schema;
    this.fragments = fragments;
    this.pages = pages;
  }

  fragment(name: string): Measure {
    const known = this.memo.get(name);
    if (known) return known;
    const fragment = this.fragments.get(name);
    if (!fragment) return ZERO; // unknown fragments are reported by graphql-js's own rules
    if (this.visiting.has(name)) throw new FragmentCycle(name);
    this.visiting.add(name);
    const result = this.selectionSet(fragment.selectionSet, this.schema.getType(fragment.typeCondition.name.value) ?? undefined);
    this.visiting.delete(name);
    this.memo.set(name, result);
    return result;
  }

  selectionSet(selectionSet: SelectionSetNode, parent: GraphQLNamedType | undefined, insideMeta = false): Measure {
    let depth = 0;
    let nodes = 0;
    let flat = 0;
    let paged = 0;
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) {
        const name = selection.name.value;
        const meta = insideMeta || name.startsWith("__");
        const definition = fieldDefinition(parent, name);
        // A JSON value (generation metadata: up to 16 kB of text) weighs as much as many small ones.
        let cost = definition && getNamedType(definition.type).name === "JSON" ? JSON_VALUE_COST : 1;
        let fieldDepth = 1;
        nodes += 1;
        if (selection.selectionSet) {
          const inner = this.selectionSet(
            selection.selectionSet,
            definition ? getNamedType(definition.type) : undefined,
            meta,
          );
          nodes += inner.nodes;
          const isConnection = !meta && definition?.args.some((arg) => arg.name === "first") === true;
          cost += inner.flat + inner.paged * (isConnection ? pageSizeOf(selection, this.pages) : 1);
          // Inside introspection only the meta-field itself adds depth: graphql-js bounds the
          // nesting of introspection lists itself, and GraphiQL's own introspection query nests
          // `ofType` deeper than any API query needs.
          fieldDepth = meta ? 1 : inner.depth + 1;
        }
        depth = Math.max(depth, fieldDepth);
        if (name === "nodes" || name === "edges") paged += cost;
        else flat += cost;
      } else {
        const inner =
          selection.kind === Kind.INLINE_FRAGMENT
            ? this.selectionSet(
                selection.selectionSet,
                selection.typeCondition ? (this.schema.getType(selection.typeCondition.name.value) ?? undefined) : parent,
                insideMeta,
              )
            : this.fragment(selection.name.value);
        depth = Math.max(depth, inner.depth);
        nodes += inner.nodes;
        flat += inner.flat;
        paged += inner.paged;
      }
    }
    return { depth, nodes, flat, paged };
  }
}

/** Mutation fields that take a password anywhere in their arguments (checked once per schema). */
const passwordFieldsBySchema = new WeakMap<GraphQLSchema, Set<string>>();

function takesPassword(type: GraphQLInputType, seen: Set<string>): boolean {
  const named = getNamedType(type);
  if (!isInputObjectType(named) || seen.has(named.name)) return false;
  seen.add(named.name);
  return Object.values(named.getFields()).some((field) => /password/i.test(field.name) || takesPassword(field.type, seen));
}

export function passwordMutations(schema: GraphQLSchema): Set<string> {
  let names = passwordFieldsBySchema.get(schema);
  if (!names) {
    names = new Set();
    for (const field of Object.values(schema.getMutationType()?.getFields() ?? {})) {
      if (field.args.some((arg) => /password/i.test(arg.name) || takesPassword(arg.type, new Set()))) names.add(field.name);
    }
    passwordFieldsBySchema.set(schema, names);
  }
  return names;
}

/** Root fields of a mutation operation (through fragments), and how many of them take a password. */
function countMutations(
  selectionSet: SelectionSetNode,
  fragments: Map<string, FragmentDefinitionNode>,
  passwordFields: Set<string>,
  memo: Map<string, { all: number; password: number }>,
  visiting: Set<string>,
): { all: number; password: number } {
  let all = 0;
  let password = 0;
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      if (selection.name.value.startsWith("__")) continue; // __typename runs nothing
      all += 1;
      if (passwordFields.has(selection.name.value)) password += 1;
      continue;
    }
    let inner: { all: number; password: number };
    if (selection.kind === Kind.INLINE_FRAGMENT) {
      inner = countMutations(selection.selectionSet, fragments, passwordFields, memo, visiting);
    } else {
      const name = selection.name.value;
      const fragment = fragments.get(name);
      if (!fragment) continue;
      if (visiting.has(name)) throw new FragmentCycle(name);
      const known = memo.get(name);
      if (known) inner = known;
      else {
        visiting.add(name);
        inner = countMutations(fragment.selectionSet, fragments, passwordFields, memo, visiting);
        visiting.delete(name);
        memo.set(name, inner);
      }
    }
    all += inner.all;
    password += inner.password;
  }
  return { all, password };
}

type RuleLimits = Pick<
  GraphQLLimits,
  "maxDepth" | "maxNodes" | "maxCost" | "maxMutations" | "maxPasswordMutations" | "defaultPageSize" | "maxPageSize"
>;

export function limitsRule(partial: Partial<RuleLimits>): ValidationRule {
  const limits: RuleLimits = { ...DEFAULT_LIMITS, ...partial };
  return (context: ValidationContext): ASTVisitor => ({
    Document(document) {
      const fragments = new Map<string, FragmentDefinitionNode>();
      const operations: OperationDefinitionNode[] = [];
      for (const definition of document.definitions) {
        if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
        else if (definition.kind === Kind.OPERATION_DEFINITION) operations.push(definition);
      }
      const schema = context.getSchema();
      const measurer = new DocumentMeasurer(schema, fragments, limits);
      const report = (message: string, code: string, node: OperationDefinitionNode) =>
        context.reportError(new GraphQLError(message, { nodes: [node], extensions: { code } }));
      for (const operation of operations) {
        const name = operation.name ? `Operation ${operation.name.value}` : "The operation";
        let measured: Measure;
        try {
          const root =
            operation.operation === "mutation"
              ? schema.getMutationType()
              : operation.operation === "subscription"
                ? schema.getSubscriptionType()
                : schema.getQueryType();
          measured = measurer.selectionSet(operation.selectionSet, root ?? undefined);
          if (operation.operation === "mutation") {
            const counted = countMutations(operation.selectionSet, fragments, passwordMutations(schema), new Map(), new Set());
            if (counted.password > limits.maxPasswordMutations) {
              report(
                `${name} runs ${counted.password} mutations that check a password; at most ${limits.maxPasswordMutations} may run in one request.`,
                "TOO_MANY_PASSWORD_MUTATIONS",
                operation,
              );
            } else if (counted.all > limits.maxMutations) {
              report(
                `${name} runs ${counted.all} mutations; at most ${limits.maxMutations} may run in one request.`,
                "TOO_MANY_MUTATIONS",
                operation,
              );
            }
          }
        } catch (error) {
          if (!(error instanceof FragmentCycle)) throw error;
          report(`Fragment ${error.fragment} spreads itself; fragments must not form a cycle.`, "FRAGMENT_CYCLE", operation);
          continue;
        }
        const { depth, nodes } = measured;
        const cost = measured.flat + measured.paged;
        if (depth > limits.maxDepth) {
          report(`${name} is nested ${depth} levels deep; the limit is ${limits.maxDepth}.`, "QUERY_TOO_DEEP", operation);
        }
        if (nodes > limits.maxNodes) {
          report(`${name} selects more than ${limits.maxNodes} fields; ask for less, or split it.`, "QUERY_TOO_COMPLEX", operation);
        } else if (cost > limits.maxCost && depth <= limits.maxDepth) {
          // (one reason is enough: a document too deep or too wide is usually also too costly)
          report(
            `${name} may return about ${Math.round(cost)} values (fields times page sizes); the limit is ${limits.maxCost}. Ask for smaller pages (first/last) or fewer fields.`,
            "QUERY_TOO_COSTLY",
            operation,
          );
        }
      }
      return false; // nothing more to visit
    },
  });
}

/** Introspection refused with a code the client can recognise. */
export const noIntrospectionRule: ValidationRule = (context) => {
  // Same checks as graphql-js's rule; only the error is reworded and given a code.
  const wrapped = Object.create(context) as ValidationContext;
  wrapped.reportError = (error: GraphQLError) =>
    context.reportError(
      new GraphQLError("Introspection is disabled on this server.", {
        nodes: error.nodes,
        extensions: { code: "INTROSPECTION_DISABLED" },
      }),
    );
  return NoSchemaIntrospectionCustomRule(wrapped);
};

export function validationRulesFor(limits: GraphQLLimits): ValidationRule[] {
  const rules = [limitsRule(limits)];
  if (!limits.introspection) rules.push(noIntrospectionRule);
  return rules;
}

// ---------------------------------------------------------------------------------------------
// The document check before parsing: one pass over the document's tokens, before graphql-js
// parses it (its parser recurses once per nesting level), validates it (several of its rules are
// quadratic in what one selection set or one fragment chain holds) and grafast plans it (its
// field collection copies the visited fragments at every spread: a chain of n fragments costs
// n²). A linear chain of 2,000 fragments blocked the event loop for ~0.8 s in planning, and on
// a cold process overflowed the stack of the measurement above (HTTP 500). Everything here is
// iterative and linear in the document's length.

/** Brackets ({ ( [) open at once: deeper is refused before graphql-js's recursive parser sees it. */
export const MAX_BRACKET_NESTING = 128;

/**
 * Variable definitions in one document. graphql-js's validation of 4,000 unused ones took
 * 120–540 ms here; 250 took ~10 ms. No real operation declares anywhere near 100.
 */
export const MAX_VARIABLE_DEFINITIONS = 100;

export type DocumentTextLimits = Pick<
  GraphQLLimits,
  "maxDocumentBytes" | "maxFragments" | "maxFragmentSpreads" | "maxFragmentDepth" | "maxNodes"
>;

/** What the pass found: the refusal (if any), and tokens and fields written (for the cache's estimate). */
export interface DocumentTextCheck {
  error: GraphQLError | null;
  tokens: number;
  fields: number;
}

function refusal(message: string, code: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code } });
}

/**
 * Checks a document's text against the limits that must hold before it is parsed: its size,
 * bracket nesting, fields written, fragment definitions, spreads, and the longest chain of
 * fragments spreading fragments. Returns the first limit broken.
 */
export function checkDocumentText(query: string, limits: DocumentTextLimits): DocumentTextCheck {
  // Characters bound bytes from below (a UTF-16 unit is 1–3 UTF-8 bytes): count bytes only when
  // it matters.
  if (query.length > limits.maxDocumentBytes || (query.length * 3 > limits.maxDocumentBytes && Buffer.byteLength(query, "utf8") > limits.maxDocumentBytes)) {
    return {
      error: refusal(`The document is larger than ${limits.maxDocumentBytes} bytes; send a smaller operation.`, "DOCUMENT_TOO_LARGE"),
      tokens: 0,
      fields: 0,
    };
  }
  const maxFields = limits.maxNodes * 2;
  const lexer = new Lexer(new Source(query));
  // Definitions in order; each lists the fragments it spreads (by name).
  const spreadsOf: string[][] = [];
  const fragmentIndex = new Map<string, number>();
  let current = -1;
  let pending: "fragment" | "operation" | null = null;
  let fragmentNameNext = false;
  // Open brackets: "{" a selection set, "o" an object value, "(" and "[".
  const stack: string[] = [];
  let parens = 0;
  let fields = 0;
  let spreads = 0;
  let fragments = 0;
  let variables = 0;
  let tokens = 0;
  let previous: TokenKind | null = null;
  let previousValue = "";
  let beforePrevious: TokenKind | null = null;
  try {
    for (let token = lexer.advance(); token.kind !== TokenKind.EOF; token = lexer.advance()) {
      tokens += 1;
      const kind = token.kind;
      if (stack.length === 0 && parens === 0) {
        // Between definitions: `fragment Name on Type … {`, `query …`, or a bare `{`.
        if (kind === TokenKind.NAME && pending === null) {
          if (token.value === "fragment") {
            pending = "fragment";
            fragmentNameNext = true;
          } else {
            pending = "operation";
          }
        } else if (kind === TokenKind.NAME && fragmentNameNext) {
          fragmentNameNext = false;
          fragments += 1;
          if (fragmentIndex.has(token.value) === false) fragmentIndex.set(token.value, spreadsOf.length);
        }
      }
      switch (kind) {
        case TokenKind.BRACE_L: {
          if (parens === 0 && stack.length === 0) {
            // A definition's selection set starts.
            current = spreadsOf.length;
            spreadsOf.push([]);
            pending = null;
            fragmentNameNext = false;
          }
          stack.push(parens === 0 ? "{" : "o");
          break;
        }
        case TokenKind.PAREN_L:
          parens += 1;
          stack.push("(");
          break;
        case TokenKind.BRACKET_L:
          stack.push("[");
          break;
        case TokenKind.DOLLAR:
          // `($a: Int, $b: …)` of an operation: the only parentheses outside every selection set.
          if (stack.length === 1 && stack[0] === "(") variables += 1;
          break;
        case TokenKind.BRACE_R:
        case TokenKind.PAREN_R:
        case TokenKind.BRACKET_R: {
          const open = stack.pop();
          if (open === "(") parens -= 1;
          break;
        }
        case TokenKind.NAME: {
          if (parens !== 0 || stack[stack.length - 1] !== "{") break;
          if (previous === TokenKind.SPREAD) {
            if (token.value !== "on") {
              // `...Name`: a fragment spread.
              spreads += 1;
              spreadsOf[current]?.push(token.value);
            }
          } else if (
            previous !== TokenKind.COLON &&
            previous !== TokenKind.AT &&
            !(previous === TokenKind.NAME && previousValue === "on" && beforePrevious === TokenKind.SPREAD)
          ) {
            fields += 1; // a field (or the alias of one)
          }
          break;
        }
        default:
          break;
      }
      if (stack.length > MAX_BRACKET_NESTING) {
        return {
          error: refusal(`The document nests brackets more than ${MAX_BRACKET_NESTING} levels deep.`, "QUERY_TOO_DEEP"),
          tokens,
          fields,
        };
      }
      if (fragments > limits.maxFragments) {
        return {
          error: refusal(`The document defines more than ${limits.maxFragments} fragments.`, "TOO_MANY_FRAGMENTS"),
          tokens,
          fields,
        };
      }
      if (spreads > limits.maxFragmentSpreads) {
        return {
          error: refusal(`The document spreads fragments more than ${limits.maxFragmentSpreads} times.`, "TOO_MANY_FRAGMENT_SPREADS"),
          tokens,
          fields,
        };
      }
      if (variables > MAX_VARIABLE_DEFINITIONS) {
        return {
          error: refusal(`The document defines more than ${MAX_VARIABLE_DEFINITIONS} variables.`, "TOO_MANY_VARIABLES"),
          tokens,
          fields,
        };
      }
      if (fields > maxFields) {
        return {
          error: refusal(`The document writes more than ${maxFields} fields; ask for less, or split it.`, "QUERY_TOO_COMPLEX"),
          tokens,
          fields,
        };
      }
      beforePrevious = previous;
      previous = kind;
      previousValue = kind === TokenKind.NAME ? token.value : "";
    }
  } catch (error) {
    // A syntax error: graphql-js's parser reports it (GRAPHQL_PARSE_FAILED) with its location.
    if (error instanceof GraphQLError) return { error: null, tokens, fields };
    throw error;
  }
  const depth = longestFragmentChain(spreadsOf, fragmentIndex);
  if (depth > limits.maxFragmentDepth) {
    return {
      error: refusal(
        `Fragments spread fragments ${depth} levels deep; the limit is ${limits.maxFragmentDepth}.`,
        "FRAGMENT_NESTING_TOO_DEEP",
      ),
      tokens,
      fields,
    };
  }
  return { error: null, tokens, fields };
}

/**
 * The longest chain of spreads (an operation spreading F1 spreading F2 is 2), over every
 * definition. Iterative (a chain may be thousands long) and linear: each definition is finished
 * once. An edge back into a definition still on the path (a cycle) counts nothing here:
 * validation refuses cycles with FRAGMENT_CYCLE.
 */
function longestFragmentChain(spreadsOf: string[][], fragmentIndex: Map<string, number>): number {
  const depth = new Array<number>(spreadsOf.length).fill(-1); // -1 unvisited, -2 on the path
  let longest = 0;
  for (let root = 0; root < spreadsOf.length; root++) {
    if (depth[root] !== -1) continue;
    const path: { node: number; next: number; best: number }[] = [{ node: root, next: 0, best: 0 }];
    depth[root] = -2;
    while (path.length > 0) {
      const top = path[path.length - 1];
      const edges = spreadsOf[top.node];
      if (top.next < edges.length) {
        const target = fragmentIndex.get(edges[top.next++]);
        if (target === undefined || target >= spreadsOf.length) {
          top.best = Math.max(top.best, 1); // unknown fragment: validation reports it
        } else if (depth[target] >= 0) {
          top.best = Math.max(top.best, depth[target] + 1);
        } else if (depth[target] === -1) {
          depth[target] = -2;
          path.push({ node: target, next: 0, best: 0 });
        } else {
          top.best = Math.max(top.best, 1); // a cycle
        }
        continue;
      }
      depth[top.node] = top.best;
      path.pop();
      if (path.length > 0) {
        const parent = path[path.length - 1];
        parent.best = Math.max(parent.best, top.best + 1);
      }
      longest = Math.max(longest, top.best);
    }
  }
  return longest;
}

// ---------------------------------------------------------------------------------------------
// The document cache. grafserv keeps the last 500 parsed-and-validated documents (errors
// included) and grafast the plans of the last 500 operations, both counted in entries whatever
// their size: 500 unique 93 KB documents held ~380 MB, a dense document's tree costs ~250 bytes
// per token (one with 45,000 list items pinned 11 MB), and the plan of 160 aliased connections
// ~10 MB. Here one cache, bounded by entries
// and by an estimate of bytes, holds the parsed documents AND grafast's plans of their
// operations: when a document leaves, its plans go with it, and a document that is not kept
// (refused, invalid, or larger than the whole budget) leaves no plan behind.

/** Estimated heap per token of a kept document: its parsed tree with locations. */
export const CACHE_BYTES_PER_TOKEN = 400;
/**
 * Estimated heap per field written, for grafast's plans of the document. Measured (development
 * mode): 160 aliased connections (480 fields) planned to ~10 MB, ~22 kB a field; plain fields cost
 * far less, so this errs on the safe side.
 */
export const CACHE_BYTES_PER_FIELD = 20_000;

interface CacheEntry {
  query: string;
  document: DocumentNode;
  bytes: number;
  /** grafast's plan cache entries of this document's operations. */
  plans: Map<OperationDefinitionNode, unknown>;
}

export interface DocumentCacheStats {
  entries: number;
  bytes: number;
  /** Operations with plans held (grafast's cache, kept inside this one). */
  plannedOperations: number;
}

/** Least recently used first out; bounded by entries and estimated bytes. */
export class DocumentCache {
  private readonly entries = new Map<string, CacheEntry>();
  private readonly owners = new WeakMap<OperationDefinitionNode, CacheEntry>();
  private totalBytes = 0;
  readonly maxEntries: number;
  readonly maxBytes: number;

  constructor(maxEntries: number, maxBytes: number) {
    this.maxEntries = maxEntries;
    this.maxBytes = maxBytes;
  }

  get(query: string): DocumentNode | undefined {
    const entry = this.entries.get(query);
    if (!entry) return undefined;
    this.entries.delete(query);
    this.entries.set(query, entry);
    return entry.document;
  }

  set(query: string, document: DocumentNode, bytes: number): void {
    if (this.maxEntries < 1 || bytes > this.maxBytes || this.entries.has(query)) return;
    while (this.entries.size >= this.maxEntries || this.totalBytes + bytes > this.maxBytes) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.evict(oldest.value);
    }
    const entry: CacheEntry = { query, document, bytes, plans: new Map() };
    this.entries.set(query, entry);
    this.totalBytes += bytes;
    for (const definition of document.definitions) {
      if (definition.kind === Kind.OPERATION_DEFINITION) this.owners.set(definition, entry);
    }
  }

  private evict(query: string): void {
    const entry = this.entries.get(query);
    if (!entry) return;
    this.entries.delete(query);
    this.totalBytes -= entry.bytes;
    entry.plans.clear();
  }

  /** grafast's cache of plans by operation (its get/set), kept inside the document entries. */
  readonly plans = {
    get: (operation: OperationDefinitionNode): unknown => this.owners.get(operation)?.plans.get(operation),
    set: (operation: OperationDefinitionNode, value: unknown): void => {
      const entry = this.owners.get(operation);
      // Only for a document still kept: plans of any other document are not kept at all.
      if (entry && this.entries.get(entry.query) === entry) entry.plans.set(operation, value);
    },
  };

  stats(): DocumentCacheStats {
    let plannedOperations = 0;
    for (const entry of this.entries.values()) plannedOperations += entry.plans.size;
    return { entries: this.entries.size, bytes: this.totalBytes, plannedOperations };
  }
}

export type ParseAndValidateResult = { document: DocumentNode; errors?: undefined } | { errors: readonly GraphQLError[]; document?: undefined };

/**
 * grafserv's parseAndValidate, with the text check first and the bounded cache: the same for
 * HTTP and websockets (both ask getExecutionConfig for it).
 */
export function makeParseAndValidate(
  schema: GraphQLSchema,
  rules: readonly ValidationRule[],
  limits: DocumentTextLimits,
  cache: DocumentCache,
): (query: string) => ParseAndValidateResult {
  let lastQuery: string | undefined;
  let lastResult: ParseAndValidateResult | undefined;
  return (query) => {
    if (query === lastQuery && lastResult) return lastResult;
    const cached = cache.get(query);
    if (cached) {
      lastQuery = query;
      lastResult = { document: cached };
      return lastResult;
    }
    const checked = checkDocumentText(query, limits);
    if (checked.error) return { errors: [checked.error] };
    let document: DocumentNode;
    let errors: readonly GraphQLError[];
    try {
      document = parse(new Source(query, "GraphQL HTTP Request"));
      errors = validate(schema, document, rules);
    } catch (error) {
      if (error instanceof GraphQLError) return { errors: [error] };
      // A stack overflow in graphql-js or in the measurement: the checks above are meant to make
      // this impossible; should one slip through, it is the document's fault, not a 500.
      if (error instanceof RangeError) {
        return { errors: [refusal("The document is too deeply nested to check; simplify it.", "QUERY_TOO_COMPLEX")] };
      }
      throw error;
    }
    // Refused documents are not kept: a client sends a wrong document once, an attacker many.
    if (errors.length > 0) return { errors };
    cache.set(query, document, query.length * 2 + checked.tokens * CACHE_BYTES_PER_TOKEN + checked.fields * CACHE_BYTES_PER_FIELD);
    lastQuery = query;
    lastResult = { document };
    return lastResult;
  };
}

const cachesBySchema = new WeakMap<GraphQLSchema, DocumentCache>();

/** The document cache serving this schema (tests read its stats). */
export function documentCacheFor(schema: GraphQLSchema): DocumentCache | undefined {
  return cachesBySchema.get(schema);
}

/**
 * Puts the cache in place of grafast's plan cache for this schema. grafast keeps its plans in an
 * LRU of 500 operations under a private symbol of `schema.extensions.grafast` and only calls its
 * get and set; if a future grafast changes that, its own LRU stays, capped at the document
 * cache's entry count (operationsCacheMaxLength), and the test in
 * test/adversarial/document-cache.test.ts fails.
 */
function adoptPlanCache(schema: GraphQLSchema, cache: DocumentCache): boolean {
  const holder = schema.extensions as { grafast?: object };
  const extensions = (holder.grafast ??= Object.create(null)) as Record<string | symbol, unknown> & {
    operationsCacheMaxLength?: number;
  };
  extensions.operationsCacheMaxLength = Math.max(1, cache.maxEntries);
  const symbol = Object.getOwnPropertySymbols(extensions).find((s) => s.description === "cacheByOperation");
  if (!symbol) return false;
  if (extensions[symbol] !== cache.plans) extensions[symbol] = cache.plans;
  return true;
}

/**
 * The document limits and cache, as grafserv and grafast middleware: getExecutionConfig hands
 * out this parseAndValidate (grafserv's own cache is turned off in the preset), and the first
 * plan of a schema puts the cache in place of grafast's.
 */
export function documentLimitsPlugin(limits: DocumentTextLimits & Pick<GraphQLLimits, "documentCacheEntries" | "documentCacheBytes">): GraphileConfig.Plugin {
  const adopted = new WeakSet<GraphQLSchema>();
  return {
    name: "TenantbaseDocumentLimitsPlugin",
    version: "1.0.0",
    grafserv: {
      middleware: {
        setPreset(next, event) {
          const inner = event.getExecutionConfig;
          const rules = event.validationRules; // filled in place by every setPreset (ours too)
          let forSchema: GraphQLSchema | undefined;
          let parseAndValidate: ReturnType<typeof makeParseAndValidate> | undefined;
          const wrap = <T extends { schema: GraphQLSchema; parseAndValidate: unknown }>(config: T): T => {
            if (config.schema !== forSchema || !parseAndValidate) {
              forSchema = config.schema;
              let cache = cachesBySchema.get(config.schema);
              if (!cache) {
                cache = new DocumentCache(limits.documentCacheEntries, limits.documentCacheBytes);
                cachesBySchema.set(config.schema, cache);
              }
              parseAndValidate = makeParseAndValidate(config.schema, rules, limits, cache);
            }
            return { ...config, parseAndValidate };
          };
          event.getExecutionConfig = function (this: unknown, ctx) {
            const config = inner.call(this as any, ctx);
            return config instanceof Promise ? config.then(wrap) : wrap(config as any);
          } as typeof event.getExecutionConfig;
          return next();
        },
      },
    },
    grafast: {
      middleware: {
        establishOperationPlan(next, event) {
          const plan = next();
          if (!adopted.has(event.schema)) {
            const cache = cachesBySchema.get(event.schema);
            if (cache && adoptPlanCache(event.schema, cache)) adopted.add(event.schema);
          }
          return plan;
        },
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The response budget. Within the cost limit a response could still be huge (20 aliases × 200
// generations × 64 KB of metadata was 258 MB, built in memory before a byte was sent). Two
// checks, one code (RESPONSE_TOO_LARGE), and the data is dropped rather than sent in part:
// - while executing: the text each database query of the request returns is added up, and past
//   the budget the next query fails at once, so the server stops fetching after about one
//   query's worth past the budget instead of after all of them. This is counted where the
//   request's queries run (server/request-transaction.ts, with the budget the HTTP request's
//   context carries, responseBudget() below), not in a grafast executeStep middleware: any such
//   middleware sends every step of every request through graphile-config's middleware runner,
//   which cost 75–108 µs of server CPU per list request (bench:api, docs/benchmarks.md);
// - at the end: the response's data (grafast writes it as JSON text) is measured.

const RESPONSE_TOO_LARGE = "RESPONSE_TOO_LARGE";

function tooLarge(maxResponseBytes: number): GraphQLError {
  return new GraphQLError(
    `The response would be larger than ${maxResponseBytes} bytes; ask for fewer fields or smaller pages.`,
    { extensions: { code: RESPONSE_TOO_LARGE } },
  );
}

class ResponseTooLarge extends SafeError {
  constructor(maxResponseBytes: number) {
    super(tooLarge(maxResponseBytes).message, { code: RESPONSE_TOO_LARGE });
  }
}

/** Characters of text in a step's results (rows of strings, nested arrays), walked without recursion. */
export function textSize(value: unknown, stopAbove: number): number {
  let total = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const item = stack.pop();
    if (typeof item === "string") total += item.length;
    else if (Array.isArray(item)) {
      total += item.length; // separators
      for (let i = 0; i < item.length; i++) stack.push(item[i]);
    } else if (item !== null && typeof item === "object" && Object.getPrototypeOf(item) === Object.prototype) {
      for (const key in item) {
        total += key.length;
        stack.push((item as Record<string, unknown>)[key]);
      }
    } else if (item != null) total += 8;
    if (total > stopAbove) return total;
  }
  return total;
}

function hasCode(errors: readonly GraphQLError[] | undefined, code: string): boolean {
  return (errors ?? []).some((error) => error.extensions?.code === code || (error.originalError as { extensions?: { code?: unknown } } | undefined)?.extensions?.code === code);
}

/** Where an HTTP request's context keeps its response budget (in its pgSettings; never sent as a setting). */
export const RESPONSE_BUDGET = Symbol("tenantbase:responseBudget");

export interface ResponseBudget {
  maxResponseBytes: number;
  bytes: number;
}

/** A fresh budget for one request (server/preset.ts puts it in the request's pgSettings). */
export function responseBudget(maxResponseBytes: number): ResponseBudget {
  return { maxResponseBytes, bytes: 0 };
}

/** Before a query of the request: refused once the budget is spent. */
export function checkResponseBudget(budget: ResponseBudget): void {
  if (budget.bytes > budget.maxResponseBytes) throw new ResponseTooLarge(budget.maxResponseBytes);
}

/** After a query of the request: its rows' text counted against the budget. */
export function chargeResponseBudget(budget: ResponseBudget, rows: unknown): void {
  budget.bytes += textSize(rows, budget.maxResponseBytes * 2);
  checkResponseBudget(budget);
}

export function responseLimitPlugin(limits: Pick<GraphQLLimits, "maxResponseBytes">): GraphileConfig.Plugin {
  const { maxResponseBytes } = limits;
  return {
    name: "TenantbaseResponseLimitPlugin",
    version: "1.0.0",
    grafast: {
      middleware: {
        async execute(next) {
          const result = await next();
          if (result == null || typeof result !== "object" || Symbol.asyncIterator in result) return result;
          const { data, errors } = result as { data?: unknown; errors?: readonly GraphQLError[] };
          const size = typeof data === "string" ? data.length : 0;
          if (size > maxResponseBytes || hasCode(errors, RESPONSE_TOO_LARGE)) {
            return { errors: [tooLarge(maxResponseBytes)] } as unknown as typeof result;
          }
          return result;
        },
      },
    },
  };
}

