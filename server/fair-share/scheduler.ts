// The fair-share scheduler: how many requests each tenant has in flight, and who goes next.
//
// A request names the scopes it counts against (its user, its API key and organization, or its
// client address) with a limit each, and the queue it waits in (its tenant). It is admitted at
// once when every scope and the process-wide total have room and nothing of its tenant is
// waiting; otherwise it waits in its tenant's queue. When a request finishes, waiting tenants are
// served in turn (round robin over tenants, first come first served within one), so one tenant's
// 16 waiting requests do not stand in front of another tenant's one. Past a queue's limit, or
// after waiting too long, a request is refused with RateLimitedError (HTTP 429, RATE_LIMITED).
//
// Pure bookkeeping: no I/O, no timers except each waiter's deadline.

export interface Scope {
  /** e.g. "user:<uuid>", "key:<uuid>", "org:<uuid>", "addr:<ip>". */
  key: string;
  /** Requests of this scope in flight at most (in this process). */
  limit: number;
}

export interface SchedulerLimits {
  /** Requests in flight at most in this process, whoever sends them. */
  maxInFlight: number;
  /** Requests one tenant may have waiting; the next is refused. */
  maxQueuedPerTenant: number;
  /** Requests waiting at most, all tenants together. */
  maxQueued: number;
  /** A request waiting longer than this is refused. */
  maxWaitMs: number;
}

export class RateLimitedError extends Error {
  /** Seconds after which trying again makes sense. */
  readonly retryAfterSeconds: number;
  readonly reason: "queue_full" | "wait_timeout";
  constructor(message: string, retryAfterSeconds: number, reason: "queue_full" | "wait_timeout") {
    super(message);
    this.retryAfterSeconds = retryAfterSeconds;
    this.reason = reason;
  }
}

/** Given back by acquire(): call once when the request is over (idempotent). */
export type Release = () => void;

interface Waiter {
  tenant: string;
  scopes: Scope[];
  resolve(release: Release): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout | null;
  enqueuedAt: number;
}

export interface SchedulerStats {
  inFlight: number;
  queued: number;
  tenantsWaiting: number;
}

export class FairShareScheduler {
  private readonly limits: SchedulerLimits;
  private readonly inFlight = new Map<string, number>();
  private total = 0;
  private queued = 0;
  /** Waiting requests per tenant; `ring` is the order tenants are served in. */
  private readonly queues = new Map<string, Waiter[]>();
  private ring: string[] = [];
  private cursor = 0;
  /** Smoothed duration of a request (ms), for Retry-After. */
  private averageMs = 50;

  constructor(limits: SchedulerLimits) {
    this.limits = limits;
  }

  stats(): SchedulerStats {
    return { inFlight: this.total, queued: this.queued, tenantsWaiting: this.ring.length };
  }

  /** Requests in flight for one scope key (tests, metrics). */
  inFlightOf(key: string): number {
    return this.inFlight.get(key) ?? 0;
  }

  /** Requests waiting in one tenant's queue. */
  queuedOf(tenant: string): number {
    return this.queues.get(tenant)?.length ?? 0;
  }

  /**
   * Resolves with a release function once the request may run; rejects with RateLimitedError
   * when it may not wait, or with `signal.reason` when the signal aborts while it waits.
   */
  acquire(tenant: string, scopes: Scope[], signal?: AbortSignal): Promise<Release> {
    const now = this.tryAcquire(tenant, scopes);
    if (now) return Promise.resolve(now);
    const own = this.queues.get(tenant);
    if ((own?.length ?? 0) >= this.limits.maxQueuedPerTenant || this.queued >= this.limits.maxQueued) {
      return Promise.reject(
        new RateLimitedError(
          "Too many requests in flight for this caller; try again shortly.",
          this.retryAfter(tenant, scopes),
          "queue_full",
        ),
      );
    }
    return new Promise<Release>((resolve, reject) => {
      const waiter: Waiter = { tenant, scopes, resolve, reject, timer: null, enqueuedAt: Date.now() };
      waiter.timer = setTimeout(() => {
        if (!this.remove(waiter)) return;
        reject(
          new RateLimitedError(
            `The request waited ${Math.round(this.limits.maxWaitMs / 1000)} s for its turn and was not started; try again shortly.`,
            this.retryAfter(tenant, scopes),
            "wait_timeout",
          ),
        );
      }, this.limits.maxWaitMs);
      waiter.timer.unref?.();
      signal?.addEventListener(
        "abort",
        () => {
          if (this.remove(waiter)) reject(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
        },
        { once: true },
      );
      let queue = own;
      if (!queue) {
        queue = [];
        this.queues.set(tenant, queue);
        this.ring.push(tenant);
      }
      queue.push(waiter);
      this.queued += 1;
    });
  }

  /** Admits the request now if it may run without waiting; null otherwise. */
  tryAcquire(tenant: string, scopes: Scope[]): Release | null {
    if (this.queues.get(tenant)?.length || !this.fits(scopes)) return null;
    return this.admit(scopes);
  }

  private fits(scopes: Scope[]): boolean {
    if (this.total >= this.limits.maxInFlight) return false;
    return scopes.every((scope) => (this.inFlight.get(scope.key) ?? 0) < scope.limit);
  }

  private admit(scopes: Scope[]): Release {
    this.total += 1;
    for (const scope of scopes) this.inFlight.set(scope.key, (this.inFlight.get(scope.key) ?? 0) + 1);
    const started = Date.now();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total -= 1;
      for (const scope of scopes) {
        const left = (this.inFlight.get(scope.key) ?? 1) - 1;
        if (left <= 0) this.inFlight.delete(scope.key);
        else this.inFlight.set(scope.key, left);
      }
      this.averageMs = this.averageMs * 0.9 + (Date.now() - started) * 0.1;
      this.pump();
    };
  }

  /** Admits waiting requests, one tenant after the other, while there is room. */
  private pump(): void {
    while (this.ring.length > 0 && this.total < this.limits.maxInFlight) {
      let served = false;
      for (let step = 0; step < this.ring.length; step++) {
        const index = (this.cursor + step) % this.ring.length;
        const tenant = this.ring[index];
        const queue = this.queues.get(tenant)!;
        const head = queue[0];
        if (!this.fits(head.scopes)) continue;
        queue.shift();
        this.queued -= 1;
        if (head.timer) clearTimeout(head.timer);
        if (queue.length === 0) {
          this.queues.delete(tenant);
          this.ring.splice(index, 1);
          this.cursor = index; // the tenant after it now sits at this index
        } else {
          this.cursor = index + 1; // its next request waits for the others' turn
        }
        if (this.ring.length > 0) this.cursor %= this.ring.length;
        else this.cursor = 0;
        head.resolve(this.admit(head.scopes));
        served = true;
        break;
      }
      if (!served) return;
    }
  }

  private remove(waiter: Waiter): boolean {
    const queue = this.queues.get(waiter.tenant);
    const at = queue?.indexOf(waiter) ?? -1;
    if (!queue || at < 0) return false;
    queue.splice(at, 1);
    this.queued -= 1;
    if (waiter.timer) clearTimeout(waiter.timer);
    if (queue.length === 0) {
      this.queues.delete(waiter.tenant);
      const index = this.ring.indexOf(waiter.tenant);
      this.ring.splice(index, 1);
      if (index < this.cursor) this.cursor -= 1;
      if (this.cursor >= this.ring.length) this.cursor = 0;
    }
    // A waiter at the head may have blocked nobody (others are served past it), so no pump needed.
    return true;
  }

  /** Seconds until this tenant's turn is likely: its backlog over its narrowest limit, at the usual pace. */
  private retryAfter(tenant: string, scopes: Scope[]): number {
    const narrowest = Math.max(1, Math.min(...scopes.map((scope) => scope.limit), this.limits.maxInFlight));
    const backlog = this.queuedOf(tenant) + 1;
    return Math.min(60, Math.max(1, Math.ceil((backlog / narrowest) * this.averageMs / 1000)));
  }
}
