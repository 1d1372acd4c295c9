// docs/billing.md quotes the auto top-up operations (section "Auto top-up", "The operations") as
// the text of test/operations/auto-top-up/auto-top-up.graphql, which test/api/auto-top-up.test.ts
// runs over HTTP. The quote must stay that file, byte for byte.

import { readFileSync } from "node:fs";
import path from "node:path";
import { projectRoot } from "../../core/paths.ts";

const page = readFileSync(path.join(projectRoot, "docs", "billing.md"), "utf8");
const file = readFileSync(path.join(projectRoot, "test", "operations", "auto-top-up", "auto-top-up.graphql"), "utf8");

test("docs/billing.md quotes auto-top-up.graphql exactly, in one ```graphql block", () => {
  const start = page.indexOf("\n## Auto top-up\n");
  expect(start).toBeGreaterThan(-1);
  const next = page.slice(start + 1).search(/\n## /);
  const section = page.slice(start, start + 1 + next);
  expect(section).toContain("test/operations/auto-top-up/auto-top-up.graphql");
  const blocks = [...section.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]);
  expect(blocks).toEqual([file]);
});
