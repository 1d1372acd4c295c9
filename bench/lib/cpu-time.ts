// CPU time (user + system) used by this benchmark's own processes: this process and its
// descendants (the API server and its cluster workers) and the benchmark's PostgreSQL (the
// postmaster and every backend under it), read from /proc. On a machine shared with other work,
// requests per second mostly measure how often a process gets a core; CPU milliseconds per
// request measure what a request costs, which is what decides throughput on a machine of one's own.

import { existsSync, readdirSync, readFileSync } from "node:fs";

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

function stat(pid: string): { ppid: number; ticks: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    // fields[0] is state (field 3); ppid is field 4, utime 14, stime 15
    return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return null;
  }
}

/** A sampler of the CPU milliseconds used so far by the processes under these roots (and the roots). */
export function cpuSampler(rootPids: number[]): (() => number) | null {
  if (!existsSync("/proc/self/stat")) return null;
  return () => {
    const all = new Map<number, { ppid: number; ticks: number }>();
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      const s = stat(entry);
      if (s) all.set(Number(entry), s);
    }
    const children = new Map<number, number[]>();
    for (const [pid, s] of all) children.set(s.ppid, [...(children.get(s.ppid) ?? []), pid]);
    let ticks = 0;
    const seen = new Set<number>();
    const walk = (pid: number) => {
      if (seen.has(pid)) return;
      seen.add(pid);
      ticks += all.get(pid)?.ticks ?? 0;
      for (const child of children.get(pid) ?? []) walk(child);
    };
    for (const pid of rootPids) walk(pid);
    return (ticks * 1000) / TICKS_PER_SECOND;
  };
}

/** The postmaster's pid of an embedded cluster's data directory, if it runs. */
export function postmasterPid(dataDir: string): number | null {
  try {
    return Number(readFileSync(`${dataDir}/postmaster.pid`, "utf8").split("\n")[0]);
  } catch {
    return null;
  }
}
