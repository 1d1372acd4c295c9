// The Realtime examples (docs/realtime.md) run as written: every ```graphql block of the page,
// in order, subscriptions over a real websocket and mutations over HTTP, with the
// placeholders filled from earlier answers, as a reader in GraphiQL would.

import { readFileSync } from "node:fs";
import path from "node:path";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createOrganization, createUser } from "../helpers/fixtures.ts";
import { startTestServer, tokenFor, type TestServer } from "../helpers/server.ts";
import { connect, subscribe, type Subscription } from "../helpers/realtime.ts";
import { projectRoot } from "../../core/paths.ts";

let db: TestDatabase;
let server: TestServer;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

function realtimeBlocks(): string[] {
  const page = readFileSync(path.join(projectRoot, "docs", "realtime.md"), "utf8");
  return [...page.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]);
}

test("every Realtime example runs without errors, in order", async () => {
  const blocks = realtimeBlocks();
  expect(blocks.length).toBeGreaterThanOrEqual(6);
  const user = await createUser(db, "Reader");
  const org = await createOrganization(db, user, "Readme Org");
  const token = tokenFor(user);
  const values: Record<string, string> = { "<organization id>": org.id };
  const ws = connect(server.url, token);
  const subscriptions: Subscription[] = [];
  try {
    for (const block of blocks) {
      let query = block;
      for (const [placeholder, value] of Object.entries(values)) query = query.replaceAll(placeholder, value);
      expect(query).not.toMatch(/<[a-z ]+ id>/);
      if (/^\s*subscription\b/.test(query)) {
        const sub = subscribe(ws, query);
        await sub.waitForCount(1);
        expect({ query, message: sub.messages[0].errors }).toEqual({ query, message: undefined });
        subscriptions.push(sub);
        continue;
      }
      const response = await server.graphql(query, {}, token);
      expect({ query, errors: response.errors }).toEqual({ query, errors: undefined });
      const data = response.data;
      if (data.createProject) values["<project id>"] = data.createProject.project.id;
      if (data.startGeneration) values["<generation id>"] = data.startGeneration.generation.id;
    }
    // the first subscription saw the generation start and finish
    await subscriptions[0].waitFor((m) => m.data?.generationUpdated?.generation?.status === "succeeded");
    expect(subscriptions[0].messages.some((m) => m.data?.generationUpdated?.generation?.status === "running")).toBe(true);
  } finally {
    await ws.dispose();
  }
});
