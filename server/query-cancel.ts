// A client that hangs up mid-request leaves nobody to read the answer: its running statement is
// cancelled rather than left to hold a connection and a core (an 84 KB prompt search ran for
// minutes after its client was gone). Each GraphQL request names its transactions with a random
// application_name (a transaction-local setting, server/preset.ts); when the response closes
// before it was finished, the statement running under that name is cancelled.
//
// The name is random and server-made, never the client's X-Request-Id: a client choosing
// another request's name could otherwise cancel that request's query.

import { randomUUID } from "node:crypto";
import type { RequestHandler } from "express";
import type pg from "pg";
import type { Logger } from "../core/logger.ts";

export const APPLICATION_NAME_PREFIX = "tb-request:";

/**
 * @param authPool app_authenticator connections: pg_cancel_backend may signal backends of the
 *   same login role, which is what every request transaction runs on.
 */
export function cancelOnDisconnect(authPool: pg.Pool, logger: Logger): RequestHandler {
  return (req, res, next) => {
    const name = `${APPLICATION_NAME_PREFIX}${randomUUID()}`;
    req.pgApplicationName = name;
    res.on("close", () => {
      if (res.writableFinished) return;
      authPool
        .query("select pg_cancel_backend(pid) as cancelled from pg_stat_activity where application_name = $1 and state = 'active'", [name])
        .then(({ rows }) => {
          if (rows.length > 0) logger.info({ requestId: req.requestId, cancelled: rows.length }, "client disconnected: query cancelled");
        })
        .catch((error) => logger.warn({ err: error, requestId: req.requestId }, "could not cancel the query of a disconnected client"));
    });
    next();
  };
}
