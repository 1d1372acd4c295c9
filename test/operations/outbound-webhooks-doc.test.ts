// docs/outbound-webhooks.md quotes the operations of test/operations/outbound-webhooks/
// outbound-webhooks.graphql, which test/api/webhooks.test.ts runs over HTTP. The quote must stay
// that file, byte for byte, so the page never shows an operation the tests no longer run.

import { readFileSync } from "node:fs";
import path from "node:path";
import { projectRoot } from "../../core/paths.ts";

const page = readFileSync(path.join(projectRoot, "docs", "outbound-webhooks.md"), "utf8");
const file = readFileSync(path.join(projectRoot, "test", "operations", "outbound-webhooks", "outbound-webhooks.graphql"), "utf8");

test("docs/outbound-webhooks.md quotes outbound-webhooks.graphql exactly, in its one ```graphql block", () => {
  const start = page.indexOf("\n### The operations\n");
  expect(start).toBeGreaterThan(-1);
  const section = page.slice(start, start + 1 + page.slice(start + 1).search(/\n#{2,3} /));
  expect(section).toContain("test/operations/outbound-webhooks/outbound-webhooks.graphql");
  const blocks = [...page.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]);
  expect(blocks).toEqual([file]);
});
