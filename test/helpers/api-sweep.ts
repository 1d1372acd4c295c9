// Shared by the tests that walk the whole generated API (test/api/cross-tenant.test.ts,
// test/api/api-keys.test.ts): inputs derived from the schema, and how an error answer is judged.
// A new table needs no edit here: every input is built from introspection, and errors are judged
// by their extensions.code, not by words in their message.

export interface TypeRef {
  kind: string;
  name: string | null;
  ofType: TypeRef | null;
}
export interface Field {
  name: string;
  args: { name: string; type: TypeRef }[];
  type: TypeRef;
}
export interface FullType {
  name: string;
  kind: string;
  fields: Field[] | null;
  inputFields: { name: string; type: TypeRef }[] | null;
  enumValues: { name: string }[] | null;
}

export const INTROSPECT = `{
  __schema {
    types {
      name kind
      fields { name args { name type { ...T } } type { ...T } }
      inputFields { name type { ...T } }
      enumValues { name }
    }
  }
}
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }`;

export function named(type: TypeRef): TypeRef {
  return type.ofType ? named(type.ofType) : type;
}
export function required(type: TypeRef): boolean {
  return type.kind === "NON_NULL";
}

export interface SampleOptions {
  /** Also filled when optional (besides required fields and every field holding a UUID). */
  alsoFill?: string[];
  /** The value of a Datetime. */
  datetime?: string;
  /** The value of a String. */
  text?: string;
}

function mentionsUuid(types: Map<string, FullType>, type: TypeRef, seen = new Set<string>()): boolean {
  const base = named(type);
  if (base.name === "UUID") return true;
  if (base.kind !== "INPUT_OBJECT" || seen.has(base.name!)) return false;
  seen.add(base.name!);
  return (types.get(base.name!)!.inputFields ?? []).some((f) => mentionsUuid(types, f.type, seen));
}

/**
 * A value of an input type, every id in it being `uuid`: required fields, every field holding a
 * UUID (an optional projectId is as much a way in as a required one), the fields named in
 * alsoFill; and an input object that would be empty (a patch of a table's own columns: a `title`,
 * a `body`) gets its first field, so that the mutation reaches the database instead of stopping
 * at EMPTY_PATCH.
 */
export function sampleInput(types: Map<string, FullType>, type: TypeRef, uuid: string, options: SampleOptions = {}): unknown {
  const base = named(type);
  switch (base.kind) {
    case "ENUM":
      return types.get(base.name!)!.enumValues![0].name;
    case "INPUT_OBJECT": {
      const fields = types.get(base.name!)!.inputFields ?? [];
      const value: Record<string, unknown> = {};
      for (const field of fields) {
        if (required(field.type) || mentionsUuid(types, field.type) || options.alsoFill?.includes(field.name)) {
          value[field.name] = sampleInput(types, field.type, uuid, options);
        }
      }
      const first = fields.find((f) => f.name !== "clientMutationId");
      if (Object.keys(value).length === 0 && first) value[first.name] = sampleInput(types, first.type, uuid, options);
      return value;
    }
    default:
      switch (base.name) {
        case "UUID":
          return uuid;
        case "Int":
        case "BigInt":
        case "BigFloat":
        case "Float":
          return 1;
        case "Boolean":
          return true;
        case "Datetime":
          return options.datetime ?? new Date().toISOString();
        case "JSON":
          return {};
        default:
          return options.text ?? "cross-tenant";
      }
  }
}

/** Does the input type hold a UUID anywhere (then it can name another tenant's row)? */
export function inputMentionsUuid(types: Map<string, FullType>, type: TypeRef): boolean {
  return mentionsUuid(types, type);
}

/** SQL, a stack trace or a schema name in a message: what must never reach a client. */
const LEAK = /\bselect\b[^.]*\bfrom\b|\binsert into\b|\bupdate \S+ set\b|\bdelete from\b|syntax error at|\bapp_(?:public|hidden|private)\.|\n\s+at |\bstack\b/i;

export interface GraphQLErrorLike {
  message: string;
  extensions?: Record<string, unknown>;
}

/**
 * What is wrong with the errors of an answer: a refusal (any stable code: NOT_FOUND, FORBIDDEN,
 * EMPTY_PATCH, INVALID_INPUT, …) is fine; an error without a code, a masked one (INTERNAL: a
 * bug, not a refusal) and a message that shows SQL or a stack are problems.
 */
export function errorProblems(errors: GraphQLErrorLike[] | undefined): string[] {
  const problems: string[] = [];
  for (const error of errors ?? []) {
    const code = error.extensions?.code;
    if (typeof code !== "string") problems.push(`no extensions.code: ${error.message}`);
    else if (code === "INTERNAL") problems.push(`masked internal error instead of a clear one: ${error.message}`);
    if (LEAK.test(error.message)) problems.push(`leaked SQL or a stack (${String(code)}): ${error.message}`);
  }
  return problems;
}
