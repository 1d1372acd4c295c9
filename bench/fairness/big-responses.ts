// Issue 25, finding 7: responses as big as the limits allow. prepare() makes 200 generations of
// the attacker's organization with ~16 kB of metadata (the largest accepted) each (started and failed: free), once per
// data set (found again by their model on later runs); then it finds the most aliases of
// `generations(first: 200) { nodes { metadata } }` the document limits accept (20, 10, 5, 2, 1)
// and that answer within the statement timeout (timed with one alias).
// The attack: one sender asks for them back to back (up to 20 × 200 × 16 kB = 64 MB an
// answer); answers are counted, not kept.

import http from "node:http";
import { loops, type Attack } from "./attack.ts";
import { graphql, headersFor, inParallel, must } from "./graphql.ts";

const MODEL = "fairbench-big";
const GENERATIONS = 200;
const METADATA = { note: "fairbench big response", pad: "x".repeat(16_000) };
let aliases = 0;
let bytes = 0;
let chosen = "";

function bigQuery(n: number, model: string): string {
  const fields = Array.from(
    { length: n },
    (_, k) => `a${k}: generations(first: 200, orderBy: CREATED_AT_DESC, condition: { model: "${model}" }) { nodes { id metadata } }`,
  );
  return `query Big($org: UUID!) { organization(id: $org) { ${fields.join(" ")} } }`;
}

/** POSTs and counts the answer's bytes without keeping them; outcome: status (+ code when small enough to read). */
function postCounting(url: URL, body: string, headers: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: url.hostname, port: url.port, path: url.pathname, method: "POST", headers: { ...headers, "content-length": String(Buffer.byteLength(body)) } },
      (response) => {
        let head = "";
        response.on("data", (chunk: Buffer) => {
          bytes += chunk.length;
          if (head.length < 4096) head += chunk.toString("utf8", 0, 4096);
        });
        response.on("end", () => {
          const code = /"errors":\[\{.*?"code":"([A-Z_]+)"/.exec(head)?.[1];
          resolve(code ? `${response.statusCode} ${code}` : String(response.statusCode));
        });
        response.on("error", reject);
      },
    );
    request.on("error", reject);
    request.end(body);
  });
}

export const bigResponses: Attack = {
  name: "big responses (A7)",
  description: "1 sender: aliases × 200 generations × 16 kB metadata, as many aliases as the limits accept",
  async prepare(context) {
    const org = context.attacker.organizationId;
    const token = context.attackerToken;
    const found = await must(
      context.graphqlUrl,
      `query C($org: UUID!) { organization(id: $org) { generations(condition: { model: "${MODEL}" }) { totalCount } projects(first: 1) { nodes { id } } } }`,
      { org },
      token,
    );
    const have: number = found.organization.generations.totalCount;
    const projectId: string = found.organization.projects.nodes[0].id;
    await inParallel(Math.max(0, GENERATIONS - have), 4, async (i) => {
      const started = await graphql(
        context.graphqlUrl,
        `mutation S($org: UUID!, $project: UUID!, $key: String!, $metadata: JSON!) {
          startGeneration(input: { organizationId: $org, projectId: $project, kind: image, model: "${MODEL}", metadata: $metadata, estimatedCredits: "1", idempotencyKey: $key }) { generation { id } } }`,
        { org, project: projectId, key: `${MODEL}-${Date.now()}-${i}`, metadata: METADATA },
        token,
      );
      const id = started.data?.startGeneration?.generation?.id;
      if (!id) return; // a quota or a metadata limit: as far as limits allow
      await graphql(context.graphqlUrl, `mutation F($id: UUID!) { failGeneration(input: { generationId: $id, error: "bench" }) { clientMutationId } }`, { id }, token);
    });
    // the most aliases the document limits accept (asked of a model with no rows: cheap) ...
    let accepted = 0;
    for (const n of [20, 10, 5, 2, 1]) {
      const answer = await graphql(context.graphqlUrl, bigQuery(n, "fairbench-none"), { org }, token);
      if (answer.status === 200 && !answer.code) {
        accepted = n;
        break;
      }
    }
    // ... and that answer within the statement timeout: a query that times out sends nothing, so
    // the attacker takes as many aliases as fit in ~2 s, timed with one
    const t0 = performance.now();
    const one = await postCounting(context.graphqlUrl, JSON.stringify({ query: bigQuery(1, MODEL), variables: { org } }), headersFor(token));
    const oneMs = performance.now() - t0;
    aliases = one === "200" ? Math.max(1, Math.min(accepted, Math.floor(2000 / oneMs))) : Math.max(1, accepted);
    chosen = `${accepted} aliases pass the document limits, 1 alias answered ${one} in ${oneMs.toFixed(0)} ms (${(bytes / 1e6).toFixed(1)} MB): ${aliases} aliases sent`;
  },
  start(context) {
    const body = JSON.stringify({ query: bigQuery(aliases, MODEL), variables: { org: context.attacker.organizationId } });
    const headers = headersFor(context.attackerToken);
    bytes = 0;
    const running = loops(1, () => postCounting(context.graphqlUrl, body, headers));
    return { ...running, summary: () => `${chosen}; ${(bytes / 1e6).toFixed(1)} MB received during the attack` };
  },
};
