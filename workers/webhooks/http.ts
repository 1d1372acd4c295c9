// One POST to a customer's endpoint: through the SSRF-safe agents, never following a redirect,
// with a deadline on the whole exchange, reading at most 4 KB of the answer. Never throws: the
// outcome (status, time, answer, error, Retry-After) is what the delivery log records. Errors
// name what happened, never the secrets or the request's headers.

import http from "node:http";
import https from "node:https";
import { checkWebhookUrl, ForbiddenAddressError, safeAgents } from "./ssrf.ts";

export interface PostOutcome {
  statusCode: number | null;
  durationMs: number;
  responseBody: string | null;
  error: string | null;
  /** Seconds from a Retry-After header (seconds or an HTTP date), if any. */
  retryAfterSeconds: number | null;
}

export interface PostOptions {
  timeoutMs: number;
  allowPrivate: boolean;
  allowHttp: boolean;
}

const RESPONSE_LIMIT = 4096;
const agentsByMode = new Map<boolean, ReturnType<typeof safeAgents>>();

function agents(allowPrivate: boolean) {
  let found = agentsByMode.get(allowPrivate);
  if (!found) agentsByMode.set(allowPrivate, (found = safeAgents(allowPrivate)));
  return found;
}

export function parseRetryAfter(value: string | undefined, now = Date.now()): number | null {
  if (!value) return null;
  if (/^\d{1,9}$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

export function postWebhook(rawUrl: string, headers: Record<string, string>, body: string, options: PostOptions): Promise<PostOutcome> {
  const started = performance.now();
  const done = (partial: Partial<PostOutcome>): PostOutcome => ({
    statusCode: null,
    responseBody: null,
    error: null,
    retryAfterSeconds: null,
    ...partial,
    durationMs: Math.round(performance.now() - started),
  });
  const checked = checkWebhookUrl(rawUrl, options);
  if ("error" in checked) return Promise.resolve(done({ error: checked.error }));
  const { url } = checked;
  const client = url.protocol === "https:" ? https : http;
  const agent = url.protocol === "https:" ? agents(options.allowPrivate).https : agents(options.allowPrivate).http;
  return new Promise<PostOutcome>((resolve) => {
    let settled = false;
    let deadline: NodeJS.Timeout | undefined;
    const finish = (outcome: PostOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      resolve(outcome);
    };
    let request: http.ClientRequest;
    try {
      request = client.request(
        url,
        {
          method: "POST",
          agent,
          headers: { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(body), "user-agent": "tenantbase-webhooks/1" },
        },
        (response) => {
          const chunks: Buffer[] = [];
          let size = 0;
          response.on("data", (chunk: Buffer) => {
            if (size < RESPONSE_LIMIT) chunks.push(chunk.subarray(0, RESPONSE_LIMIT - size));
            size += chunk.length;
            if (size >= RESPONSE_LIMIT) response.destroy();
          });
          const end = () => {
            const status = response.statusCode ?? 0;
            finish(
              done({
                statusCode: status,
                responseBody: Buffer.concat(chunks).toString("utf8").slice(0, RESPONSE_LIMIT),
                error: status >= 300 && status < 400 ? `Redirect (${status}) not followed` : null,
                retryAfterSeconds: parseRetryAfter(response.headers["retry-after"] as string | undefined),
              }),
            );
          };
          response.on("end", end);
          response.on("close", end);
          response.on("error", end);
        },
      );
    } catch (error) {
      // a header Node refuses (SQL refuses them too): the attempt fails, nothing is sent
      finish(done({ error: `Request refused: ${(error as NodeJS.ErrnoException).code ?? "invalid request"}` }));
      return;
    }
    deadline = setTimeout(() => {
      request.destroy();
      finish(done({ error: `Timed out after ${options.timeoutMs} ms` }));
    }, options.timeoutMs);
    request.on("error", (error: NodeJS.ErrnoException) => {
      const message =
        error instanceof ForbiddenAddressError
          ? error.message
          : `Connection failed: ${error.code ?? "error"}${error.code ? "" : ` (${error.message.slice(0, 200)})`}`;
      finish(done({ error: message }));
    });
    request.end(body);
  });
}
