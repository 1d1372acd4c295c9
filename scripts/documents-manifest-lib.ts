// The manifest of a client's trusted documents (issue 24): for each named operation in the
// client's .graphql files, the operation with every fragment it spreads (directly or through
// other fragments, from any of the files), printed as graphql-codegen's client preset prints it
// (sorted, whitespace collapsed, @client fields and @connection directives removed), keyed by
// the sha256 of that text. The same printer (@graphql-tools/documents) and hash as codegen, so a
// codegen client's ids are found in a manifest built here and the other way round.

import { createHash } from "node:crypto";
import { printExecutableGraphQLDocument } from "@graphql-tools/documents";
import { Kind, parse, validate, visit, type DefinitionNode, type DocumentNode, type FragmentDefinitionNode, type GraphQLSchema, type OperationDefinitionNode } from "postgraphile/graphql";

export interface SourceFile {
  name: string;
  text: string;
}

export interface ManifestOptions {
  /** "sha256:<hex>" keys, as codegen's client preset writes them (default); false: bare hex. */
  prefixed?: boolean;
  /** Validate each document against this schema first (an invalid one is an error, not an entry). */
  schema?: GraphQLSchema;
}

/** What codegen removes before hashing: fields and spreads marked @client, @connection directives. */
function withoutClientParts(document: DocumentNode): DocumentNode {
  const isClient = (node: { directives?: readonly { name: { value: string } }[] }) => node.directives?.some((d) => d.name.value === "client") ?? false;
  return visit(document, {
    Field: (node) => (isClient(node) ? null : undefined),
    FragmentSpread: (node) => (isClient(node) ? null : undefined),
    InlineFragment: (node) => (isClient(node) ? null : undefined),
    Directive: (node) => (node.name.value === "connection" ? null : undefined),
  });
}

/** The text codegen would persist for this executable document. */
export function printTrustedDocument(document: DocumentNode): string {
  return printExecutableGraphQLDocument(withoutClientParts(document));
}

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

function spreadsOf(definition: DefinitionNode): string[] {
  const names: string[] = [];
  visit(definition, { FragmentSpread: (node) => void names.push(node.name.value) });
  return names;
}

/** { id: text } for every operation of the files; throws naming the file on any problem. */
export function buildManifest(files: SourceFile[], options: ManifestOptions = {}): Record<string, string> {
  const fragments = new Map<string, { node: FragmentDefinitionNode; file: string }>();
  const operations: { node: OperationDefinitionNode; file: string }[] = [];
  const operationNames = new Map<string, string>();
  for (const file of files) {
    let document: DocumentNode;
    try {
      document = parse(file.text, { noLocation: true });
    } catch (error) {
      throw new Error(`${file.name}: ${(error as Error).message}`);
    }
    for (const definition of document.definitions) {
      if (definition.kind === Kind.FRAGMENT_DEFINITION) {
        const name = definition.name.value;
        const seen = fragments.get(name);
        if (seen) throw new Error(`${file.name}: fragment ${name} is also defined in ${seen.file}`);
        fragments.set(name, { node: definition, file: file.name });
      } else if (definition.kind === Kind.OPERATION_DEFINITION) {
        const name = definition.name?.value;
        if (!name) throw new Error(`${file.name}: every operation needs a name (clients send it as operationName)`);
        const seen = operationNames.get(name);
        if (seen) throw new Error(`${file.name}: operation ${name} is also defined in ${seen}`);
        operationNames.set(name, file.name);
        operations.push({ node: definition, file: file.name });
      } else {
        throw new Error(`${file.name}: only operations and fragments belong in a client's documents`);
      }
    }
  }
  const manifest: Record<string, string> = {};
  for (const { node, file } of operations) {
    const needed = new Map<string, FragmentDefinitionNode>();
    const pending = spreadsOf(node);
    while (pending.length > 0) {
      const name = pending.pop()!;
      if (needed.has(name)) continue;
      const fragment = fragments.get(name);
      if (!fragment) throw new Error(`${file}: operation ${node.name!.value} spreads the unknown fragment ${name}`);
      needed.set(name, fragment.node);
      pending.push(...spreadsOf(fragment.node));
    }
    const document: DocumentNode = { kind: Kind.DOCUMENT, definitions: [node, ...needed.values()] };
    if (options.schema) {
      const errors = validate(options.schema, document);
      if (errors.length > 0) throw new Error(`${file}: operation ${node.name!.value}: ${errors.map((e) => e.message).join("; ")}`);
    }
    const text = printTrustedDocument(document);
    manifest[`${options.prefixed === false ? "" : "sha256:"}${sha256Hex(text)}`] = text;
  }
  return manifest;
}
