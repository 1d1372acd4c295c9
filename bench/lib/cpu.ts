// CPU time of process trees, from /proc (Linux). On a machine the load generator, the server, the
// workers and PostgreSQL share, CPU per request says who spends the cores; a profile's "non-idle"
// share does not (it counts a thread waiting for the CPU inside a syscall as busy). Elsewhere
// (no /proc) every reading is null and the benches print nothing.

import { readdirSync, readFileSync } from "node:fs";

const TICK_MS = 10; // USER_HZ is 100 on every Linux this runs on

interface Stat {
  ppid: number;
  /** utime + stime of the process, and of its children it has waited for (cutime + cstime), ms */
  self: number;
  reaped: number;
}

function stat(pid: number): Stat | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    const n = (i: number) => Number(fields[i - 3]);
    return { ppid: n(4), self: (n(14) + n(15)) * TICK_MS, reaped: (n(16) + n(17)) * TICK_MS };
  } catch {
    return null;
  }
}

/** CPU ms used so far by each root's process tree (live descendants and reaped children), or null. */
export function treeCpuMs(roots: number[]): (number | null)[] {
  let pids: number[];
  try {
    pids = readdirSync("/proc").filter((name) => /^\d+$/.test(name)).map(Number);
  } catch {
    return roots.map(() => null);
  }
  const stats = new Map<number, Stat>();
  for (const pid of pids) {
    const s = stat(pid);
    if (s) stats.set(pid, s);
  }
  const children = new Map<number, number[]>();
  for (const [pid, s] of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), pid]);
  return roots.map((root) => {
    if (!stats.has(root)) return null;
    let total = 0;
    const stack = [root];
    while (stack.length > 0) {
      const pid = stack.pop()!;
      const s = stats.get(pid);
      if (!s) continue;
      total += s.self + s.reaped;
      stack.push(...(children.get(pid) ?? []));
    }
    return total;
  });
}

/** The postmaster's pid of a local PostgreSQL, found through a backend of it; null if not local. */
export function postmasterOf(backendPid: number): number | null {
  return stat(backendPid)?.ppid ?? null;
}

/**
 * CPU time of one process so far, µs, at the scheduler's nanosecond resolution
 * (/proc/<pid>/schedstat), or null. For a short measurement of one backend, where /proc's 10 ms
 * ticks would be most of the difference.
 */
export function processCpuUs(pid: number): number | null {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[0]) / 1000;
  } catch {
    return null;
  }
}
