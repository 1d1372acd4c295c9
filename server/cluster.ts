// WEB_CONCURRENCY=N: `npm start` serves HTTP from N processes (node:cluster) so every core works.
// The primary does everything that must happen once — configuration, the database (embedded or
// not), migrations, the job worker — then forks N server processes and hands them the connection
// URLs and the JWT secret over IPC (never through the environment or a file). The server
// processes share the listening port; the primary only supervises: a server that dies
// unexpectedly is replaced, and on SIGTERM/SIGINT every server finishes its in-flight requests
// and exits before the primary stops the job worker and the database.

import cluster, { type Worker } from "node:cluster";
import type { Logger } from "../core/logger.ts";

/** What a server process needs from the primary. */
export interface ServeMessage {
  type: "tenantbase:serve";
  ownerUrl: string;
  authUrl: string;
  /** Owner URL straight to PostgreSQL for LISTEN (subscriptions). */
  listenUrl: string;
  jwtSecret: string;
}

export interface WebProcesses {
  /** Tells every server process to shut down gracefully and waits until all have exited. */
  stop(): Promise<void>;
  /** Last resort at the shutdown deadline. */
  kill(): void;
}

export async function startWebProcesses(count: number, message: ServeMessage, logger: Logger): Promise<WebProcesses> {
  // The processes accept connections themselves from the shared socket (SCHED_NONE), not through
  // the primary's round robin. With round robin, a connection the primary handed to the last
  // server process just as it closed its listener (SIGTERM) went back to the primary after the
  // primary had dropped its queue: nobody answered or closed it until the primary exited (the
  // client hung through the whole drain; reproduced in 2 of 4 runs, see
  // test/e2e/graceful-shutdown.test.ts). With SCHED_NONE the kernel keeps unaccepted connections
  // and resets them when the last listener closes, and an idle process, waiting in accept,
  // takes the next connection before a busy one.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  let stopping = false;
  const live = new Set<Worker>();

  const fork = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const worker = cluster.fork();
      let listening = false;
      live.add(worker);
      worker.once("online", () => worker.send(message));
      worker.on("message", (m: { type?: string }) => {
        if (m?.type !== "tenantbase:listening") return;
        listening = true;
        resolve();
      });
      worker.once("exit", (code, signal) => {
        live.delete(worker);
        if (stopping) return;
        if (!listening) return reject(new Error(`a server process exited during start-up (${signal ?? `code ${code}`})`));
        logger.error({ pid: worker.process.pid, code, signal }, "server process died; starting another");
        fork().catch((error) => logger.error({ err: error }, "could not replace a server process"));
      });
    });

  await Promise.all(Array.from({ length: count }, fork));

  return {
    async stop() {
      stopping = true;
      const exits = [...live].map((worker) => new Promise<void>((resolve) => {
        if (worker.isDead()) return resolve();
        worker.once("exit", () => resolve());
        worker.process.kill("SIGTERM");
      }));
      await Promise.all(exits);
    },
    kill() {
      stopping = true;
      for (const worker of live) worker.process.kill("SIGKILL");
    },
  };
}

/** In a server process: waits for the primary's message. */
export function serveMessage(): Promise<ServeMessage> {
  return new Promise((resolve) => {
    const onMessage = (m: ServeMessage) => {
      if (m?.type !== "tenantbase:serve") return;
      process.off("message", onMessage);
      resolve(m);
    };
    process.on("message", onMessage);
  });
}

export function reportListening(): void {
  process.send?.({ type: "tenantbase:listening" });
}

export const isServerProcess = cluster.isWorker;
