// docs/extending.md, applied to a copy of this checkout and run (scripts/tutorial-check.ts): the
// generator, the tutorial's edits, schema export, typecheck and the tests the page names. If the
// page and the code disagree, this fails. About 100 s here (a test run of its own inside).

import { applyPatch, parseSteps, runTutorial } from "../../scripts/tutorial-check.ts";
import { readFileSync } from "node:fs";
import path from "node:path";
import { projectRoot } from "../../core/paths.ts";

jest.setTimeout(600_000);

test("the page's steps are marked: the generator, edits of its files, a GraphQL test, the test runs", () => {
  const steps = parseSteps(readFileSync(path.join(projectRoot, "docs", "extending.md"), "utf8"));
  expect(steps[0]).toMatchObject({ action: "run", body: "npm run new:table -- documents --project" });
  expect(steps.filter((s) => s.action === "patch").length).toBeGreaterThanOrEqual(3);
  expect(steps.some((s) => s.action === "write" && s.path === "test/api/documents.test.ts")).toBe(true);
  expect(steps.at(-1)!.body).toMatch(/npm test -- .*test\/api\/documents\.test\.ts/);
});

test("a patch step replaces exactly one occurrence, or says why not", () => {
  expect(applyPatch("a\nb\nc\n", " a\n-b\n+B\n c", "x")).toBe("a\nB\nc\n");
  expect(() => applyPatch("a\nb\n", "-z\n+y", "x")).toThrow(/found 0 times/);
  expect(() => applyPatch("b\nb\n", "-b\n+y", "x")).toThrow(/found 2 times/);
});

test("docs/extending.md applied to a clean copy passes its own tests", () => {
  const lines: string[] = [];
  const { steps } = runTutorial({ log: (line) => lines.push(line) });
  expect(steps).toBeGreaterThanOrEqual(8);
  expect(lines.filter((l) => l.includes("$ npm test")).length).toBeGreaterThanOrEqual(2);
});
