// The retry schedule of outbound webhooks (workers/webhooks/deliver.ts, WEBHOOK_RETRY_SCHEDULE):
// the documented default, jitter within ±20%, Retry-After of 429 and 503 within bounds, and the
// end of the schedule. Also the signature against the standardwebhooks package's own signer.

import { Webhook } from "standardwebhooks";
import { DEFAULT_WEBHOOK_RETRY_SCHEDULE, outboundWebhooksConfig, ConfigError } from "../../core/config.ts";
import { nextRetryMs, messageBody } from "../../workers/webhooks/deliver.ts";
import { parseRetryAfter } from "../../workers/webhooks/http.ts";
import { signedHeaders } from "../../workers/webhooks/signing.ts";

const config = outboundWebhooksConfig({});

test("the default schedule is 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after the first attempt, then nothing", () => {
  expect(DEFAULT_WEBHOOK_RETRY_SCHEDULE).toEqual([5, 300, 1800, 7200, 18000, 36000, 36000]);
  const none = { statusCode: 500, retryAfterSeconds: null };
  const waits = [1, 2, 3, 4, 5, 6, 7, 8].map((n) => nextRetryMs(n, none, config, () => 0.5));
  expect(waits).toEqual([5000, 300000, 1800000, 7200000, 18000000, 36000000, 36000000, null]);
});

test("jitter moves each wait by at most 20% either way", () => {
  const none = { statusCode: null, retryAfterSeconds: null };
  expect(nextRetryMs(2, none, config, () => 0)).toBe(240000);
  expect(nextRetryMs(2, none, config, () => 0.999999)).toBeLessThanOrEqual(360000);
  expect(nextRetryMs(2, none, config, () => 0.999999)).toBeGreaterThan(359000);
});

test("429 and 503 honour Retry-After up to WEBHOOK_MAX_RETRY_AFTER_SECONDS; other codes do not", () => {
  expect(nextRetryMs(1, { statusCode: 429, retryAfterSeconds: 120 }, config, () => 0.5)).toBe(120000);
  expect(nextRetryMs(1, { statusCode: 503, retryAfterSeconds: 999999 }, config, () => 0.5)).toBe(3600000);
  expect(nextRetryMs(1, { statusCode: 500, retryAfterSeconds: 120 }, config, () => 0.5)).toBe(5000);
  // the schedule still ends
  expect(nextRetryMs(8, { statusCode: 429, retryAfterSeconds: 1 }, config, () => 0.5)).toBeNull();
  expect(parseRetryAfter("30")).toBe(30);
  expect(parseRetryAfter(new Date(Date.UTC(2030, 0, 1, 0, 1)).toUTCString(), Date.UTC(2030, 0, 1))).toBe(60);
  expect(parseRetryAfter("soon")).toBeNull();
});

test("the settings are validated; private addresses cannot be allowed in production", () => {
  expect(outboundWebhooksConfig({ WEBHOOK_RETRY_SCHEDULE: "none" }).retryScheduleSeconds).toEqual([]);
  expect(outboundWebhooksConfig({ WEBHOOK_RETRY_SCHEDULE: "1, 2" }).retryScheduleSeconds).toEqual([1, 2]);
  expect(() => outboundWebhooksConfig({ WEBHOOK_RETRY_SCHEDULE: "1,x" })).toThrow(ConfigError);
  expect(() => outboundWebhooksConfig({ NODE_ENV: "production", WEBHOOK_ALLOW_PRIVATE_ADDRESSES: "true" })).toThrow(/development and tests only/);
  expect(outboundWebhooksConfig({ NODE_ENV: "production" }).allowHttp).toBe(false);
});

test("our signature is the one standardwebhooks computes, and verifies with it", () => {
  const secret = "whsec_" + Buffer.alloc(32, 7).toString("base64");
  const body = messageBody({ event_type: "webhook.test", payload: { endpoint_id: "x" }, message_created_at: new Date(Date.UTC(2026, 0, 2)) });
  const timestamp = Math.floor(Date.now() / 1000);
  const headers = signedHeaders([secret], "msg_1", timestamp, body);
  expect(headers["webhook-signature"]).toBe(new Webhook(secret).sign("msg_1", new Date(timestamp * 1000), body));
  expect(new Webhook(secret).verify(body, headers)).toEqual(JSON.parse(body));
});
