// docs/credits.md quotes the credit-control operations (section "Spend caps", "The operations")
// as the text of test/operations/credit-controls/credit-controls.graphql, which
// test/api/credit-controls.test.ts runs over HTTP. The quote must stay that file, byte for byte,
// so the page never shows an operation the tests no longer run.

import { readFileSync } from "node:fs";
import path from "node:path";
import { projectRoot } from "../../core/paths.ts";

const page = readFileSync(path.join(projectRoot, "docs", "credits.md"), "utf8");
const file = readFileSync(path.join(projectRoot, "test", "operations", "credit-controls", "credit-controls.graphql"), "utf8");

/** The text from a `### title` heading to the next heading of level 2 or 3. */
function subsection(title: string): string {
  const start = page.indexOf(`\n### ${title}\n`);
  expect(start).toBeGreaterThan(-1);
  const next = page.slice(start + 1).search(/\n#{2,3} /);
  return next === -1 ? page.slice(start) : page.slice(start, start + 1 + next);
}

const graphqlBlocks = (text: string) => [...text.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]);

test("docs/credits.md quotes credit-controls.graphql exactly, in one ```graphql block", () => {
  const section = subsection("The operations");
  expect(section).toContain("test/operations/credit-controls/credit-controls.graphql");
  expect(graphqlBlocks(section)).toEqual([file]);
});

test("the file's operations appear nowhere else on the page in a different form", () => {
  // Every operation name the file defines is quoted once on the page: in that block.
  const names = [...file.matchAll(/^(?:query|mutation|subscription|fragment) (\w+)/gm)].map((m) => m[1]);
  expect(names.length).toBeGreaterThan(0);
  const blocks = graphqlBlocks(page);
  for (const name of names) {
    const defining = blocks.filter((block) => new RegExp(`^(?:query|mutation|subscription|fragment) ${name}\\b`, "m").test(block));
    expect({ name, blocks: defining.length }).toEqual({ name, blocks: 1 });
  }
});
