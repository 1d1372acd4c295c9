// One attempt of one delivery (the task deliver_webhook): read what to send, sign it, POST it,
// record the outcome, and let SQL decide what follows (db/functions/600-webhooks/deliveries.sql).
// The worker decides only when the next attempt would be: the configured schedule with jitter,
// or Retry-After (429, 503) within bounds.

import type { OutboundWebhooksConfig } from "../../core/config.ts";
import { postWebhook, type PostOutcome } from "./http.ts";
import { signedHeaders } from "./signing.ts";

export interface DeliveryRow {
  busy: boolean;
  endpoint_id: string;
  url: string;
  headers: Record<string, unknown>;
  message_id: string;
  event_type: string;
  payload: unknown;
  message_created_at: Date;
  attempt_count: number;
  secrets: string[];
}

/** The body of a message: the same bytes at every attempt (Standard Webhooks' type/timestamp/data). */
export function messageBody(row: Pick<DeliveryRow, "event_type" | "payload" | "message_created_at">): string {
  return JSON.stringify({ type: row.event_type, timestamp: row.message_created_at.toISOString(), data: row.payload });
}

/**
 * Milliseconds until the next attempt after `attemptsMade` failed ones, or null when the schedule
 * is exhausted. 429 and 503 with Retry-After wait that long instead (at most maxRetryAfterSeconds).
 */
export function nextRetryMs(attemptsMade: number, outcome: Pick<PostOutcome, "statusCode" | "retryAfterSeconds">, config: OutboundWebhooksConfig, random = Math.random): number | null {
  const index = attemptsMade - 1;
  if (index >= config.retryScheduleSeconds.length) return null;
  if ((outcome.statusCode === 429 || outcome.statusCode === 503) && outcome.retryAfterSeconds !== null) {
    return Math.min(Math.max(outcome.retryAfterSeconds, 0), config.maxRetryAfterSeconds) * 1000;
  }
  const base = config.retryScheduleSeconds[index] * 1000;
  const jitter = (config.retryJitterPercent / 100) * base * (random() * 2 - 1);
  return Math.max(0, Math.round(base + jitter));
}

/** Custom headers as strings, without anything that could replace ours (SQL refuses those too). */
function customHeaders(headers: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (typeof value !== "string" || /^(webhook-|content-|host$|user-agent$|transfer-encoding$|connection$)/i.test(name)) continue;
    if (/[\r\n\0]/.test(value)) continue;
    out[name] = value;
  }
  return out;
}

/** Runs one statement on a pooled connection and releases it (none is held across the request). */
export type Query = <R>(sql: string, values: unknown[]) => Promise<R[]>;

export async function attemptDelivery(
  query: Query,
  organizationId: string,
  deliveryId: string,
  config: OutboundWebhooksConfig,
): Promise<string> {
  // the lease outlives the request's deadline by a minute (a worker that dies leaves it to expire)
  const rows = await query<DeliveryRow>("select * from app_private.webhook_delivery_to_send($1, $2, $3, make_interval(secs => $4))", [
    organizationId,
    deliveryId,
    config.maxInFlightPerOrganization,
    config.timeoutMs / 1000 + 60,
  ]);
  if (rows.length === 0) return "nothing_to_send";
  const row = rows[0];
  if (row.busy) {
    await query("select app_private.postpone_webhook_attempt($1, $2, 1000)", [organizationId, deliveryId]);
    return "postponed";
  }
  const body = messageBody(row);
  const timestamp = Math.floor(Date.now() / 1000);
  let outcome: PostOutcome;
  if (row.secrets.length === 0) {
    outcome = { statusCode: null, durationMs: 0, responseBody: null, error: "No signing secret", retryAfterSeconds: null };
  } else {
    outcome = await postWebhook(
      row.url,
      { ...customHeaders(row.headers), ...signedHeaders(row.secrets, row.message_id, timestamp, body) },
      body,
      { timeoutMs: config.timeoutMs, allowPrivate: config.allowPrivateAddresses, allowHttp: config.allowHttp },
    );
  }
  const success = outcome.statusCode !== null && outcome.statusCode >= 200 && outcome.statusCode < 300;
  const retryMs = success ? null : nextRetryMs(row.attempt_count + 1, outcome, config);
  const result = await query<{ outcome: string }>(
    "select app_private.record_webhook_attempt($1, $2, $3, $4, $5, $6, $7, make_interval(hours => $8)) as outcome",
    [organizationId, deliveryId, outcome.statusCode, outcome.durationMs, outcome.responseBody, outcome.error, retryMs, config.disableAfterFailingHours],
  );
  return result[0].outcome;
}
