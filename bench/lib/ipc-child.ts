// A bench helper process driven over IPC (as bench/lib/server.ts drives server-child.ts): fork a
// script, send it {type, ...} requests and await its answer of the same type. The fairness bench
// runs each attack's load generator this way, so that the process it measures from (the witness)
// has an event loop of its own.

import { fork, type ChildProcess } from "node:child_process";

export interface IpcChild {
  pid: number;
  /** Sends {type, ...payload} and resolves with the child's message of that type (rejects on {type, error} or exit). */
  call<T = any>(type: string, payload?: Record<string, unknown>): Promise<T>;
  /** Ends the child (SIGTERM) and waits for it. */
  stop(): Promise<void>;
}

export function forkIpcChild(script: string, env: NodeJS.ProcessEnv = process.env): IpcChild {
  const child: ChildProcess = fork(script, [], { env, stdio: ["ignore", "inherit", "inherit", "ipc"] });
  let exited = false;
  child.once("exit", () => (exited = true));
  return {
    pid: child.pid!,
    call(type, payload = {}) {
      return new Promise((resolve, reject) => {
        const onMessage = (m: any) => {
          if (m?.type !== type) return;
          child.off("message", onMessage);
          child.off("exit", onExit);
          if (m.error) reject(new Error(`${type}: ${m.error}`));
          else resolve(m);
        };
        const onExit = (code: number | null) => {
          child.off("message", onMessage);
          reject(new Error(`bench child exited with ${code} during ${type}`));
        };
        child.on("message", onMessage);
        child.once("exit", onExit);
        child.send({ type, ...payload });
      });
    },
    async stop() {
      if (exited) return;
      const done = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await done;
    },
  };
}

/** In the child: answers each request type with handlers[type](message) (errors go back as {type, error}). */
export function serveIpc(handlers: Record<string, (message: any) => Promise<Record<string, unknown> | void>>): void {
  process.on("message", async (m: any) => {
    const handler = handlers[m?.type];
    if (!handler) return;
    try {
      process.send!({ type: m.type, ...((await handler(m)) ?? {}) });
    } catch (error) {
      process.send!({ type: m.type, error: (error as Error).message });
    }
  });
  process.on("SIGTERM", () => process.exit(0));
}
