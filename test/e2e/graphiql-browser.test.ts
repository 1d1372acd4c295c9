// GraphiQL (Ruru) in a real browser: Debian's Chromium, headless, driven by playwright-core,
// against a real server with the production security headers. Registers through a mutation
// typed into the editor, puts the token into the headers pane, runs docs/graphql-guide.md's query and
// sees the answer; no CSP violation may be reported. Screenshot: test-output/graphiql.png.
// Chromium missing is a failure with a clear message, never a silent skip (CI installs it).

import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { chromium, type Browser, type Page } from "playwright-core";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { postGraphQL, startServer, type OpsServer } from "../helpers/operations.ts";
import { projectRoot } from "../../core/paths.ts";

jest.setTimeout(120_000);

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const OUTPUT = path.join(projectRoot, "test-output");

let db: TestDatabase;
let server: OpsServer;
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install it (apt-get install chromium) or set CHROMIUM_PATH. .ci/run installs it.`);
  }
  db = await createTestDatabase();
  server = await startServer(db);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await db?.drop();
});

/** Replaces the content of the Monaco editor `selector` with `text`, as typed input. */
async function typeInto(page: Page, selector: string, text: string) {
  const editor = page.locator(selector).first();
  await editor.waitFor({ state: "visible" });
  await editor.click();
  await page.keyboard.press("ControlOrMeta+A");
  await page.keyboard.press("Delete");
  // insertText types the characters without Monaco's auto-closing of brackets and quotes.
  await page.keyboard.insertText(text);
  // GraphiQL re-parses the document (and picks the operation name) a moment after typing.
  await page.waitForTimeout(1000);
}

async function run(page: Page) {
  await page.locator("button.graphiql-execute-button").click();
}

async function response(page: Page, contains: RegExp): Promise<string> {
  const pane = page.locator(".graphiql-response");
  await page.waitForFunction(
    (source) => new RegExp(source).test(document.querySelector(".graphiql-response")?.textContent ?? ""),
    contains.source,
    { timeout: 30_000 },
  );
  return (await pane.textContent()) ?? "";
}

test("Ruru loads under the CSP, registers through the editor, and runs an authenticated query", async () => {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const problems: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error" && /Content Security Policy|Refused to/i.test(message.text())) problems.push(message.text());
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));

  const loaded = await page.goto(`${server.url}/graphiql`);
  expect(loaded?.status()).toBe(200);
  expect(loaded?.headers()["content-security-policy"]).toMatch(/script-src 'self' 'nonce-/);
  await page.locator(".graphiql-query-editor .monaco-editor").first().waitFor({ state: "visible", timeout: 30_000 });

  const email = `browser-${randomBytes(4).toString("hex")}@example.com`;
  await typeInto(
    page,
    ".graphiql-query-editor .monaco-editor",
    `mutation Register { register(input: { email: "${email}", password: "correct horse battery staple", name: "Browser User" }) { jwtToken } }`,
  );
  // The token is read from the response the browser received (the pane wraps long lines).
  const [graphqlResponse] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/graphql") && r.request().method() === "POST" && (r.request().postData() ?? "").includes("Register")),
    run(page),
  ]);
  expect(graphqlResponse.status()).toBe(200);
  const token = ((await graphqlResponse.json()) as any).data.register.jwtToken as string;
  expect(token).toMatch(/^eyJ[\w-]+\.[\w-]+\.[\w-]+$/);
  await response(page, /"jwtToken":\s*"eyJ/); // and the editor shows it

  // an organization for the answer to show (made over plain HTTP with the same token)
  const org = await postGraphQL(
    server.url,
    { query: 'mutation { createOrganization(input: { name: "Browser Org" }) { organization { slug } } }' },
    { authorization: `Bearer ${token}` },
  );
  const slug = org.body.data.createOrganization.organization.slug as string;

  // the headers pane
  await page.getByRole("button", { name: /^headers$/i }).click();
  await typeInto(page, '.monaco-editor[data-uri$="headers.json"]', `{"Authorization": "Bearer ${token}"}`);

  await typeInto(page, ".graphiql-query-editor .monaco-editor", "{ currentUser { email } organizations { nodes { slug } } }");
  await run(page);
  let answer: string;
  try {
    answer = await response(page, new RegExp(slug));
  } catch (error) {
    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: path.join(OUTPUT, "graphiql-failure.png"), fullPage: true });
    throw error;
  }
  expect(answer).toContain(email);
  expect(answer).toContain(slug);

  mkdirSync(OUTPUT, { recursive: true });
  await page.screenshot({ path: path.join(OUTPUT, "graphiql.png"), fullPage: true });
  expect(problems).toEqual([]);
  await page.close();
});

test("Ruru runs a subscription over the websocket with the headers pane as connection_init", async () => {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const problems: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error" && /Content Security Policy|Refused to/i.test(message.text())) problems.push(message.text());
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  const email = `browser-ws-${randomBytes(4).toString("hex")}@example.com`;
  const registered = await postGraphQL(server.url, {
    query: `mutation { register(input: { email: "${email}", password: "correct horse battery staple", name: "Ws User" }) { jwtToken } }`,
  });
  const token = registered.body.data.register.jwtToken as string;
  const auth = { authorization: `Bearer ${token}` };
  const org = await postGraphQL(server.url, { query: 'mutation { createOrganization(input: { name: "Ws Org" }) { organization { id } } }' }, auth);
  const organizationId = org.body.data.createOrganization.organization.id as string;

  await page.goto(`${server.url}/graphiql`);
  await page.locator(".graphiql-query-editor .monaco-editor").first().waitFor({ state: "visible", timeout: 30_000 });
  await page.getByRole("button", { name: /^headers$/i }).click();
  await typeInto(page, '.monaco-editor[data-uri$="headers.json"]', `{"Authorization": "Bearer ${token}"}`);
  await typeInto(
    page,
    ".graphiql-query-editor .monaco-editor",
    `subscription Credits { creditAccountUpdated(organizationId: "${organizationId}") { initial creditAccount { available reserved } } }`,
  );
  await run(page);
  await response(page, /"initial":\s*true/);
  const reserve = await postGraphQL(
    server.url,
    { query: `mutation { reserveCredits(input: { organizationId: "${organizationId}", amount: "5", idempotencyKey: "ruru-ws" }) { creditReservation { id } } }` },
    auth,
  );
  expect(reserve.body.errors).toBeUndefined();
  let answer: string;
  try {
    answer = await response(page, /"reserved":\s*"5"/);
  } catch (error) {
    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: path.join(OUTPUT, "graphiql-subscription-failure.png"), fullPage: true });
    throw error;
  }
  expect(answer).toMatch(/"initial":\s*false/);
  mkdirSync(OUTPUT, { recursive: true });
  await page.screenshot({ path: path.join(OUTPUT, "graphiql-subscription.png"), fullPage: true });
  expect(problems).toEqual([]);
  await page.close();
});
