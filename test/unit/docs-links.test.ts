// Every relative link in README.md and docs/*.md leads somewhere: the file (or folder) exists,
// and an anchor (`page.md#a-heading`, `#a-heading`) names a heading of that page, slugged the way
// GitHub does it (lowercase; punctuation removed; each space a hyphen; a repeated heading gets
// -1, -2, …). Links inside code blocks and code spans are not links and are skipped; links with a
// scheme (https:, mailto:) are not checked.

import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { projectRoot } from "../../core/paths.ts";

/**
 * Pages another branch adds: while such a page is missing, links to it are not reported (their
 * anchors cannot be checked yet). Once the page exists it is checked like any other; the entry can
 * then go.
 */
const PENDING_PAGES = new Set<string>([]);

const pages = [
  "README.md",
  ...readdirSync(path.join(projectRoot, "docs"))
    .filter((name) => name.endsWith(".md"))
    .sort()
    .map((name) => `docs/${name}`),
];

/** The text with fenced code blocks blanked out (lines kept, so line numbers stay right). */
function withoutCodeBlocks(text: string): string {
  let fence: string | null = null;
  return text
    .split("\n")
    .map((line) => {
      const marker = /^\s{0,3}(`{3,}|~{3,})/.exec(line)?.[1];
      if (fence === null && marker) {
        fence = marker[0].repeat(marker.length);
        return "";
      }
      if (fence !== null) {
        if (marker && marker[0] === fence[0] && marker.length >= fence.length && line.trim() === marker) fence = null;
        return "";
      }
      return line;
    })
    .join("\n");
}

/** A heading's text as GitHub renders it (code spans keep their text, links their label). */
function headingText(raw: string): string {
  return raw
    .replace(/`([^`]*)`/g, "$1")
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/<[^>]+>/g, "")
    .replace(/\*\*|__/g, "")
    .trim();
}

/** GitHub's slug of a heading (github-slugger): lowercase, punctuation out, spaces to hyphens. */
function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
    .replace(/ /g, "-");
}

/** Every anchor a page offers: its headings' slugs (with -1, -2 for repeats) and HTML ids. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  const text = withoutCodeBlocks(markdown);
  for (const line of text.split("\n")) {
    const heading = /^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/.exec(line);
    if (heading) {
      const base = slug(headingText(heading[1]));
      const count = seen.get(base) ?? 0;
      seen.set(base, count + 1);
      anchors.add(count === 0 ? base : `${base}-${count}`);
    }
    for (const match of line.matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) anchors.add(match[1]);
  }
  return anchors;
}

interface Link {
  line: number;
  target: string;
}

/** Inline links and images, reference definitions and HTML hrefs, outside code. */
function linksOf(markdown: string): Link[] {
  const links: Link[] = [];
  withoutCodeBlocks(markdown)
    .split("\n")
    .forEach((raw, index) => {
      const line = raw.replace(/(`+)(?:(?!\1)[\s\S])*?\1/g, "");
      for (const match of line.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) links.push({ line: index + 1, target: match[1] });
      const definition = /^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$/.exec(line);
      if (definition) links.push({ line: index + 1, target: definition[1] });
      for (const match of line.matchAll(/href="([^"]+)"/g)) links.push({ line: index + 1, target: match[1] });
    });
  return links;
}

function problemsOf(page: string): string[] {
  const text = readFileSync(path.join(projectRoot, page), "utf8");
  const problems: string[] = [];
  for (const { line, target } of linksOf(text)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith("//")) continue;
    const hash = target.indexOf("#");
    const filePart = decodeURIComponent(hash === -1 ? target : target.slice(0, hash));
    const anchor = hash === -1 ? null : decodeURIComponent(target.slice(hash + 1));
    const resolved = filePart === "" ? path.join(projectRoot, page) : path.resolve(path.dirname(path.join(projectRoot, page)), filePart);
    const relative = path.relative(projectRoot, resolved).split(path.sep).join("/");
    const where = `${page}:${line}: (${target})`;
    if (relative.startsWith("..")) {
      problems.push(`${where} points outside the repository`);
      continue;
    }
    if (!existsSync(resolved)) {
      if (PENDING_PAGES.has(relative)) continue;
      problems.push(`${where}: ${relative} does not exist`);
      continue;
    }
    if (anchor === null || !relative.endsWith(".md") || statSync(resolved).isDirectory()) continue;
    const anchors = anchorsOf(readFileSync(resolved, "utf8"));
    if (!anchors.has(anchor)) {
      const near = [...anchors].filter((a) => a.includes(anchor.split("-")[0])).slice(0, 5);
      problems.push(`${where}: ${relative} has no heading with the anchor #${anchor}${near.length ? ` (similar: ${near.map((a) => `#${a}`).join(", ")})` : ""}`);
    }
  }
  return problems;
}

test("the slug rules are GitHub's", () => {
  expect(slug(headingText("Accounts: verification, passwords, email, sessions, deletion, attempt limits"))).toBe(
    "accounts-verification-passwords-email-sessions-deletion-attempt-limits",
  );
  expect(slug(headingText("Scale-out: many servers and workers, one database"))).toBe("scale-out-many-servers-and-workers-one-database");
  expect(slug(headingText("Environment variables (operations)"))).toBe("environment-variables-operations");
  expect(slug(headingText("`WORKER_CONCURRENCY` and `node:cluster`"))).toBe("worker_concurrency-and-nodecluster");
  expect(slug(headingText("Benchmark: API key against JWT"))).toBe("benchmark-api-key-against-jwt");
  expect([...anchorsOf("# A\n## Error codes\n```\n## Error codes\n```\n### Error codes\n## Error codes\n")]).toEqual([
    "a",
    "error-codes",
    "error-codes-1",
    "error-codes-2",
  ]);
  expect(linksOf("see [a](docs/a.md#b) and `[c](d.md)`\n```\n[e](f.md)\n```\n[g]: docs/g.md\n").map((l) => l.target)).toEqual([
    "docs/a.md#b",
    "docs/g.md",
  ]);
});

test("README links to every page in docs/", () => {
  const readme = readFileSync(path.join(projectRoot, "README.md"), "utf8");
  const linked = new Set(linksOf(readme).map((l) => l.target.split("#")[0]));
  const unlinked = pages.filter((page) => page !== "README.md" && !linked.has(page));
  expect(unlinked).toEqual([]);
});

test.each(pages)("every relative link and anchor in %s resolves", (page) => {
  expect(problemsOf(page)).toEqual([]);
});
