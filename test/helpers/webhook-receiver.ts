// A real HTTP server that receives outbound webhooks and verifies each with the npm package
// standardwebhooks (not our code), for the webhook tests. Each path answers as the test sets it
// (a status, a Retry-After, a redirect, or never).

import http from "node:http";
import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";

export interface Received {
  path: string;
  id: string;
  timestamp: string;
  signatures: string[];
  body: string;
  headers: http.IncomingHttpHeaders;
  /** Secrets (of those registered with verifyWith) whose verification passed. */
  verifiedBy: string[];
}

export interface Answer {
  status?: number;
  headers?: Record<string, string>;
  /** Never answer (the request hangs until the client gives up). */
  hang?: boolean;
  body?: string;
}

export interface Receiver {
  url(path: string): string;
  received: Received[];
  /** The answers for a path, used in turn; the last one repeats. Default: 200. */
  answer(path: string, ...answers: Answer[]): void;
  /** Secrets to verify every request with (each is tried on its own). */
  verifyWith(...secrets: string[]): void;
  /** Requests in flight right now, and the most seen at once, per path. */
  inFlight: Map<string, number>;
  maxInFlight: Map<string, number>;
  /** The most requests seen at once to paths starting /<group>- (e.g. all of /b-1, /b-2). */
  maxInFlightOfGroup: Map<string, number>;
  /** Ends every request left hanging (the client sees the connection reset). */
  releaseHanging(): void;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const received: Received[] = [];
  const answers = new Map<string, Answer[]>();
  const inFlight = new Map<string, number>();
  const maxInFlight = new Map<string, number>();
  const groupInFlight = new Map<string, number>();
  const maxInFlightOfGroup = new Map<string, number>();
  let secrets: string[] = [];
  const hanging = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    const path = req.url ?? "/";
    const chunks: Buffer[] = [];
    inFlight.set(path, (inFlight.get(path) ?? 0) + 1);
    maxInFlight.set(path, Math.max(maxInFlight.get(path) ?? 0, inFlight.get(path)!));
    const group = /^\/([a-z0-9]+)-/.exec(path)?.[1] ?? "";
    groupInFlight.set(group, (groupInFlight.get(group) ?? 0) + 1);
    maxInFlightOfGroup.set(group, Math.max(maxInFlightOfGroup.get(group) ?? 0, groupInFlight.get(group)!));
    let closed = false;
    const done = () => {
      if (closed) return;
      closed = true;
      inFlight.set(path, (inFlight.get(path) ?? 1) - 1);
      groupInFlight.set(group, (groupInFlight.get(group) ?? 1) - 1);
    };
    res.on("close", done);
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const headers = {
        "webhook-id": String(req.headers["webhook-id"] ?? ""),
        "webhook-timestamp": String(req.headers["webhook-timestamp"] ?? ""),
        "webhook-signature": String(req.headers["webhook-signature"] ?? ""),
      };
      const verifiedBy = secrets.filter((secret) => {
        try {
          new Webhook(secret).verify(body, headers);
          return true;
        } catch {
          return false;
        }
      });
      received.push({
        path,
        id: headers["webhook-id"],
        timestamp: headers["webhook-timestamp"],
        signatures: headers["webhook-signature"].split(" ").filter(Boolean),
        body,
        headers: req.headers,
        verifiedBy,
      });
      const list = answers.get(path) ?? [];
      const answer = (list.length > 1 ? list.shift() : list[0]) ?? {};
      if (answer.hang) {
        hanging.add(res);
        return;
      }
      res.writeHead(answer.status ?? 200, answer.headers ?? {});
      res.end(answer.body ?? "ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    received,
    answer: (path, ...list) => answers.set(path, list),
    verifyWith: (...list) => {
      secrets = list;
    },
    inFlight,
    maxInFlight,
    maxInFlightOfGroup,
    releaseHanging: () => {
      for (const res of hanging) res.destroy();
      hanging.clear();
    },
    close: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
