/**
 * Helpers shared by the bus and pipeline benchmarks (not a benchmark itself: bench/run.ts skips
 * files starting with "_").
 *
 * Import this module FIRST in a benchmark: it sets TICKFLOW_LOG_LEVEL=warn (unless set) before
 * src/logging.ts reads it, and the executor child processes inherit it.
 */
import { readdirSync, readFileSync } from "node:fs"
import { Cause, Effect, Exit, Fiber } from "effect"

process.env.TICKFLOW_LOG_LEVEL ??= "warn"
// Machine-readable stderr from children: pino-pretty would spawn a transport thread per process.
process.env.TICKFLOW_LOG_FORMAT ??= "json"

export const median = (xs: ReadonlyArray<number>): number => {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** Nearest-rank percentile, p in [0, 100]. */
export const percentile = (xs: ReadonlyArray<number>, p: number): number => {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]
}

/** 12345.6 → "12,346"; small values keep 3 significant digits. */
export const fmt = (x: number): string =>
  !Number.isFinite(x) ? String(x) : Math.abs(x) >= 100 ? Math.round(x).toLocaleString("en") : x.toPrecision(3)

export const gc = (): void => (globalThis as { gc?: () => void }).gc?.()

const results: string[] = []
/** Collect a `RESULT <name> <value> goal <goal>` line; all are printed last by `printResults`. */
export const result = (name: string, value: number | string, goal: number | string): void => {
  const v = typeof value === "number" ? String(Math.abs(value) >= 100 ? Math.round(value) : Number(value.toPrecision(3))) : value
  results.push(`RESULT ${name} ${v} goal ${goal}`)
}
export const printResults = (): void => {
  console.log("")
  for (const line of results) console.log(line)
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); NaN elsewhere. */
const CLK_TCK = 100
export const procCpuSeconds = (pid: number): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // fields after the ")" of the command name: state is field 3, utime 14, stime 15
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK
  } catch {
    return Number.NaN
  }
}
/** CPU seconds of a process so far: its main thread (`main`) and all its other threads (`other`: GC, compiler, I/O pool); empty elsewhere than Linux. */
export const threadCpuSeconds = (pid: number): Map<string, number> => {
  const out = new Map<string, number>()
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8")
      const name = tid === String(pid) ? "main" : "other"
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      out.set(name, (out.get(name) ?? 0) + (Number(rest[11]) + Number(rest[12])) / CLK_TCK)
    }
  } catch {
    // gone, or not Linux
  }
  return out
}
/**
 * Core-seconds the whole machine has spent busy (every process, user + nice + system + irq +
 * softirq + steal) and idle so far, from /proc/stat (Linux); NaN elsewhere. The difference of two
 * snapshots, minus what our own processes used, is what other work on the machine took.
 */
export const machineCpuSeconds = (): { busy: number; idle: number } => {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] // "cpu  user nice system idle iowait irq softirq steal ..."
    const f = line.trim().split(/\s+/).slice(1).map(Number)
    return { busy: (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / CLK_TCK, idle: (f[3] + f[4]) / CLK_TCK }
  } catch {
    return { busy: Number.NaN, idle: Number.NaN }
  }
}
export const selfCpuSeconds = (): number => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

/**
 * Run a benchmark's Effect (which owns its resources through scopes) to completion. SIGINT /
 * SIGTERM interrupt it, so scope finalizers still stop servers, kill children and remove temp
 * dirs. Exit code 1 on failure.
 */
export const runBenchmark = (program: Effect.Effect<void, unknown, never>): void => {
  const fiber = Effect.runFork(program)
  let signalled = false
  const onSignal = (sig: string) => () => {
    if (signalled) return
    signalled = true
    console.error(`bench: ${sig}, cleaning up...`)
    Effect.runFork(Fiber.interrupt(fiber))
  }
  const onInt = onSignal("SIGINT")
  const onTerm = onSignal("SIGTERM")
  process.on("SIGINT", onInt)
  process.on("SIGTERM", onTerm)
  fiber.addObserver((exit) => {
    process.off("SIGINT", onInt)
    process.off("SIGTERM", onTerm)
    if (Exit.isFailure(exit)) {
      if (!Cause.isInterruptedOnly(exit.cause)) console.error(Cause.pretty(exit.cause))
      process.exitCode = 1
    }
    // Leftover handles (a NATS socket being drained, a timer) must not keep a finished benchmark alive.
    setTimeout(() => process.exit(), 200).unref()
  })
}
