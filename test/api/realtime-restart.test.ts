// A server restart: the server closes its websockets with 1001 on shutdown; a graphql-ws
// client with retries reconnects to the restarted server on the same port and resubscribes,
// and the events committed after its new first message reach it.

import type { AddressInfo } from "node:net";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants } from "../helpers/fixtures.ts";
import { TEST_JWT } from "../helpers/server.ts";
import { createApp, type App } from "../../server/app.ts";
import { connect, subscribe } from "../helpers/realtime.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

async function serve(port: number): Promise<App> {
  const app = await createApp({ ownerUrl: db.ownerUrl, authUrl: db.authUrl, listenUrl: db.directOwnerUrl, jwt: TEST_JWT });
  await new Promise<void>((resolve) => app.httpServer.listen(port, "127.0.0.1", resolve));
  return app;
}

test("clients reconnect and resubscribe after a restart", async () => {
  const { a } = await twoTenants(db);
  let app = await serve(0);
  const { port } = app.httpServer.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  const c = connect(url, a.member, { retryAttempts: 20, retryWait: () => new Promise((r) => setTimeout(r, 200)), shouldRetry: () => true });
  const sub = subscribe(c, `subscription ($o: UUID!) { creditAccountUpdated(organizationId: $o) { initial creditAccount { reserved } } }`, { o: a.org.id });
  try {
    await sub.waitForCount(1);
    await app.close();
    expect(c.closes[0]).toEqual({ code: 1001, reason: "Server is shutting down; reconnect." });
    app = await serve(port);
    // the resubscription's first message: live again
    await sub.waitForCount(2);
    expect(sub.messages[1].data.creditAccountUpdated.initial).toBe(true);
    await db.queryAs(a.member, "select app_public.reserve_credits($1, 7, 'after-restart', 600)", [a.org.id]);
    await sub.waitFor((m) => m.data?.creditAccountUpdated?.creditAccount?.reserved === "7");
    expect(sub.error).toBeUndefined();
  } finally {
    await c.dispose();
    await app.close();
  }
});
