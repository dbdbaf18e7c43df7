/**
 * Where the CPU of a small sweep goes, actor by actor: every actor in its own process
 * (`tickflow actors --only <actor>`), two executors, an embedded nats-server, and the 10,000
 * daily scenarios of bench/pipeline.ts (d) run through them RUNS times. Each run prints the CPU
 * seconds of every process; the medians over the warm runs (the first runs load the slices and
 * fill the executors' memos) are set against the same scenarios' engine time in-process, the
 * peer measured in this run. In one process (bench/pipeline.ts) the actors share a heap and an
 * event loop, so these figures are a little higher than there; their proportions are the point.
 *
 * Run: npm run bench -- actor-cpu   (RUNS, default 4: the first is not counted;
 * PROFILE_ACTOR=<actor> PROFILE_DIR=<dir> writes a V8 CPU profile of that actor's process, or
 * of both executors' with PROFILE_ACTOR=executor)
 */
import { median, printResults, result, runBenchmark } from "./_support.js"
import { Effect, Layer } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { procCpuSeconds } from "./_support.js"
import { Bus, busLayer, kvGet, publishRaw } from "../src/streams/bus.js"
import { childEnv, embeddedSettings, Nats, NatsSettings } from "../src/streams/connection.js"
import { CLI_BIN, spawnExecutors } from "../src/cli/system.js"
import { generateCatalog } from "../src/data/index.js"
import { expandBatch, parseBatchConfig } from "../src/schemas/batch.js"
import { BatchRecord } from "../src/schemas/results.js"
import { SUBJECT } from "../src/streams/topology.js"
import { LoggingLive } from "../src/logging.js"
import { measureInProcess } from "./_pipeline-inprocess.js"

const RUNS = Number(process.env.RUNS ?? 4)
const SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]
const ACTORS = ["coordinator", "availability", "requirements", "loader", "quality", "reporter"] as const
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)
/** bench/pipeline.ts's small batch: 50 fast × 50 slow × 4 symbols, daily 2000–2019 */
const SMALL = {
  batch_name: "actor-cpu",
  cache: false,
  defaults: { strategy: "trend_baseline", freq: "1d", start_date: "2000-01-01", end_date: "2019-12-31", universe: [SYMBOLS[0]], start_capital: 1_000_000, commission_bps: 1, slippage_bps: 0.5 },
  sweep: { id: "g", grid: { fast: range(2, 51), slow: { from: 60, to: 158, step: 2 }, symbol: SYMBOLS } }
}

const waitDone = (batchId: string) =>
  Effect.gen(function* () {
    const bus = yield* Bus
    for (let i = 0; i < 1_200; i++) {
      const r = yield* kvGet(bus.batches, batchId, BatchRecord)
      if (r && (r.value.status === "done" || r.value.status === "failed")) return r.value
      yield* Effect.sleep("50 millis")
    }
    return yield* Effect.fail(new Error(`batch ${batchId} not done within 60 s`))
  })

const program = (root: string) =>
  Effect.gen(function* () {
    const settings = yield* NatsSettings
    const scenarios = expandBatch(parseBatchConfig(SMALL), { batchId: "inproc" })
    const inProcess = yield* measureInProcess(root, scenarios, "in-process")
    const procs: Array<{ name: string; child: ChildProcess }> = []
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        for (const name of ACTORS)
          procs.push({
            name,
            child: spawn(process.execPath, [...(process.env.PROFILE_ACTOR === name ? ["--cpu-prof", `--cpu-prof-dir=${process.env.PROFILE_DIR ?? "."}`] : []), CLI_BIN, "actors", "--only", name], {
              stdio: ["ignore", "ignore", "inherit"],
              env: { ...process.env, ...childEnv(settings), TICKFLOW_DATA_ROOT: root }
            })
          })
      }),
      () => Effect.sync(() => procs.forEach((p) => p.child.kill("SIGTERM")))
    )
    const executors = yield* spawnExecutors(2, settings, root, process.env.PROFILE_ACTOR === "executor" ? ["--cpu-prof", `--cpu-prof-dir=${process.env.PROFILE_DIR ?? "."}`] : [])
    executors.forEach((child, i) => procs.push({ name: `executor ${i + 1}`, child }))
    const serverPid = settings.embedded?.pid ?? -1
    const names = [...procs.map((p) => p.name), "nats-server"]
    const cpu = () => [...procs.map((p) => procCpuSeconds(p.child.pid ?? -1)), procCpuSeconds(serverPid)]
    // the processes start (tsx, topology bind) while a small batch on other dates waits its turn
    yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: "warmup", config: { ...SMALL, defaults: { ...SMALL.defaults, start_date: "2018-01-01" } } }), "submit:warmup")
    yield* waitDone("warmup")
    const perRun: number[][] = []
    for (let run = 0; run < RUNS; run++) {
      const id = `small-${run}-${Date.now() % 100_000}`
      const before = cpu()
      const t0 = performance.now()
      yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: id, config: SMALL }), `submit:${id}`)
      const rec = yield* waitDone(id)
      const ms = performance.now() - t0
      const used = cpu().map((c, i) => c - before[i])
      console.log(
        `run ${run + 1}${run === 0 ? " (not counted: slices loaded, memos filled)" : ""}: ${rec.status} ${rec.counts.success}/${rec.total} in ${Math.round(ms)} ms; CPU s: ` +
          names.map((n, i) => `${n} ${used[i].toFixed(2)}`).join(", ")
      )
      if (run > 0) perRun.push(used)
    }
    const med = names.map((_, i) => median(perRun.map((u) => u[i])))
    const usPer = (s: number) => (s * 1e6) / scenarios.length
    const actorsTotal = med.slice(0, ACTORS.length).reduce((a, b) => a + b, 0)
    const engineUs = (inProcess.engine * 1000) / scenarios.length
    console.log(`medians of ${perRun.length} warm runs, µs of CPU a scenario: ${names.map((n, i) => `${n} ${usPer(med[i]).toFixed(0)}`).join(", ")}`)
    console.log(`all actors ${usPer(actorsTotal).toFixed(0)} µs a scenario; the engine in-process ${engineUs.toFixed(0)} µs`)
    for (const [i, n] of ACTORS.entries()) result(`actor_cpu_us_per_scenario_${n}`, Math.round(usPer(med[i])), "-")
    result("actor_cpu_us_per_scenario_nats_server", Math.round(usPer(med[names.length - 1])), "-")
    result("actors_cpu_vs_engine", Number((usPer(actorsTotal) / engineUs).toFixed(3)), "< 1")
  })

const main = Effect.gen(function* () {
  const root = yield* Effect.acquireRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), "tickflow-bench-actor-cpu-"))),
    (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
  )
  yield* generateCatalog({ root, symbols: SYMBOLS, freqs: ["1d"], start: "1999-01-01", end: "2020-12-31", seed: 11 })
  yield* program(root).pipe(Effect.scoped, Effect.provide(busLayer().pipe(Layer.provideMerge(Nats.Default), Layer.provideMerge(embeddedSettings()))))
})

runBenchmark(main.pipe(Effect.scoped, Effect.provide(LoggingLive), Effect.tap(() => Effect.sync(printResults))))
