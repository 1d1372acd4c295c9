// The fetch openid-client uses for organizations' own issuers. An organization's admin chooses
// the issuer URL, so every request to it (discovery, JWKS, token, userinfo) goes through the
// webhooks' agents, whose DNS lookup refuses internal addresses at connect time
// (workers/webhooks/ssrf.ts: loopback, private ranges, link-local metadata, IPv6 and mapped forms,
// a name that changes between check and connect); a literal IP is checked before the request.
// Redirects are not followed (openid-client asks for 'manual'); an answer is at most 1 MB.
// Outside production (allowPrivate) local issuers are allowed, as the tests' are.

import http from "node:http";
import https from "node:https";
import type { CustomFetch } from "openid-client";
import { checkWebhookUrl, safeAgents } from "../../workers/webhooks/ssrf.ts";

const MAX_BYTES = 1_000_000;

export function issuerFetch(options: { allowPrivate: boolean; allowHttp: boolean }): CustomFetch {
  const agents = safeAgents(options.allowPrivate);
  return (url, init) =>
    new Promise<Response>((resolve, reject) => {
      const checked = checkWebhookUrl(url, options);
      if ("error" in checked) return reject(new Error(`issuer URL refused: ${checked.error}`));
      const target = checked.url;
      const body = init.body == null ? undefined : init.body instanceof URLSearchParams ? init.body.toString() : init.body;
      if (body !== undefined && typeof body !== "string" && !(body instanceof Uint8Array) && !(body instanceof ArrayBuffer)) {
        return reject(new Error("issuer request body of an unsupported kind"));
      }
      const request = (target.protocol === "https:" ? https : http).request(
        target,
        { method: init.method, headers: init.headers, agent: target.protocol === "https:" ? agents.https : agents.http, signal: init.signal },
        (response) => {
          const chunks: Buffer[] = [];
          let size = 0;
          response.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_BYTES) {
              response.destroy();
              reject(new Error(`issuer answer larger than ${MAX_BYTES} bytes`));
            } else chunks.push(chunk);
          });
          response.on("end", () => {
            const headers = new Headers();
            for (const [key, value] of Object.entries(response.headers)) {
              if (Array.isArray(value)) for (const v of value) headers.append(key, v);
              else if (value !== undefined) headers.set(key, value);
            }
            const status = response.statusCode ?? 502;
            const noBody = status === 204 || status === 304 || init.method === "HEAD";
            resolve(new Response(noBody ? null : Buffer.concat(chunks), { status, statusText: response.statusMessage, headers }));
          });
          response.on("error", reject);
        },
      );
      request.on("error", reject);
      if (body !== undefined) request.write(body instanceof ArrayBuffer ? Buffer.from(body) : body);
      request.end();
    });
}
