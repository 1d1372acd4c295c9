// The receiver docs/outbound-webhooks.md shows ("Receiving and verifying"), run as it is printed
// in its own Node process: it accepts a delivery signed by tenantbase's signer (204) and refuses
// a tampered body, a wrong secret and a stale timestamp (400).

import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { projectRoot } from "../../core/paths.ts";
import { freePort } from "../../db/ports.ts";
import { messageBody } from "../../workers/webhooks/deliver.ts";
import { signedHeaders } from "../../workers/webhooks/signing.ts";

const page = readFileSync(path.join(projectRoot, "docs", "outbound-webhooks.md"), "utf8");
const code = /```js\n([\s\S]*?)```/.exec(page.slice(page.indexOf("## Receiving and verifying")))![1];
const secret = "whsec_" + Buffer.alloc(32, 9).toString("base64");
let child: ChildProcess;
let port: number;

beforeAll(async () => {
  port = await freePort();
  child = spawn(process.execPath, ["--input-type=module", "-e", code], {
    cwd: projectRoot,
    env: { PATH: process.env.PATH, WEBHOOK_SECRET: secret, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  for (let i = 0; i < 200; i++) {
    const up = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body: "" }).then(() => true, () => false);
    if (up) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("the documented receiver did not start");
});
afterAll(() => {
  child?.kill();
});

const post = (body: string, headers: Record<string, string>) =>
  fetch(`http://127.0.0.1:${port}/`, { method: "POST", body, headers: { "content-type": "application/json", ...headers } }).then((r) => r.status);

test("the documented receiver accepts our signature and refuses forgeries", async () => {
  const body = messageBody({ event_type: "member.joined", payload: { user_id: "u1", role: "member" }, message_created_at: new Date() });
  const now = Math.floor(Date.now() / 1000);
  expect(await post(body, signedHeaders([secret], "msg-1", now, body))).toBe(204);
  // during a rotation: the old (unknown to it) and its own secret
  const other = "whsec_" + Buffer.alloc(32, 1).toString("base64");
  expect(await post(body, signedHeaders([other, secret], "msg-2", now, body))).toBe(204);
  expect(await post(body.replace("member", "owner"), signedHeaders([secret], "msg-3", now, body))).toBe(400);
  expect(await post(body, signedHeaders([other], "msg-4", now, body))).toBe(400);
  expect(await post(body, signedHeaders([secret], "msg-5", now - 3600, body))).toBe(400);
});
