// Issue 25, finding 8: 16 senders POST 1 MB bodies to /webhooks/stripe, half with a well-formed
// but wrong signature (fresh timestamp), half with no signature header at all.

import http from "node:http";
import { loops, type Attack } from "./attack.ts";

const BODY = Buffer.alloc(1024 * 1024, 0x61);

function send(baseUrl: string, signature: string | null): Promise<string> {
  const url = new URL("/webhooks/stripe", baseUrl);
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: "POST",
        // a new connection each time: the server closes the connection of a refused delivery
        agent: false,
        headers: {
          "content-type": "application/json",
          "content-length": String(BODY.length),
          ...(signature !== null ? { "stripe-signature": signature } : {}),
        },
      },
      (response) => {
        response.resume();
        response.on("end", () => resolve(String(response.statusCode)));
        response.on("error", reject);
      },
    );
    // The server may answer and close before the whole body is sent: that is the answer.
    let answered = false;
    request.on("response", () => (answered = true));
    request.on("error", (error) => (answered ? undefined : reject(error)));
    request.end(BODY);
  });
}

export const stripeWebhookFlood: Attack = {
  name: "stripe webhook flood (A8)",
  description: "16 senders of 1 MB bodies to /webhooks/stripe, half with a wrong signature, half with none",
  start(context) {
    return loops(16, (sender) =>
      send(context.baseUrl, sender % 2 === 0 ? `t=${Math.floor(Date.now() / 1000)},v1=${"ab".repeat(32)}` : null),
    );
  },
};
