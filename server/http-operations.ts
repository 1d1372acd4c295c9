// The operational layer of the HTTP server (wired in by server/app.ts): request ids and
// request logs, Prometheus timing, security headers, CORS, request-size and batching limits,
// and a PostGraphile plugin for GraphQL metrics, query limits, the request id in the database
// and a nonce-based CSP that lets Ruru's inline scripts run.

import { randomBytes, randomUUID } from "node:crypto";
import type { ErrorRequestHandler, Request, RequestHandler, Response } from "express";
import express from "express";
import cors from "cors";
import helmet from "helmet";
import type { Logger } from "../core/logger.ts";
import { allowListLogger, withLogContext } from "../core/logger.ts";
import type { Metrics } from "./metrics.ts";
import { validationRulesFor, type GraphQLLimits } from "./graphql-limits.ts";
import { BUSINESS_ERROR_SQLSTATE } from "./errors.ts";
import type { GraphQLError } from "postgraphile/graphql";

declare global {
  namespace Express {
    interface Request {
      requestId?: string;
      graphqlOperationName?: string | null;
      graphqlExecuted?: boolean;
      /** The body was an array of one operation: answered as an array of one result. */
      graphqlBatchOfOne?: boolean;
    }
  }
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** Route label for metrics and logs: a fixed set, so a scanner cannot explode the series. */
export function routeLabel(path: string): string {
  if (path === "/graphql" || path.startsWith("/graphql/")) return "/graphql";
  if (path === "/graphiql") return "/graphiql";
  if (path.startsWith("/ruru-static/")) return "/ruru-static";
  if (path.startsWith("/webhooks/")) return path.split("/").slice(0, 3).join("/");
  if (path === "/healthz" || path === "/readyz" || path === "/metrics") return path;
  return "other";
}

/**
 * Gives every request an id (a sane incoming X-Request-Id is kept, so a proxy's id carries
 * through), returns it in X-Request-Id, binds it to every log line made while serving the
 * request, and logs one line per request from an allow-list of fields: never headers, never
 * bodies (tokens and passwords live there).
 */
export function requestContext(logger: Logger, metrics: Metrics): RequestHandler {
  // The line below is built from the allow-list alone: nothing in it for `redact` to find.
  const requestLog = allowListLogger(logger);
  return (req, res, next) => {
    const incoming = req.headers["x-request-id"];
    const requestId = typeof incoming === "string" && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    req.requestId = requestId;
    res.setHeader("X-Request-Id", requestId);
    const started = process.hrtime.bigint();
    res.on("finish", () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = routeLabel(req.path);
      metrics.httpDuration.observe({ method: req.method, route, status: String(res.statusCode) }, seconds);
      if (route === "/metrics" || route === "/healthz" || route === "/readyz" || route === "/ruru-static") return;
      const line = {
        requestId,
        method: req.method,
        route,
        status: res.statusCode,
        durationMs: Math.round(seconds * 1000),
        ...(req.graphqlOperationName !== undefined ? { operation: req.graphqlOperationName ?? "anonymous" } : {}),
      };
      if (res.statusCode >= 500) requestLog.error(line, "request failed");
      else requestLog.info(line, "request");
    });
    withLogContext({ requestId }, next);
  };
}

/**
 * Security headers. The API itself serves JSON: the strictest policy. Ruru (/graphiql) is an
 * HTML page with inline <script> tags and Monaco web workers: it gets a per-request nonce for
 * its scripts (added by the plugin below), same-origin workers and connections, and inline
 * styles (Monaco sets style attributes).
 */
export function securityHeaders(graphiqlPath: string): RequestHandler {
  const strict = helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"] },
    },
    crossOriginResourcePolicy: { policy: "same-origin" },
  });
  const forRuru = helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'", (_req, res) => `'nonce-${(res as Response).locals.cspNonce}'`],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", "data:"],
        fontSrc: ["'self'", "data:"],
        workerSrc: ["'self'", "blob:"],
        connectSrc: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
        formAction: ["'none'"],
        objectSrc: ["'none'"],
      },
    },
  });
  return (req, res, next) => {
    if (req.path === graphiqlPath || req.path.startsWith("/ruru-static/")) {
      res.locals.cspNonce = randomBytes(16).toString("base64");
      return forRuru(req, res, next);
    }
    return strict(req, res, next);
  };
}

/** CORS for the configured origins only; with none configured, no CORS headers at all. */
export function corsFor(origins: string[]): RequestHandler {
  if (origins.length === 0) return (_req, _res, next) => next();
  return cors({
    origin: origins,
    methods: ["GET", "POST", "OPTIONS"],
    allowedHeaders: ["Authorization", "Content-Type", "X-Request-Id"],
    exposedHeaders: ["X-Request-Id"],
    maxAge: 600,
  });
}

export function graphqlError(res: Response, status: number, code: string, message: string): void {
  res.status(status).json({ errors: [{ message, extensions: { code } }] });
}

/**
 * Body handling in front of /graphql: JSON parsed here with the size limit (HTTP 413 above it)
 * and batched (array) bodies of more than one operation refused: one operation per request, so
 * every limit above applies to the whole request. An array of exactly one operation (what a
 * batching client such as Apollo's BatchHttpLink sends when only one is pending) is served as
 * that operation and answered as an array of its one result.
 */
export function graphqlBody(limits: GraphQLLimits): RequestHandler[] {
  return [
    express.json({ limit: limits.maxBodyBytes, type: "application/json" }),
    (req, res, next) => {
      if (Array.isArray(req.body)) {
        if (req.body.length === 1 && req.body[0] !== null && typeof req.body[0] === "object" && !Array.isArray(req.body[0])) {
          req.body = req.body[0];
          req.graphqlBatchOfOne = true;
          return next();
        }
        return graphqlError(
          res,
          400,
          "BATCH_NOT_SUPPORTED",
          `Batched requests are not supported: send one operation per request (an array of exactly one is accepted), got an array of ${req.body.length}.`,
        );
      }
      next();
    },
  ];
}

/** A grafserv result for an array of one: the same answer inside an array (status and headers kept). */
function asBatchOfOne<R extends { type: string }>(result: R): R {
  if (result.type === "buffer") {
    const buffered = result as unknown as { buffer: Buffer; headers: Record<string, string> };
    const buffer = Buffer.concat([Buffer.from("["), buffered.buffer, Buffer.from("]")]);
    return { ...result, buffer, headers: { ...buffered.headers, "content-length": String(buffer.length) } };
  }
  if (result.type === "json") return { ...result, json: [(result as unknown as { json: unknown }).json] };
  return result;
}

export function bodyErrors(limits: GraphQLLimits, logger: Logger): ErrorRequestHandler {
  return (error, req, res, next) => {
    if (res.headersSent) return next(error);
    const type = (error as { type?: string }).type;
    if (type === "entity.too.large" || (error as { status?: number }).status === 413) {
      return graphqlError(res, 413, "REQUEST_TOO_LARGE", `Request body is larger than the limit of ${limits.maxBodyBytes} bytes.`);
    }
    if (type === "entity.parse.failed") {
      return graphqlError(res, 400, "INVALID_JSON", "Request body is not valid JSON.");
    }
    logger.error({ err: error, requestId: req.requestId }, "unhandled error");
    return graphqlError(res, 500, "INTERNAL", "An internal error occurred.");
  };
}

function operationNameOf(body: { operationName?: unknown; query?: unknown }): string | null {
  if (typeof body.operationName === "string" && body.operationName) return body.operationName;
  if (typeof body.query !== "string") return null;
  const match = /^\s*(?:query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)/m.exec(body.query);
  return match ? match[1] : null;
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return value != null && typeof (value as any)[Symbol.asyncIterator] === "function";
}

/** The code the client will see: a business code from SQL, a limit's code, else INTERNAL. */
function errorCode(error: GraphQLError): string {
  const code = error.extensions?.code;
  if (typeof code === "string") return code;
  const original = error.originalError as { code?: unknown; detail?: unknown } | undefined;
  if (original?.code === BUSINESS_ERROR_SQLSTATE && typeof original.detail === "string") return original.detail;
  return original ? "INTERNAL" : "GRAPHQL_ERROR";
}

function expressRequest(digest: any): Request | undefined {
  return digest?.requestContext?.expressv4?.req;
}

/** The PostGraphile side of operations: limits, metrics, request id into SQL, Ruru's nonce. */
export function operationsPlugin(options: { limits: GraphQLLimits; metrics: Metrics }): GraphileConfig.Plugin {
  const { metrics } = options;
  return {
    name: "TenantbaseOperationsPlugin",
    version: "1.0.0",
    grafserv: {
      middleware: {
        setPreset(next, event) {
          event.validationRules.push(...validationRulesFor(options.limits));
          return next();
        },
        processGraphQLRequestBody(next, event) {
          const req = expressRequest(event.request);
          if (req) req.graphqlOperationName = operationNameOf(event.body as any);
          return next();
        },
        // Requests refused before execution (parse/validation errors, limits, bad bodies): their
        // response is small, read back for the error codes. Executed ones are counted below.
        async processRequest(next, event) {
          const req = expressRequest(event.requestDigest);
          const answer = await next();
          // (the codes below are read from the answer before it is put in its array)
          const result = answer && req?.graphqlBatchOfOne ? asBatchOfOne(answer) : answer;
          if (!answer || !result || !req || req.graphqlOperationName === undefined || req.graphqlExecuted) return result;
          let codes: string[] = ["BAD_REQUEST"];
          if (answer.type === "buffer") {
            try {
              const body = JSON.parse(answer.buffer.toString("utf8")) as { errors?: { extensions?: { code?: unknown } }[] };
              codes = (body.errors ?? []).map((e) => (typeof e.extensions?.code === "string" ? e.extensions.code : "GRAPHQL_VALIDATION_FAILED"));
            } catch {
              // not JSON: keep BAD_REQUEST
            }
          }
          metrics.graphqlOperations.inc({ operation: metrics.operationLabel(req.graphqlOperationName), outcome: "rejected" });
          for (const code of codes) metrics.graphqlErrors.inc({ code });
          return result;
        },
        async ruruHTML(next, event) {
          const html = await next();
          const res = (event.request as any)?.requestContext?.expressv4?.res as Response | undefined;
          const nonce = res?.locals.cspNonce;
          return nonce ? html.replace(/<script(?=[\s>])/g, `<script nonce="${nonce}"`) : html;
        },
      },
    },
    grafast: {
      middleware: {
        async execute(next, event) {
          const result = await next();
          const req = (event.args.requestContext as any)?.expressv4?.req as Request | undefined;
          if (!req || isAsyncIterable(result)) return result;
          req.graphqlExecuted = true;
          const errors = (result as { errors?: readonly GraphQLError[] }).errors ?? [];
          // "partial": some root field answered despite errors; "error": none did.
          const data = (result as { data?: Record<string, unknown> | string | null }).data;
          // (with outputDataAsString, data arrives as its JSON text)
          const hasData =
            typeof data === "string"
              ? !/^\{(?:"[_A-Za-z][_0-9A-Za-z]*":null,?)*\}$/.test(data)
              : data != null && Object.values(data).some((value) => value != null);
          const outcome = errors.length === 0 ? "success" : hasData ? "partial" : "error";
          metrics.graphqlOperations.inc({ operation: metrics.operationLabel(req.graphqlOperationName), outcome });
          for (const error of errors) metrics.graphqlErrors.inc({ code: errorCode(error) });
          return result;
        },
        // The request id reaches SQL as a transaction-local setting, so a job queued in the same
        // transaction can carry it: current_setting('tenantbase.request_id', true).
        async prepareArgs(next, event) {
          const args = await next();
          const req = (args.requestContext as any)?.expressv4?.req as Request | undefined;
          const context = args.contextValue as { pgSettings?: Record<string, string> };
          if (req?.requestId && context.pgSettings) {
            context.pgSettings = { ...context.pgSettings, "tenantbase.request_id": req.requestId };
          }
          return args;
        },
      },
    },
  };
}
