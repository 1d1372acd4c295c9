// The fair-share scheduler's bookkeeping (server/fair-share/scheduler.ts): tenants are served in
// turn, limits hold per scope, queues are bounded, waits end.

import { FairShareScheduler, RateLimitedError, type Release } from "../../server/fair-share/scheduler.ts";

const limits = { maxInFlight: 1, maxQueuedPerTenant: 10, maxQueued: 100, maxWaitMs: 60_000 };
const scope = (key: string, limit = 10) => [{ key, limit }];

test("waiting tenants are served in turn, not first come first served", async () => {
  const s = new FairShareScheduler(limits);
  const order: string[] = [];
  const first = s.tryAcquire("a", scope("a"))!;
  expect(first).not.toBeNull();
  const waits: Promise<Release>[] = [];
  for (const name of ["a1", "a2", "a3", "a4"]) waits.push(s.acquire("a", scope("a")).then((r) => (order.push(name), r)));
  waits.push(s.acquire("b", scope("b")).then((r) => (order.push("b1"), r)));
  waits.push(s.acquire("c", scope("c")).then((r) => (order.push("c1"), r)));
  let release = first;
  for (let i = 0; i < 6; i++) {
    const before = order.length;
    release();
    await new Promise((resolve) => setImmediate(resolve));
    expect(order.length).toBe(before + 1);
    release = await waits[["a1", "a2", "a3", "a4", "b1", "c1"].indexOf(order[order.length - 1])];
  }
  release();
  expect(order).toEqual(["a1", "b1", "c1", "a2", "a3", "a4"]);
  expect(s.stats()).toEqual({ inFlight: 0, queued: 0, tenantsWaiting: 0 });
});

test("a tenant at its own limit waits while others run; every scope of a request counts", async () => {
  const s = new FairShareScheduler({ ...limits, maxInFlight: 10 });
  const org = (key: string) => [{ key: `key:${key}`, limit: 4 }, { key: "org:o", limit: 2 }];
  const k1 = s.tryAcquire("org:o", org("1"))!;
  const k2 = s.tryAcquire("org:o", org("2"))!;
  expect(s.tryAcquire("org:o", org("3"))).toBeNull(); // the organization's 2 are taken
  expect(s.tryAcquire("user:u", scope("user:u", 4))).not.toBeNull(); // another tenant runs
  let third = false;
  const waiting = s.acquire("org:o", org("3")).then((r) => ((third = true), r));
  await new Promise((resolve) => setImmediate(resolve));
  expect(third).toBe(false);
  k1();
  (await waiting)();
  expect(third).toBe(true);
  k2();
  k2(); // releasing twice is harmless
  expect(s.inFlightOf("org:o")).toBe(0);
});

test("past the tenant's queue limit, and past the wait limit, requests are refused with a Retry-After", async () => {
  const s = new FairShareScheduler({ ...limits, maxQueuedPerTenant: 2, maxWaitMs: 100 });
  const held = s.tryAcquire("a", scope("a"))!;
  const queued = [s.acquire("a", scope("a")), s.acquire("a", scope("a"))];
  const refused = await s.acquire("a", scope("a")).catch((e) => e);
  expect(refused).toBeInstanceOf(RateLimitedError);
  expect(refused.reason).toBe("queue_full");
  expect(refused.retryAfterSeconds).toBeGreaterThanOrEqual(1);
  const timedOut = await Promise.allSettled(queued);
  expect(timedOut.map((r) => r.status === "rejected" && (r.reason as RateLimitedError).reason)).toEqual(["wait_timeout", "wait_timeout"]);
  held();
  expect(s.stats()).toEqual({ inFlight: 0, queued: 0, tenantsWaiting: 0 });
});

test("a waiter whose client leaves is removed from the queue", async () => {
  const s = new FairShareScheduler(limits);
  const held = s.tryAcquire("a", scope("a"))!;
  const gone = new AbortController();
  const waiting = s.acquire("b", scope("b"), gone.signal);
  expect(s.queuedOf("b")).toBe(1);
  gone.abort(new Error("closed"));
  await expect(waiting).rejects.toThrow("closed");
  expect(s.stats()).toEqual({ inFlight: 1, queued: 0, tenantsWaiting: 0 });
  held();
  expect(s.stats().inFlight).toBe(0);
});

test("FAIR_SHARE_* and STRIPE_WEBHOOK_* are read once, with one default each", async () => {
  const { fairShareConfig, stripeWebhookLimits, ConfigError } = await import("../../core/config.ts");
  expect(fairShareConfig({})).toEqual({
    enabled: true,
    maxInFlight: null,
    maxInFlightPerUser: 4,
    maxInFlightPerApiKey: 4,
    maxInFlightPerOrganization: 4,
    maxInFlightPerAddress: 2,
    maxInFlightAnonymous: 2,
    maxQueuedPerTenant: 64,
    maxQueued: 2000,
    maxWaitMs: 30_000,
  });
  expect(fairShareConfig({ FAIR_SHARE: "off", FAIR_SHARE_MAX_IN_FLIGHT: "24", FAIR_SHARE_MAX_IN_FLIGHT_PER_USER: "8" })).toMatchObject({
    enabled: false,
    maxInFlight: 24,
    maxInFlightPerUser: 8,
  });
  expect(() => fairShareConfig({ FAIR_SHARE_MAX_IN_FLIGHT_PER_USER: "0" })).toThrow(ConfigError);
  expect(() => fairShareConfig({ FAIR_SHARE_MAX_WAIT_MS: "soon" })).toThrow(/FAIR_SHARE_MAX_WAIT_MS/);
  expect(stripeWebhookLimits({})).toEqual({ maxBodyBytes: 524_288, maxRefusedPerAddressPerMinute: 60 });
  expect(stripeWebhookLimits({ STRIPE_WEBHOOK_MAX_BODY_BYTES: "100000" }).maxBodyBytes).toBe(100_000);
  expect(() => stripeWebhookLimits({ STRIPE_WEBHOOK_MAX_REFUSED_PER_MINUTE: "-1" })).toThrow(ConfigError);
});
