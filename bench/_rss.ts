/**
 * Peak resident memory of the benchmark's processes (not a benchmark itself: bench/run.ts skips
 * files starting with "_"). Linux keeps each process's high-water mark in /proc/<pid>/status
 * (VmHWM), so one read at the end of a run gives the peak, with no sampling to miss it.
 */
import { readFileSync } from "node:fs"
import { fmt, result } from "./_support.js"

/** Peak RSS in MB of `pid` (VmHWM), NaN when unreadable (process gone, not Linux). */
export const peakRssMb = (pid: number | undefined): number => {
  if (pid === undefined) return Number.NaN
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return m ? Number(m[1]) / 1024 : Number.NaN
  } catch {
    return Number.NaN
  }
}

/** Resident memory in MB of `pid` now (VmRSS), NaN when unreadable. */
export const currentRssMb = (pid: number | undefined): number => {
  if (pid === undefined) return Number.NaN
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return m ? Number(m[1]) / 1024 : Number.NaN
  } catch {
    return Number.NaN
  }
}

/** Print and record (RESULT lines) the peak RSS of this process, each executor and nats-server. */
export const reportPeakRss = (executors: ReadonlyArray<{ pid?: number | undefined }>, natsPid: number | undefined): void => {
  const self = peakRssMb(process.pid)
  const execs = executors.map((c) => peakRssMb(c.pid))
  const nats = peakRssMb(natsPid)
  console.log(`peak RSS: this process (actors) ${fmt(self)} MB; executors ${execs.map((x) => `${fmt(x)} MB`).join(", ") || "none"}; nats-server ${fmt(nats)} MB`)
  result("pipeline_peak_rss_actors_mb", self, "bounded")
  result("pipeline_peak_rss_executor_max_mb", execs.length > 0 ? Math.max(...execs) : "none", "bounded")
  result("pipeline_peak_rss_nats_mb", nats, "bounded")
}
