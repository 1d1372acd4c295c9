// What the realtime attacks share: API keys of the attacking organization (created in prepare,
// revoked in cleanup: live keys count against the plan) and a minimal graphql-ws client on the
// `ws` package (one socket: connection_init with the key, then subscriptions).

import WebSocket from "ws";
import type { AttackContext } from "./attack.ts";
import { inParallel, must } from "./graphql.ts";

export async function createKeys(context: AttackContext, n: number, label: string): Promise<{ id: string; secret: string }[]> {
  const made = await inParallel(n, 4, async (i) => {
    const data = await must(
      context.graphqlUrl,
      `mutation K($org: UUID!, $name: String!) { createApiKey(input: { organizationId: $org, name: $name }) { secret apiKey { id } } }`,
      { org: context.attacker.organizationId, name: `fairbench ${label} ${i}` },
      context.attackerToken,
    );
    return { id: data.createApiKey.apiKey.id as string, secret: data.createApiKey.secret as string };
  });
  return made;
}

export async function revokeKeys(context: AttackContext, keys: { id: string }[]): Promise<void> {
  await inParallel(keys.length, 4, (i) =>
    must(context.graphqlUrl, `mutation R($id: UUID!) { revokeApiKey(input: { id: $id }) { clientMutationId } }`, { id: keys[i].id }, context.attackerToken),
  );
}

export interface OpenSocket {
  ws: WebSocket;
  /** "ack", "close <code>", "http <status>" or an error code */
  outcome: string;
}

/** Opens a graphql-ws socket and sends connection_init with `token`; resolves when acknowledged or refused. */
export function openSocket(baseUrl: string, token: string, timeoutMs = 10_000): Promise<OpenSocket> {
  return new Promise((resolve) => {
    const ws = new WebSocket(baseUrl.replace(/^http/, "ws") + "/graphql", "graphql-transport-ws");
    let settled = false;
    const settle = (outcome: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (outcome !== "ack") ws.terminate();
      resolve({ ws, outcome });
    };
    const timer = setTimeout(() => settle("timeout"), timeoutMs);
    ws.on("open", () => ws.send(JSON.stringify({ type: "connection_init", payload: { Authorization: `Bearer ${token}` } })));
    ws.on("message", (data) => {
      const m = JSON.parse(String(data));
      if (m.type === "connection_ack") settle("ack");
      else if (m.type === "ping") ws.send(JSON.stringify({ type: "pong" }));
    });
    ws.on("unexpected-response", (_req, res) => settle(`http ${res.statusCode}`));
    ws.on("close", (code) => settle(`close ${code}`));
    ws.on("error", (error: NodeJS.ErrnoException) => settle(error.code ?? "error"));
  });
}

export function count(outcomes: Record<string, number>, outcome: string): void {
  outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
}
