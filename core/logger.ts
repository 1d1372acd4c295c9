// Structured JSON logs (pino) for the server, the worker and the database scripts.
//
// What is never logged: request bodies (register/authenticate carry passwords), the
// Authorization header, cookies, tokens, passwords, Stripe secrets and signatures. Request logs
// are built field by field from an allow-list (method, route, status, duration, request id), and
// `redact` below censors the known secret-bearing keys anywhere a caller passes an object.
// A test (test/api/logging.test.ts) and `npm run logs:check` (run by CI over the log file of the
// whole test run) grep for tokens and passwords.

import { AsyncLocalStorage } from "node:async_hooks";
import { mkdirSync, openSync, writeSync } from "node:fs";
import path from "node:path";
import pino, { type Logger } from "pino";
import { logDefaults } from "./config.ts";

export type { Logger };

/** Keys censored wherever they appear (two levels deep, plus the request/headers shapes). */
export const REDACT_PATHS = [
  "password",
  "newPassword",
  "token",
  "jwt",
  "secret",
  "apiKey",
  "authorization",
  "cookie",
  "stripeSignature",
  "connectionString",
  "*.password",
  "*.newPassword",
  "*.token",
  "*.jwt",
  "*.secret",
  "*.apiKey",
  "*.authorization",
  "*.cookie",
  "*.connectionString",
  "*.webhookSecret",
  "*.stripeSecretKey",
  "req.headers.authorization",
  "req.headers.cookie",
  'req.headers["stripe-signature"]',
  "headers.authorization",
  "headers.cookie",
  'headers["stripe-signature"]',
  "variables.password",
  "variables.input.password",
];

export interface LoggerOptions {
  level?: string;
  /** Write here (appending) instead of stdout. */
  file?: string | null;
  /** Capture lines in memory (tests). */
  stream?: { write(line: string): void };
  name?: string;
  /** With a file: also write to stdout (the server and worker processes do). */
  stdout?: boolean;
}

/** Per-request (or per-job) context: every log line made inside carries its ids. */
const context = new AsyncLocalStorage<Record<string, unknown>>();

export function withLogContext<T>(bindings: Record<string, unknown>, fn: () => T): T {
  return context.run({ ...context.getStore(), ...bindings }, fn);
}

export function currentLogContext(): Record<string, unknown> {
  return context.getStore() ?? {};
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? logDefaults().level;
  const pinoOptions: pino.LoggerOptions = {
    level,
    name: options.name ?? "tenantbase",
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    // Bind the request/job id of the surrounding async context to every line.
    mixin: () => currentLogContext(),
    serializers: { err: pino.stdSerializers.err, error: pino.stdSerializers.err },
  };
  if (options.stream) return pino(pinoOptions, options.stream);
  const file = options.file ?? logDefaults().file;
  if (file) {
    mkdirSync(path.dirname(file), { recursive: true });
    const toFile = batched(file);
    if (!options.stdout) return pino(pinoOptions, toFile);
    return pino(pinoOptions, pino.multistream([{ stream: batched(1), level }, { stream: toFile, level }]));
  }
  return pino(pinoOptions, batched(1));
}

/** Lines at or above this level (pino's warn) are written at once. */
const WRITE_AT_ONCE_LEVEL = 40;
/** The level pino writes first in every line: `{"level":30,…`. */
const LEVEL_PREFIX = '{"level":';
const BATCH_BYTES = 4096;
const BATCH_MS = 1000;

/**
 * Where lines go: collected and written in batches of about 4 KB (and at least once a second,
 * and when the process exits), one write system call per batch instead of one per line. A line
 * at warn or above is written at once with everything before it, before the call that logged it
 * returns: nothing at warn and above waits in memory, and a crash can lose at most the last
 * second of info lines. Writes are synchronous, as pino's default destination's are: order is
 * kept, and nothing is in flight at exit.
 */
function batched(dest: string | number): { write(line: string): void; flushSync(): void } {
  const fd = typeof dest === "number" ? dest : openSync(dest, "a");
  let pending: string[] = [];
  let bytes = 0;
  const flushSync = () => {
    if (pending.length === 0) return;
    let buffer = Buffer.from(pending.join(""));
    pending = [];
    bytes = 0;
    while (buffer.length > 0) {
      try {
        buffer = buffer.subarray(writeSync(fd, buffer));
      } catch (error) {
        // A non-blocking pipe that is full (stdout read slowly): wait a moment and go on.
        if ((error as { code?: string }).code !== "EAGAIN") throw error;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
      }
    }
  };
  setInterval(flushSync, BATCH_MS).unref();
  process.once("exit", flushSync);
  return {
    write(line: string) {
      pending.push(line);
      bytes += line.length;
      if (bytes >= BATCH_BYTES) return flushSync();
      if (line.startsWith(LEVEL_PREFIX) && Number(line.slice(LEVEL_PREFIX.length, LEVEL_PREFIX.length + 2)) >= WRITE_AT_ONCE_LEVEL) flushSync();
    },
    flushSync,
  };
}

/**
 * A logger for lines built field by field from an allow-list (the per-request line of
 * server/http-operations.ts): the same destination, level and bindings, without `redact`.
 * Redaction walks every line for the paths above (its wildcards visit every key) and was 7 µs
 * of the 10 µs a request line cost (docs/benchmarks.md); an allow-listed line has none of them.
 * Anything carrying caller-provided objects keeps the redacting logger.
 */
export function allowListLogger(logger: Logger): Logger {
  return logger.child({}, { redact: { paths: [], censor: "[redacted]" } });
}

let root: Logger | null = null;

/** The process-wide logger (configured from LOG_LEVEL / LOG_FILE). */
export function rootLogger(): Logger {
  root ??= createLogger();
  return root;
}

export function setRootLogger(logger: Logger): void {
  root = logger;
}
