// What the attacks of bench:fairness share: a GraphQL request as a tenant (or anonymous, or from
// a chosen client address) and its outcome in one word: the HTTP status and, when the answer
// carries errors, the first error's extensions.code ("200", "200 QUOTA_EXCEEDED", "429 RATE_LIMITED").

import { post, postFrom, type HttpAnswer } from "../lib/http-client.ts";

export interface GraphQLAnswer {
  status: number;
  data?: any;
  code?: string;
  /** status + first error code: an outcome for the attack's counts */
  outcome: string;
}

export function headersFor(token?: string): Record<string, string> {
  return { "content-type": "application/json", accept: "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) };
}

export function answerOf(answer: HttpAnswer): GraphQLAnswer {
  let parsed: any;
  try {
    parsed = JSON.parse(answer.body);
  } catch {
    return { status: answer.status, outcome: `${answer.status} unparsable` };
  }
  const code: string | undefined = parsed?.errors?.[0]?.extensions?.code ?? (parsed?.errors?.length ? "error" : undefined);
  return { status: answer.status, data: parsed?.data, code, outcome: code ? `${answer.status} ${code}` : String(answer.status) };
}

export async function graphql(url: URL, query: string, variables: Record<string, unknown> = {}, token?: string, from?: string): Promise<GraphQLAnswer> {
  const body = JSON.stringify({ query, variables });
  return answerOf(await (from ? postFrom(from, url, body, headersFor(token)) : post(url, body, headersFor(token))));
}

/** As graphql(), but throws unless the answer has data and no error (for set-up steps). */
export async function must(url: URL, query: string, variables: Record<string, unknown>, token?: string): Promise<any> {
  const answer = await graphql(url, query, variables, token);
  if (answer.status !== 200 || answer.code) throw new Error(`set-up request failed: ${answer.outcome}`);
  return answer.data;
}

/** Runs `task` for items 0..n-1, `width` at a time. */
export async function inParallel<T>(n: number, width: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, n) }, async () => {
      while (next < n) {
        const i = next++;
        results[i] = await task(i);
      }
    }),
  );
  return results;
}
