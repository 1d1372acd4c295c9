// Structured JSON logs (pino) for the server, the worker and the database scripts.
//
// What is never logged: request bodies (register/authenticate carry passwords), the
// Authorization header, cookies, tokens, passwords, Stripe secrets and signatures. Request logs
// are built field by field from an allow-list (method, route, status, duration, request id), and
// `redact` below censors the known secret-bearing keys anywhere a caller passes an object.
// A test (test/api/logging.test.ts) and `npm run logs:check` (run by CI over the log file of the
// whole test run) grep for tokens and passwords.

import { AsyncLocalStorage } from "node:async_hooks";
import { mkdirSync } from "node:fs";
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
    const toFile = pino.destination({ dest: file, append: true, sync: true, mkdir: true });
    if (!options.stdout) return pino(pinoOptions, toFile);
    return pino(pinoOptions, pino.multistream([{ stream: pino.destination(1), level }, { stream: toFile, level }]));
  }
  return pino(pinoOptions);
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
