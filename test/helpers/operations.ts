// Helpers for the operations tests (issue 7): a server with chosen options, a Prometheus text
// parser, and an in-memory log sink.

import type { AddressInfo } from "node:net";
import { createApp, type App, type AppOptions } from "../../server/app.ts";
import { createLogger, type Logger } from "../../core/logger.ts";
import { TEST_JWT } from "./server.ts";

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format strictly: any malformed line throws. */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("# HELP ") || line.startsWith("# TYPE ")) continue;
    // Values as Prometheus reads them (Go's ParseFloat: NaN and Inf in any case; prom-client writes "Nan").
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+-]+|[Nn]a[Nn]|[+-]?[Ii]nf)$/.exec(line);
    if (!match) throw new Error(`not Prometheus text: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    if (match[2]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/gy;
      let m: RegExpExecArray | null;
      let consumed = 0;
      while ((m = re.exec(match[2]))) {
        labels[m[1]] = m[2];
        consumed = re.lastIndex;
      }
      if (consumed !== match[2].length) throw new Error(`bad labels: ${line}`);
    }
    const raw = match[3].toLowerCase();
    const value = raw === "nan" ? NaN : raw === "+inf" || raw === "inf" ? Infinity : raw === "-inf" ? -Infinity : Number(match[3]);
    samples.push({ name: match[1], labels, value });
  }
  return samples;
}

export function memoryLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const logger = createLogger({ level: "debug", stream: { write: (line: string) => void lines.push(line) } });
  return { logger, lines };
}

export interface OpsServer {
  url: string;
  app: App;
  close(): Promise<void>;
}

export async function startServer(
  db: { ownerUrl: string; authUrl: string; directOwnerUrl?: string },
  options: Partial<AppOptions> = {},
): Promise<OpsServer> {
  const app = await createApp({ ownerUrl: db.ownerUrl, authUrl: db.authUrl, listenUrl: db.directOwnerUrl, jwt: TEST_JWT, ...options });
  await new Promise<void>((resolve) => app.httpServer.listen(0, "127.0.0.1", resolve));
  const { port } = app.httpServer.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, app, close: () => app.close() };
}

export async function postGraphQL(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const response = await fetch(`${url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: any = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // keep text
  }
  return { status: response.status, body: parsed, headers: response.headers };
}
