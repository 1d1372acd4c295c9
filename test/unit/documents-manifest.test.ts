// `npm run documents:manifest` (scripts/documents-manifest-lib.ts): one entry per operation with
// the fragments it needs, printed and hashed as graphql-codegen's client preset does.

import { createHash } from "node:crypto";
import { buildSchema, parse } from "postgraphile/graphql";
import { buildManifest, printTrustedDocument, sha256Hex } from "../../scripts/documents-manifest-lib.ts";

test("prints as graphql-codegen does: an entry of a persisted-documents.json codegen wrote is reproduced exactly", () => {
  // Key and text from a manifest written by codegen's client preset (then hashing with sha1).
  const written = {
    "4b33c5c07f440dc7489e55619dc2211a13786e72":
      "fragment ServerCollectionPage on Query { collection(slug: $slug) { id } } query ServerCollectionPageQuery($slug: String!) { collection(slug: $slug) { breadcrumbList { itemListElement { item name position } } meta { selectedFacets { key value } } seo { description title } } ...ServerCollectionPage }",
  };
  // the same operation as a person writes it: another order, other spacing, a @client field
  const source = `
    query ServerCollectionPageQuery($slug: String!) {
      ...ServerCollectionPage
      localOnly @client
      collection(slug: $slug) {
        seo { title description }
        breadcrumbList { itemListElement { name item position } }
        meta { selectedFacets { value key } }
      }
    }
    fragment ServerCollectionPage on Query { collection(slug: $slug) { id } }`;
  const printed = printTrustedDocument(parse(source));
  const [[sha1, text]] = Object.entries(written);
  expect(printed).toBe(text);
  expect(createHash("sha1").update(printed).digest("hex")).toBe(sha1);
  // today's default: sha256 of the same text, written with its prefix
  expect(buildManifest([{ name: "a.graphql", text: source }])).toEqual({ [`sha256:${sha256Hex(text)}`]: text });
  expect(buildManifest([{ name: "a.graphql", text: source }], { prefixed: false })).toEqual({ [sha256Hex(text)]: text });
});

test("an operation gets the fragments it spreads, through other fragments and other files, and no others", () => {
  const manifest = buildManifest([
    { name: "ops.graphql", text: "query A { ...F } query B { currentUser { id } }" },
    { name: "fragments.graphql", text: "fragment F on Query { currentUser { ...G } } fragment G on User { id } fragment Unused on User { name }" },
  ]);
  const texts = Object.values(manifest).sort();
  expect(texts).toEqual(["fragment F on Query { currentUser { ...G } } fragment G on User { id } query A { ...F }", "query B { currentUser { id } }"]);
});

test("refuses what a client cannot send: unnamed or duplicate operations, unknown fragments, invalid documents", () => {
  const schema = buildSchema("type Query { a: Int }");
  expect(() => buildManifest([{ name: "x.graphql", text: "{ a }" }])).toThrow(/x\.graphql: every operation needs a name/);
  expect(() => buildManifest([{ name: "x.graphql", text: "query A { a }" }, { name: "y.graphql", text: "query A { a }" }])).toThrow(/y\.graphql: operation A is also defined in x\.graphql/);
  expect(() => buildManifest([{ name: "x.graphql", text: "query A { ...Nope }" }])).toThrow(/unknown fragment Nope/);
  expect(() => buildManifest([{ name: "x.graphql", text: "query A { b }" }], { schema })).toThrow(/x\.graphql: operation A: Cannot query field "b"/);
  expect(() => buildManifest([{ name: "x.graphql", text: "query A { a" }])).toThrow(/x\.graphql: Syntax Error/);
});
