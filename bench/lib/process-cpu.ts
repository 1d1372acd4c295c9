// CPU time (user + system, µs) a process has used so far, read from /proc (Linux); null elsewhere.
// bench:api compares the servers' CPU per request with it, whatever else the machine is running.

import { readFileSync } from "node:fs";

const TICK_MICROS = 10_000; // USER_HZ is 100 on Linux

export function processCpuMicros(pid: number): number | null {
  try {
    // fields after "(comm) ": state is the 1st, utime the 12th, stime the 13th
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) * TICK_MICROS;
  } catch {
    return null;
  }
}
