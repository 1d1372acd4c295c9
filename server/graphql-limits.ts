// Limits on what one GraphQL request may ask for, checked during validation (before anything
// touches the database). Depth and node count are measured with fragments expanded; the
// introspection meta-fields (__schema, __type, __typename) are not counted: they are governed
// by the introspection switch instead. Each rejection is a GraphQL error with a stable
// extensions.code, answered with HTTP 400.

import {
  GraphQLError,
  Kind,
  NoSchemaIntrospectionCustomRule,
  type ASTVisitor,
  type FragmentDefinitionNode,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
} from "postgraphile/graphql";

export interface GraphQLLimits {
  /** Deepest field nesting, e.g. `{ a { b { c } } }` is 3. */
  maxDepth: number;
  /** Fields in the operation after expanding fragments (aliases count: each is work). */
  maxNodes: number;
  /** Largest request body in bytes (HTTP 413 above it). */
  maxBodyBytes: number;
  /** false: the introspection meta-fields __schema and __type are refused (production). */
  introspection: boolean;
}

export const DEFAULT_LIMITS: GraphQLLimits = { maxDepth: 12, maxNodes: 500, maxBodyBytes: 100_000, introspection: true };

interface Measure {
  depth: number;
  nodes: number;
}

function measure(
  selectionSet: SelectionSetNode,
  fragments: Map<string, FragmentDefinitionNode>,
  visiting: Set<string>,
  budget: number,
): Measure {
  let depth = 0;
  let nodes = 0;
  for (const selection of selectionSet.selections) {
    if (nodes > budget) break; // enough to reject; stop walking pathological documents
    if (selection.kind === Kind.FIELD) {
      if (selection.name.value.startsWith("__")) continue;
      nodes += 1;
      if (selection.selectionSet) {
        const inner = measure(selection.selectionSet, fragments, visiting, budget - nodes);
        depth = Math.max(depth, inner.depth + 1);
        nodes += inner.nodes;
      } else {
        depth = Math.max(depth, 1);
      }
    } else {
      let inner: Measure = { depth: 0, nodes: 0 };
      if (selection.kind === Kind.INLINE_FRAGMENT) {
        inner = measure(selection.selectionSet, fragments, visiting, budget - nodes);
      } else {
        const name = selection.name.value;
        const fragment = fragments.get(name);
        // Unknown or cyclic fragments are reported by graphql-js's own rules.
        if (!fragment || visiting.has(name)) continue;
        visiting.add(name);
        inner = measure(fragment.selectionSet, fragments, visiting, budget - nodes);
        visiting.delete(name);
      }
      depth = Math.max(depth, inner.depth);
      nodes += inner.nodes;
    }
  }
  return { depth, nodes };
}

export function limitsRule(limits: Pick<GraphQLLimits, "maxDepth" | "maxNodes">): ValidationRule {
  return (context: ValidationContext): ASTVisitor => ({
    Document(document) {
      const fragments = new Map<string, FragmentDefinitionNode>();
      const operations: OperationDefinitionNode[] = [];
      for (const definition of document.definitions) {
        if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
        else if (definition.kind === Kind.OPERATION_DEFINITION) operations.push(definition);
      }
      for (const operation of operations) {
        const { depth, nodes } = measure(operation.selectionSet, fragments, new Set(), limits.maxNodes);
        const name = operation.name ? `Operation ${operation.name.value}` : "The operation";
        if (depth > limits.maxDepth) {
          context.reportError(
            new GraphQLError(`${name} is nested ${depth} levels deep; the limit is ${limits.maxDepth}.`, {
              nodes: [operation],
              extensions: { code: "QUERY_TOO_DEEP" },
            }),
          );
        }
        if (nodes > limits.maxNodes) {
          context.reportError(
            new GraphQLError(`${name} selects more than ${limits.maxNodes} fields; ask for less, or split it.`, {
              nodes: [operation],
              extensions: { code: "QUERY_TOO_COMPLEX" },
            }),
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
