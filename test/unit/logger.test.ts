// core/logger.ts: log lines are written in batches, except that a line at warn or above is
// written at once together with everything before it (nothing at warn and above waits in
// memory); the allow-list logger of the request line skips redaction, the others keep it.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { allowListLogger, createLogger } from "../../core/logger.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), "logger-test-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const linesOf = (file: string) =>
  readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line));

test("info lines wait for a batch; a warn line is written at once with every line before it, in order", () => {
  const file = path.join(dir, "app.log");
  const logger = createLogger({ level: "info", file });
  logger.info({ n: 1 }, "first");
  logger.info({ n: 2 }, "second");
  expect(readFileSync(file, "utf8")).toBe("");
  logger.warn({ n: 3 }, "something is off");
  expect(linesOf(file).map((l) => [l.msg, l.level])).toEqual([
    ["first", 30],
    ["second", 30],
    ["something is off", 40],
  ]);
  logger.error({ n: 4 }, "failed");
  expect(linesOf(file).map((l) => l.msg)).toEqual(["first", "second", "something is off", "failed"]);
});

test("a batch is written once it reaches 4 KB, without waiting for a warn line", () => {
  const file = path.join(dir, "app.log");
  const logger = createLogger({ level: "info", file });
  for (let i = 0; i < 100; i++) logger.info({ i, padding: "x".repeat(40) }, "request");
  const written = linesOf(file);
  expect(written.length).toBeGreaterThan(0);
  expect(written.length).toBeLessThan(100);
  expect(written.map((l) => l.i)).toEqual(written.map((_l, i) => i));
});

test("the allow-list logger skips redaction; the process logger keeps it", () => {
  const out: string[] = [];
  const logger = createLogger({ level: "info", stream: { write: (line: string) => void out.push(line) } });
  logger.info({ password: "hunter2", nested: { token: "abc" } }, "redacted");
  allowListLogger(logger).info({ route: "/graphql", status: 200 }, "request");
  const [redacted, request] = out.map((line) => JSON.parse(line));
  expect(redacted).toMatchObject({ password: "[redacted]", nested: { token: "[redacted]" } });
  expect(request).toMatchObject({ route: "/graphql", status: 200, msg: "request", level: 30 });
});
