/**
 * Start-up of the `tickflow` command as users run it (bin/tickflow.mjs → dist/, the build):
 *
 * - cli_help_ms: wall time of `tickflow --help`, p50 of RUNS runs. Peer, same run: `node -e 0`
 *   (the floor: a Node process that does nothing), and the same command from source through
 *   tsx (TICKFLOW_SOURCE=1: what every command cost before the build).
 * - executor_ready_ms: process start → the executor pulling: from spawn to its log line
 *   "executor actor consuming executor" (logged right before the first pull on the shared
 *   durable consumer), against a private nats-server with the topology in place.
 *
 * dist/ is built first when it is missing or older than src/ (bin would fall back to source).
 */
import "./_support.js"
import { spawn } from "node:child_process"
import { existsSync, readdirSync, statSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { busLayer } from "../src/streams/bus.js"
import { childEnv, embeddedSettings, Nats, NatsSettings } from "../src/streams/connection.js"
import { Layer } from "effect"
import { fmt, median, printResults, procCpuSeconds, result, runBenchmark } from "./_support.js"

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..")
const BIN = join(ROOT, "bin", "tickflow.mjs")
const RUNS = Number(process.env.STARTUP_RUNS ?? 11)
const READY_LINE = "executor actor consuming executor"

const newest = (dir: string): number =>
  readdirSync(dir, { withFileTypes: true }).reduce((t, e) => Math.max(t, e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs), 0)

/** CPU milliseconds (user + system, /proc) the child had used when `until` matched; NaN off Linux. */
const readyCpuMs: number[] = []

/** Spawn, wait for exit (or for `until` to match stderr, then kill); milliseconds from spawn. */
const timed = (args: ReadonlyArray<string>, env: Record<string, string> = {}, until?: string) =>
  new Promise<number>((res, rej) => {
    const t0 = performance.now()
    const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] })
    let err = ""
    let found = false
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString()
      if (until && !found && err.includes(until)) {
        found = true
        const ms = performance.now() - t0
        readyCpuMs.push(procCpuSeconds(child.pid!) * 1000)
        child.once("exit", () => res(ms))
        child.kill("SIGTERM")
      }
    })
    child.once("error", rej)
    child.once("exit", (code) => {
      if (found) return
      if (until) rej(new Error(`${args.join(" ")} exited (${code}) before "${until}":\n${err.slice(-2000)}`))
      else if (code !== 0) rej(new Error(`${args.join(" ")} exited with ${code}:\n${err.slice(-2000)}`))
      else res(performance.now() - t0)
    })
  })

const series = async (n: number, run: () => Promise<number>) => {
  const xs: number[] = []
  for (let i = 0; i < n; i++) xs.push(await run())
  return xs
}

const program = Effect.gen(function* () {
  if (!existsSync(join(ROOT, "dist", "BUILD")) || statSync(join(ROOT, "dist", "BUILD")).mtimeMs < newest(join(ROOT, "src"))) {
    console.log("dist/ missing or older than src/: building")
    yield* Effect.promise(() => timed([join(ROOT, "scripts", "build.mjs")]))
  }

  // Interleaved, so a burst of load on the machine hits every variant alike.
  const help: number[] = []
  const floor: number[] = []
  for (let i = 0; i < RUNS; i++) {
    floor.push(yield* Effect.promise(() => timed(["-e", "0"])))
    help.push(yield* Effect.promise(() => timed([BIN, "--help"])))
  }
  const fromSource = yield* Effect.promise(() => series(Math.min(RUNS, 5), () => timed([BIN, "--help"], { TICKFLOW_SOURCE: "1" })))
  console.log(`tickflow --help: p50 ${fmt(median(help))} ms (min ${fmt(Math.min(...help))}); node -e 0: p50 ${fmt(median(floor))} ms; from source through tsx: p50 ${fmt(median(fromSource))} ms`)

  const settings = yield* NatsSettings
  const executor = settings.embedded!.credentials.executor
  const env = { ...childEnv(settings), NATS_USER: executor.user, NATS_PASSWORD: executor.pass, TICKFLOW_LOG_LEVEL: "info", TICKFLOW_LOG_FORMAT: "json" }
  const ready = yield* Effect.promise(() => series(Math.min(RUNS, 7), () => timed([BIN, "executor"], env, READY_LINE)))
  const readyCpu = median(readyCpuMs.splice(0))
  const readySource = yield* Effect.promise(() => series(3, () => timed([BIN, "executor"], { ...env, TICKFLOW_SOURCE: "1" }, READY_LINE)))
  console.log(
    `executor start → pulling: p50 ${fmt(median(ready))} ms (min ${fmt(Math.min(...ready))}, CPU ${fmt(readyCpu)} ms); from source through tsx: p50 ${fmt(median(readySource))} ms (CPU ${fmt(median(readyCpuMs))} ms)`
  )

  result("cli_help_ms", median(help), 300)
  result("cli_help_node_floor_ms", median(floor), "peer")
  // what tickflow adds to a bare Node start: the part of cli_help_ms that is ours, and less
  // sensitive to a loaded machine than the absolute figure
  result("cli_help_over_node_ms", median(help) - median(floor), "info")
  result("executor_ready_ms", median(ready), 1000)
  result("executor_ready_cpu_ms", readyCpu, "info")
  printResults()
}).pipe(Effect.provide(busLayer().pipe(Layer.provideMerge(Nats.Default), Layer.provideMerge(embeddedSettings()))), Effect.scoped)

runBenchmark(program)
