// docs/credits.md quotes the usage-alert operations (section "Usage alerts", "The alert
// operations") as the text of test/operations/credit-alerts/credit-alerts.graphql, which
// test/api/credit-alerts.test.ts runs. The quote must stay that file, byte for byte.

import { readFileSync } from "node:fs";
import path from "node:path";
import { projectRoot } from "../../core/paths.ts";

const page = readFileSync(path.join(projectRoot, "docs", "credits.md"), "utf8");
const file = readFileSync(path.join(projectRoot, "test", "operations", "credit-alerts", "credit-alerts.graphql"), "utf8");

/** The text from a `### title` heading to the next heading of level 2 or 3. */
function subsection(title: string): string {
  const start = page.indexOf(`\n### ${title}\n`);
  expect(start).toBeGreaterThan(-1);
  const next = page.slice(start + 1).search(/\n#{2,3} /);
  return next === -1 ? page.slice(start) : page.slice(start, start + 1 + next);
}

const graphqlBlocks = (text: string) => [...text.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]);

test("docs/credits.md quotes credit-alerts.graphql exactly, in one ```graphql block", () => {
  const section = subsection("The alert operations");
  expect(section).toContain("test/operations/credit-alerts/credit-alerts.graphql");
  expect(graphqlBlocks(section)).toEqual([file]);
});

test("each operation of the file is defined once on the page", () => {
  const names = [...file.matchAll(/^(?:query|mutation|subscription|fragment) (\w+)/gm)].map((m) => m[1]);
  expect(names.length).toBe(6);
  for (const name of names) {
    const defining = graphqlBlocks(page).filter((block) => new RegExp(`^(?:query|mutation|subscription|fragment) ${name}\\b`, "m").test(block));
    expect({ name, blocks: defining.length }).toEqual({ name, blocks: 1 });
  }
});
