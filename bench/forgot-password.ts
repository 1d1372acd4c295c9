// `node bench/forgot-password.ts [pairs]`: can forgotPassword tell a known address from an
// unknown one by its timing? Sends forgotPassword for a registered address and for a fresh unknown
// one, alternating (known, unknown, known, …) so the VM's drift hits both alike, one request at a
// time over HTTP, and the same through SQL alone (app_public.forgot_password as app_anonymous).
// Prints the latency distribution of each and the difference of means with its 95% interval.
// Attempt limits are off for the run. Uses an embedded PostgreSQL (or TEST_ROOT_DATABASE_URL).

import "../core/graphile-env.ts";
import pg from "pg";
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { createScratchDatabase } from "../db/scratch-database.ts";
import { createApp } from "../server/app.ts";

const PAIRS = Number(process.argv[2] ?? 1000);
const JWT = { secret: randomBytes(32).toString("hex"), audience: "tenantbase", issuer: "tenantbase" };
const KNOWN = "known@example.com";

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1));
  return { mean, sd, p50: q(0.5), p95: q(0.95), p99: q(0.99) };
}

function report(label: string, known: number[], unknown: number[]) {
  const k = stats(known);
  const u = stats(unknown);
  const diff = k.mean - u.mean;
  const se = Math.sqrt(k.sd ** 2 / known.length + u.sd ** 2 / unknown.length);
  const row = (name: string, x: ReturnType<typeof stats>) =>
    `  ${name.padEnd(9)} mean ${x.mean.toFixed(3).padStart(7)} ms   p50 ${x.p50.toFixed(3).padStart(7)}   p95 ${x.p95.toFixed(3).padStart(7)}   p99 ${x.p99.toFixed(3).padStart(7)}`;
  console.log(`${label} (${known.length} pairs)`);
  console.log(row("known", k));
  console.log(row("unknown", u));
  console.log(
    `  known - unknown: ${(diff * 1000).toFixed(0)} µs (95% interval ${((diff - 1.96 * se) * 1000).toFixed(0)} to ${((diff + 1.96 * se) * 1000).toFixed(0)} µs); spread (sd) of one request ${(u.sd * 1000).toFixed(0)} µs`,
  );
}

async function main() {
  const database = await createScratchDatabase("tb_bench_forgot");
  try {
    const owner = new pg.Pool({ connectionString: database.ownerUrl, max: 2 });
    const auth = new pg.Pool({ connectionString: database.authUrl, max: 2 });
    const app = await createApp({ ownerUrl: database.ownerUrl, authUrl: database.authUrl, jwt: JWT, authPoolSize: 4 });
    await owner.query("update app_private.account_settings set attempt_limits = '{}'");
    await owner.query("select app_public.register($1, 'correct horse', 'Known')", [KNOWN]);
    await new Promise<void>((resolve) => app.httpServer.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(app.httpServer.address() as AddressInfo).port}/graphql`;
    const query = "mutation($e: String!) { forgotPassword(input: {email: $e}) { success } }";

    async function overHttp(email: string): Promise<number> {
      const started = performance.now();
      const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query, variables: { e: email } }) });
      const text = await response.text();
      const elapsed = performance.now() - started;
      if (text !== '{"data":{"forgotPassword":{"success":true}}}') throw new Error(`unexpected answer ${text}`);
      return elapsed;
    }
    async function overSql(email: string): Promise<number> {
      const client = await auth.connect();
      try {
        const started = performance.now();
        await client.query("begin");
        await client.query("set local role app_anonymous");
        await client.query("select app_public.forgot_password($1)", [email]);
        await client.query("commit");
        return performance.now() - started;
      } finally {
        client.release();
      }
    }
    for (const [label, fn] of [["forgotPassword over HTTP", overHttp], ["app_public.forgot_password through pg", overSql]] as const) {
      for (let i = 0; i < 50; i++) await fn(i % 2 ? KNOWN : `warm-${i}@example.com`); // warm-up
      const known: number[] = [];
      const unknown: number[] = [];
      for (let i = 0; i < PAIRS; i++) {
        known.push(await fn(KNOWN));
        unknown.push(await fn(`nobody-${i}-${randomBytes(3).toString("hex")}@example.com`));
      }
      report(label, known, unknown);
    }
    await app.close();
    await Promise.all([owner.end(), auth.end()]);
  } finally {
    await database.drop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
