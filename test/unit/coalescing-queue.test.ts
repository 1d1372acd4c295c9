// core/coalescing-queue.ts: a lone item goes at once; items that arrive while a call runs go
// together into the next; each gets its own answer; a thrown call fails only its own items.

import { CoalescingQueue, type Settled } from "../../core/coalescing-queue.ts";

function controlled() {
  const calls: { items: number[]; finish(answers: Settled<number>[] | Error): void }[] = [];
  const queue = new CoalescingQueue<number, number>(
    (items) => new Promise((resolve, reject) => calls.push({ items, finish: (a) => (a instanceof Error ? reject(a) : resolve(a)) })),
    { maxBatch: 3 },
  );
  return { calls, queue };
}
const tick = () => new Promise((r) => setImmediate(r));

test("a lone item is called at once; items arriving meanwhile are called together, at most maxBatch each", async () => {
  const { calls, queue } = controlled();
  const first = queue.push(1);
  expect(calls.map((c) => c.items)).toEqual([[1]]);
  const rest = Promise.allSettled([2, 3, 4, 5].map((n) => queue.push(n)));
  expect(calls).toHaveLength(1); // one call in flight at a time
  calls[0].finish([{ ok: true, value: 10 }]);
  expect(await first).toBe(10);
  await tick();
  expect(calls.map((c) => c.items)).toEqual([[1], [2, 3, 4]]);
  calls[1].finish([{ ok: true, value: 20 }, { ok: false, error: new Error("three") }, { ok: true, value: 40 }]);
  await tick();
  expect(calls.map((c) => c.items)).toEqual([[1], [2, 3, 4], [5]]);
  calls[2].finish(new Error("call failed"));
  const settled = await rest;
  expect(settled.map((s) => (s.status === "fulfilled" ? s.value : (s.reason as Error).message))).toEqual([20, "three", 40, "call failed"]);
});

test("sizeOf counts toward maxBatch; one item bigger than maxBatch still goes, alone", async () => {
  const seen: string[][] = [];
  const queue = new CoalescingQueue<string, number>(async (items) => {
    seen.push(items);
    return items.map((item) => ({ ok: true, value: item.length }));
  }, { maxBatch: 4, sizeOf: (item) => item.length });
  const answers = await Promise.all(["aaaaaa", "bb", "cc", "d"].map((s) => queue.push(s)));
  expect(answers).toEqual([6, 2, 2, 1]);
  expect(seen).toEqual([["aaaaaa"], ["bb", "cc"], ["d"]]);
});
