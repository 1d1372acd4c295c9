// The load generator's HTTP client: node:http with a keep-alive agent. On this 2-core machine the
// load generator shares the CPU with the server and PostgreSQL, so its own cost per request is
// taken from what the server can do: measured here, `fetch` (undici's WHATWG layer) cost the
// bench process 510–690 µs of CPU per GraphQL request and node:http 230–270 µs, and the server's
// throughput rose by a third with the lighter client. The SQL baselines' client (`pg`) costs
// about 220 µs per transaction, so this also compares like with like.

import http from "node:http";

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

export interface HttpAnswer {
  status: number;
  body: string;
}

/** POSTs `body` to `url` on a kept-alive connection; resolves with the status and the whole body. */
export function post(url: URL, body: string, headers: Record<string, string>): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: "POST",
        headers: { ...headers, "content-length": String(Buffer.byteLength(body)) },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
        response.on("error", reject);
      },
    );
    request.on("error", reject);
    request.end(body);
  });
}

const agentsFrom = new Map<string, http.Agent>();

/**
 * As post(), from the local address `localAddress` (e.g. 127.2.0.1: on Linux every 127/8 address
 * reaches a server on 127.0.0.1), so that one process can act as several client addresses.
 */
export function postFrom(localAddress: string, url: URL, body: string, headers: Record<string, string>): Promise<HttpAnswer> {
  let from = agentsFrom.get(localAddress);
  if (!from) {
    from = new http.Agent({ keepAlive: true, maxSockets: 64, localAddress });
    agentsFrom.set(localAddress, from);
  }
  const agentFrom = from;
  return new Promise((resolve, reject) => {
    const request = http.request(
      { agent: agentFrom, host: url.hostname, port: url.port, path: url.pathname, method: "POST", headers: { ...headers, "content-length": String(Buffer.byteLength(body)) } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
        response.on("error", reject);
      },
    );
    request.on("error", reject);
    request.end(body);
  });
}

/** GETs `url` (kept alive); resolves with the status and the whole body. */
export function get(url: URL): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.request({ agent, host: url.hostname, port: url.port, path: url.pathname, method: "GET" }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
      response.on("error", reject);
    });
    request.on("error", reject);
    request.end();
  });
}
