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
  NoSchemaIntrospectionCustomRule,
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
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
} from "postgraphile/graphql";

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
};

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
        let cost = 1;
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
