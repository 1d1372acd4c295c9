// One call for many callers: while a call runs (or `maxInFlight` of them), the items that arrive
// wait and go together into the next one. There is no timer: a lone item is sent at once, so a
// single caller sees no added wait, and batches only grow while the callee is busy. Used where a
// round trip or a commit costs more than the work per item: the webhook intake
// (server/webhooks/intake-batcher.ts) and the worker's Stripe event calls
// (workers/tasks/stripe_events.ts).

/** Each item's own answer: a value, or the error that item alone gets. */
export type Settled<O> = { ok: true; value: O } | { ok: false; error: unknown };

export interface CoalescingOptions<I> {
  /** Calls running at the same time (default 1). */
  maxInFlight?: number;
  /** Size of a call at most, in `sizeOf` units (default 100); a bigger single item still goes alone. */
  maxBatch?: number;
  /** Default 1 per item. */
  sizeOf?: (item: I) => number;
}

interface Waiting<I, O> {
  item: I;
  resolve(value: O): void;
  reject(error: unknown): void;
}

export class CoalescingQueue<I, O> {
  private waiting: Waiting<I, O>[] = [];
  private inFlight = 0;
  private readonly maxInFlight: number;
  private readonly maxBatch: number;
  private readonly sizeOf: (item: I) => number;
  private readonly run: (items: I[]) => Promise<Settled<O>[]>;

  /** `run` answers each item in order; if it throws, every item of that call gets the error. */
  constructor(run: (items: I[]) => Promise<Settled<O>[]>, options: CoalescingOptions<I> = {}) {
    this.run = run;
    this.maxInFlight = options.maxInFlight ?? 1;
    this.maxBatch = options.maxBatch ?? 100;
    this.sizeOf = options.sizeOf ?? (() => 1);
  }

  push(item: I): Promise<O> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.waiting.length > 0) {
      const batch: Waiting<I, O>[] = [];
      let size = 0;
      while (this.waiting.length > 0 && (batch.length === 0 || size + this.sizeOf(this.waiting[0].item) <= this.maxBatch)) {
        const next = this.waiting.shift()!;
        batch.push(next);
        size += this.sizeOf(next.item);
      }
      this.inFlight += 1;
      void this.call(batch).finally(() => {
        this.inFlight -= 1;
        this.pump();
      });
    }
  }

  private async call(batch: Waiting<I, O>[]): Promise<void> {
    try {
      const answers = await this.run(batch.map((w) => w.item));
      batch.forEach((w, i) => {
        const answer = answers[i];
        if (answer.ok) w.resolve(answer.value);
        else w.reject(answer.error);
      });
    } catch (error) {
      for (const w of batch) w.reject(error);
    }
  }
}
