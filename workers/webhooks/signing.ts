// Standard Webhooks signing: webhook-signature is "v1,<base64 HMAC-SHA256 of id.timestamp.body>"
// with the secret's base64 bytes after "whsec_" as the key; several signatures (the new and the
// old secret during a rotation) are separated by spaces. Receivers verify with any Standard
// Webhooks library (the tests use the npm package standardwebhooks).

import { createHmac } from "node:crypto";

export function signature(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  return "v1," + createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64");
}

/** The three Standard Webhooks headers for one attempt, signed with every live secret. */
export function signedHeaders(secrets: string[], id: string, timestamp: number, body: string): Record<string, string> {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": secrets.map((secret) => signature(secret, id, timestamp, body)).join(" "),
  };
}
