/**
 * Pipeline benchmark: the actor pipeline over NATS JetStream against the same scenarios run
 * in-process, measured in one run on one synthetic daily catalog (4 symbols, 1999–2020).
 *
 *  (a) in-process direct: each distinct slice loaded once (loadSlice), then runBacktest for all
 *      500 scenarios of the sweep, sequentially, in this process: wall time A (1 warm-up, median
 *      of 3 — slices reloaded every time, as the pipeline's first run must load them too);
 *  (b) full pipeline: embedded nats-server, every actor in this process except executors, plus
 *      executor child processes (spawnExecutors). B = submit → batch record done. Executors are
 *      running and have pulled (the `executor` consumer shows their waiting pull requests), and a
 *      small batch on other dates warms them up, before any clock starts.
 *      - 1 executor: a cold run (slices not yet in the object store), then 3 warm runs;
 *      - `os.cpus().length` executors: one run that warms the new executors' slice caches, then 3
 *        warm runs. efficiency = A / (B × executors); speedup 1→2 from the warm medians;
 *  (c) publish → first result latency of a single scenario sent to `tf.submit` (20 samples after
 *      one warm-up), executors running, slice already in the object store;
 *  (d) many small: 10,000 daily scenarios through the pipeline against the same runs in-process
 *      (scenarios/s ratio), skipped when it does not finish within SMALL_TIMEOUT_S.
 * For each pipeline run it records where the time went: per-phase telemetry (`phase_result`
 * events), when results arrive, when the reporter declares the batch done, and the CPU seconds
 * of this process (all non-executor actors), the executors and nats-server over the run.
 *
 * Run: npx tsx bench/pipeline.ts   (or npm run bench -- pipeline)
 * Knobs: EXECUTORS (default os.cpus().length), SMALL=0 skips (d), SMALL_TIMEOUT_S (default 90).
 */
import { fmt, gc, median, percentile, printResults, procCpuSeconds, result, runBenchmark, selfCpuSeconds } from "./_support.js"
import { mkdtemp, rm } from "node:fs/promises"
import { cpus, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import type { ChildProcess } from "node:child_process"
import { Effect, Layer } from "effect"
import type { Msg, Subscription } from "@nats-io/transport-node"
import { generateCatalog, loadSlice } from "../src/data/index.js"
import { getStrategy, runBacktest, scenarioSeed, validateParams } from "../src/engine/index.js"
import type { PriceSeries } from "../src/engine/types.js"
import { expandBatch, parseBatchConfig, type Scenario } from "../src/schemas/batch.js"
import { dayEndMs, dayStartMs } from "../src/schemas/common.js"
import { BatchRecord, ScenarioResult } from "../src/schemas/results.js"
import { GroupMessage } from "../src/schemas/wire.js"
import { embeddedSettings, Nats, NatsSettings } from "../src/streams/connection.js"
import { Bus, busLayer, decodeMessage, kvGet, publishRaw } from "../src/streams/bus.js"
import { CONSUMER, STREAM, SUBJECT } from "../src/streams/topology.js"
import { actorSettingsLayer, shutdownLayer, stoppedResult } from "../src/actors/common.js"
import { ACTOR_NAMES, actorsLayer } from "../src/actors/index.js"
import { groupScenarios } from "../src/actors/coordinator.js"
import { spawnExecutors } from "../src/cli/system.js"
import { LoggingLive } from "../src/logging.js"

const SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]
const START = "2000-01-01"
const END = "2019-12-31"
const EXECUTORS = Number(process.env.EXECUTORS ?? cpus().length)
const RUNS = 3
const LATENCY_SAMPLES = 20
const RUN_SMALL = process.env.SMALL !== "0"
const SMALL_TIMEOUT_S = Number(process.env.SMALL_TIMEOUT_S ?? 90)
const BATCH_TIMEOUT_S = 120
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

const config = (name: string, grid: Record<string, unknown>, dates = { start_date: START, end_date: END }) => ({
  batch_name: name,
  defaults: { strategy: "trend_baseline", freq: "1d", ...dates, universe: [SYMBOLS[0]], start_capital: 1_000_000, commission_bps: 1, slippage_bps: 0.5 },
  sweep: { id: "g", grid }
})
/** 25 fast × 5 slow × 4 symbols = 500 scenarios of ~5,000 daily bars */
const BIG = config("bench-big", { fast: range(2, 26), slow: { from: 30, to: 150, step: 30 }, symbol: SYMBOLS })
/** 50 fast × 50 slow × 4 symbols = 10,000 */
const SMALL = config("bench-small", { fast: range(2, 51), slow: { from: 60, to: 158, step: 2 }, symbol: SYMBOLS })
/** warm-up: 8 scenarios on other dates, so the big batch's slices stay cold */
const WARMUP = config("bench-warmup", { fast: [5, 10], symbol: SYMBOLS }, { start_date: "2010-01-01", end_date: "2010-12-31" })

const expand = (cfg: unknown, batchId: string): Scenario[] => expandBatch(parseBatchConfig(cfg), { batchId })

// ---------------------------------------------------------------- (a) in-process

interface InProcess {
  loadMs: number
  runMs: number
  totalMs: number
}

/** Load each distinct slice once, then run every scenario — what one executor does, minus the bus. */
const runInProcess = (root: string, scenarios: ReadonlyArray<Scenario>) =>
  Effect.gen(function* () {
    const def = getStrategy("trend_baseline")!
    const t0 = performance.now()
    const bySymbol = new Map<string, Array<{ s: Scenario; params: Record<string, unknown> }>>()
    for (const s of scenarios) {
      const v = validateParams(def, s.params, { strict: s.strict })
      if (!v.ok) throw new Error(v.errors.join("; "))
      const list = bySymbol.get(s.universe[0]) ?? []
      list.push({ s, params: v.params })
      bySymbol.set(s.universe[0], list)
    }
    const series = new Map<string, PriceSeries>()
    for (const [symbol, list] of bySymbol) {
      // the slice asks for the largest warmup of its scenarios, as the requirements phase does
      const warmupBars = Math.max(...list.map((x) => def.calculateRequirements(x.params as never, "1d").warmupBars))
      const s0 = list[0].s
      const loaded = yield* loadSlice(root, { symbol, freq: "1d", start: s0.start_date, end: s0.end_date, warmupBars })
      series.set(symbol, loaded.series)
    }
    const t1 = performance.now()
    let sink = 0
    for (const [symbol, list] of bySymbol) {
      const data = [series.get(symbol)!]
      for (const { s, params } of list) {
        const r = runBacktest(
          {
            strategy: def,
            params,
            startCapital: s.start_capital,
            costs: s.costs,
            seed: scenarioSeed(s.batch_seed, s.scenario_id),
            startMs: dayStartMs(s.start_date),
            endMs: dayEndMs(s.end_date),
            maxEquityPoints: 500
          },
          data
        )
        sink += r.metrics.final_equity
      }
    }
    const t2 = performance.now()
    if (!Number.isFinite(sink)) console.log("(sink)", sink)
    return { loadMs: t1 - t0, runMs: t2 - t1, totalMs: t2 - t0 } satisfies InProcess
  })

const measureInProcess = (root: string, scenarios: ReadonlyArray<Scenario>, label: string) =>
  Effect.gen(function* () {
    yield* runInProcess(root, scenarios) // warm-up: JIT
    const runs: InProcess[] = []
    for (let i = 0; i < RUNS; i++) {
      gc()
      runs.push(yield* runInProcess(root, scenarios))
    }
    const total = median(runs.map((r) => r.totalMs))
    console.log(
      `${label}: ${scenarios.length} scenarios in-process: median ${fmt(total)} ms (load ${fmt(median(runs.map((r) => r.loadMs)))} ms + ` +
        `engine ${fmt(median(runs.map((r) => r.runMs)))} ms = ${((median(runs.map((r) => r.runMs)) / scenarios.length) * 1000).toFixed(0)} µs/scenario) of ${runs.map((r) => fmt(r.totalMs)).join(", ")}`
    )
    return total
  })

/**
 * What an executor does per scenario beyond the engine: build the result object, validate it
 * with the ScenarioResult schema and JSON-encode it (typed publish). Measured here on the same
 * engine output, in this process.
 */
const measureResultCost = (root: string, scenarios: ReadonlyArray<Scenario>) =>
  Effect.gen(function* () {
    const def = getStrategy("trend_baseline")!
    const s0 = scenarios[0]
    const loaded = yield* loadSlice(root, { symbol: s0.universe[0], freq: "1d", start: s0.start_date, end: s0.end_date, warmupBars: 600 })
    const v = validateParams(def, s0.params, { strict: true })
    if (!v.ok) throw new Error(v.errors.join("; "))
    const r = runBacktest(
      { strategy: def, params: v.params, startCapital: s0.start_capital, costs: s0.costs, seed: 1, startMs: dayStartMs(s0.start_date), endMs: dayEndMs(s0.end_date), maxEquityPoints: 500 },
      [loaded.series]
    )
    const make = () => ({
      ...stoppedResult(s0, "failed", "execution", ""),
      status: "success" as const,
      phase: undefined,
      reason: undefined,
      params: v.params,
      metrics: r.metrics,
      equity: r.equity,
      executor: "bench",
      timings: { exec_ms: 0.1 }
    })
    let bytes = 0
    const n = 2_000
    for (let i = 0; i < 200; i++) JSON.stringify(ScenarioResult.parse(make())) // warm-up
    const t0 = performance.now()
    for (let i = 0; i < n; i++) bytes = JSON.stringify(ScenarioResult.parse(make())).length
    const us = ((performance.now() - t0) / n) * 1000
    const wire = new TextEncoder().encode(JSON.stringify(ScenarioResult.parse(make())))
    const t1 = performance.now()
    for (let i = 0; i < n; i++) decodeMessage(ScenarioResult, "tf.res.x.y", wire)
    const decUs = ((performance.now() - t1) / n) * 1000
    console.log(
      `per result, outside the engine: executor builds + validates (zod) + JSON-encodes it ${us.toFixed(0)} µs; reporter decodes + validates it ${decUs.toFixed(0)} µs; ` +
        `${fmt(bytes)} B (equity curve of ${r.equity.ts.length} points)`
    )
    return { us, decUs, bytes }
  })

/** What every stage pays per group message: decode (JSON + zod) on consume, validate + encode on publish. */
const measureGroupCodec = (scenarios: ReadonlyArray<Scenario>, label: string) =>
  Effect.sync(() => {
    const groups = groupScenarios(scenarios)
    const g = groups[0]
    const n = Math.max(5, Math.round(20_000 / g.items.length))
    for (let i = 0; i < 3; i++) decodeMessage(GroupMessage, "x", new TextEncoder().encode(JSON.stringify(GroupMessage.parse(g))))
    const t0 = performance.now()
    let bytes = new Uint8Array()
    for (let i = 0; i < n; i++) bytes = new TextEncoder().encode(JSON.stringify(GroupMessage.parse(g)))
    const t1 = performance.now()
    for (let i = 0; i < n; i++) decodeMessage(GroupMessage, "x", bytes)
    const t2 = performance.now()
    const enc = (t1 - t0) / n
    const dec = (t2 - t1) / n
    console.log(
      `${label}: ${groups.length} group messages of up to ${g.items.length} scenarios (${fmt(bytes.length / 1024)} KiB): encode ${enc.toFixed(2)} ms + decode ${dec.toFixed(2)} ms per message per stage ` +
        `(${((enc + dec) * 1000 / g.items.length).toFixed(0)} µs per scenario per stage)`
    )
    return { enc, dec, groups: groups.length }
  })

// ---------------------------------------------------------------- (b) the pipeline

interface PhaseStats {
  n: number
  sumMs: number
  maxMs: number
  firstDoneAt: number
  lastDoneAt: number
}
interface BatchRun {
  ms: number
  record: BatchRecord
  phases: Map<string, PhaseStats>
  firstResultAt: number
  lastResultAt: number
  results: number
  resultBytes: number
  execMsSum: number
  cpu: { self: number; executors: number; server: number }
}

const cpuSnapshot = (executors: ReadonlyArray<ChildProcess>, serverPid: number | undefined) => ({
  self: selfCpuSeconds(),
  executors: executors.reduce((s, c) => s + procCpuSeconds(c.pid ?? -1), 0),
  server: serverPid ? procCpuSeconds(serverPid) : Number.NaN
})

/** Submit a batch and wait for its record to say done; collect the telemetry on the way. */
const runBatch = (batchId: string, cfg: unknown, executors: ReadonlyArray<ChildProcess>, opts: { timeoutS?: number; parseResults?: boolean } = {}) =>
  Effect.gen(function* () {
    const { nc } = yield* Nats
    const settings = yield* NatsSettings
    const bus = yield* Bus
    const phases = new Map<string, PhaseStats>()
    let t0 = 0
    let firstResultAt = 0
    let lastResultAt = 0
    let results = 0
    let resultBytes = 0
    let execMsSum = 0
    let doneAt = 0
    let resolveDone: () => void = () => undefined
    const done = new Promise<void>((r) => (resolveDone = r))
    const subs: Subscription[] = []
    subs.push(
      nc.subscribe(`tf.evt.${batchId}.>`, {
        callback: (_e, m: Msg) => {
          const at = performance.now() - t0
          const ev = m.json<{ kind?: string; phase?: string; data?: { ms?: number }; status?: string }>()
          if (m.subject.endsWith(".batch")) {
            if (ev.status === "done" || ev.status === "failed") {
              doneAt = at
              resolveDone()
            }
            return
          }
          if (ev.kind !== "phase_result" || !ev.phase) return
          const p = phases.get(ev.phase) ?? { n: 0, sumMs: 0, maxMs: 0, firstDoneAt: at, lastDoneAt: at }
          p.n++
          p.sumMs += ev.data?.ms ?? 0
          p.maxMs = Math.max(p.maxMs, ev.data?.ms ?? 0)
          p.lastDoneAt = at
          phases.set(ev.phase, p)
        }
      })
    )
    subs.push(
      nc.subscribe(`tf.res.${batchId}.>`, {
        callback: (_e, m: Msg) => {
          const at = performance.now() - t0
          if (results === 0) firstResultAt = at
          lastResultAt = at
          results++
          resultBytes += m.data.length
          if (opts.parseResults) execMsSum += m.json<{ timings?: { exec_ms?: number } }>().timings?.exec_ms ?? 0
        }
      })
    )
    yield* Effect.promise(() => nc.flush())
    const cpu0 = cpuSnapshot(executors, settings.embedded?.pid)
    t0 = performance.now()
    yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: batchId, config: cfg }), `submit:${batchId}`)
    const timeoutS = opts.timeoutS ?? BATCH_TIMEOUT_S
    const finished = yield* Effect.promise(() =>
      Promise.race([done.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutS * 1000).unref())])
    )
    const ms = finished ? doneAt : performance.now() - t0
    const cpu1 = cpuSnapshot(executors, settings.embedded?.pid)
    for (const s of subs) s.unsubscribe()
    const rec = yield* kvGet(bus.batches, batchId, BatchRecord)
    if (!rec) return yield* Effect.fail(new Error(`batch ${batchId}: no record in tf_batches`))
    const record = rec.value
    if (finished && (record.status !== "done" || record.counts.success !== record.total))
      return yield* Effect.fail(new Error(`batch ${batchId} ended ${record.status}: ${JSON.stringify(record.counts)} of ${record.total}`))
    return {
      finished,
      run: {
        ms,
        record,
        phases,
        firstResultAt,
        lastResultAt,
        results,
        resultBytes,
        execMsSum,
        cpu: { self: cpu1.self - cpu0.self, executors: cpu1.executors - cpu0.executors, server: cpu1.server - cpu0.server }
      } satisfies BatchRun
    }
  })

const PHASE_ORDER = ["availability", "requirements", "loading", "quality", "execution"]

const describeRun = (label: string, r: BatchRun, executorCount: number) => {
  const cpuTotal = r.cpu.self + r.cpu.executors + r.cpu.server
  console.log(
    `  ${label}: B = ${fmt(r.ms)} ms (${r.record.total} scenarios, ${r.record.groups} groups) | CPU s: actors+bench ${r.cpu.self.toFixed(2)}, ` +
      `${executorCount} executor(s) ${r.cpu.executors.toFixed(2)}, nats-server ${r.cpu.server.toFixed(2)} = ${cpuTotal.toFixed(2)} of ${((r.ms / 1000) * cpus().length).toFixed(2)} core-s; ` +
      `executors busy ${((100 * (r.phases.get("execution")?.sumMs ?? 0)) / (executorCount * r.ms)).toFixed(0)}% of B; load avg ${loadavg()[0].toFixed(1)}`
  )
}

const describeTimeline = (r: BatchRun) => {
  const parts = PHASE_ORDER.filter((p) => r.phases.has(p)).map((p) => {
    const s = r.phases.get(p)!
    return `${p} ${s.n}× Σ${fmt(s.sumMs)} ms, done ${fmt(s.firstDoneAt)}–${fmt(s.lastDoneAt)}`
  })
  console.log(`    timeline (ms after submit): ${parts.join(" | ")}`)
  console.log(
    `    results: ${r.results} arrived ${fmt(r.firstResultAt)}–${fmt(r.lastResultAt)} ms (${fmt(r.resultBytes / 1e6)} MB, ${fmt(r.resultBytes / Math.max(1, r.results))} B each)` +
      (r.execMsSum > 0 ? `, Σ engine exec_ms ${fmt(r.execMsSum)} ms` : "") +
      `; batch done at ${fmt(r.ms)} ms (reporter ${fmt(r.ms - r.lastResultAt)} ms after the last result)`
  )
}

/** Wait until the executor consumer has `n` waiting pull requests (executors started and pulling). */
const waitForExecutors = (n: number) =>
  Effect.gen(function* () {
    const { jsm } = yield* Nats
    const t0 = Date.now()
    for (;;) {
      const info = yield* Effect.promise(() => jsm.consumers.info(STREAM.pipeline, CONSUMER.executor.name))
      if (info.num_waiting >= n) return (Date.now() - t0) / 1000
      if (Date.now() - t0 > 60_000) return yield* Effect.fail(new Error(`only ${info.num_waiting} of ${n} executors are pulling after 60 s`))
      yield* Effect.sleep("100 millis")
    }
  })

// ---------------------------------------------------------------- (c) latency

const firstResultLatency = (runId: string) =>
  Effect.gen(function* () {
    const { nc, js } = yield* Nats
    const samples: number[] = []
    for (let i = 0; i <= LATENCY_SAMPLES; i++) {
      const batchId = `lat-${runId}-${i}`
      const ms = yield* Effect.promise(async () => {
        let t0 = 0
        let resolve: (ms: number) => void = () => undefined
        const got = new Promise<number>((r) => (resolve = r))
        const sub = nc.subscribe(`tf.res.${batchId}.>`, { max: 1, callback: () => resolve(performance.now() - t0) })
        await nc.flush()
        const msg = {
          kind: "scenario",
          batch_id: batchId,
          scenario_id: "s1",
          strategy: "trend_baseline",
          params: { fast: 10, slow: 50 },
          freq: "1d",
          start_date: "2019-01-01",
          end_date: "2019-12-31",
          universe: [SYMBOLS[0]],
          start_capital: 100_000
        }
        t0 = performance.now()
        await js.publish(SUBJECT.submit, JSON.stringify(msg), { msgID: `submit:${batchId}` })
        const timeout = new Promise<number>((r) => setTimeout(() => r(Number.NaN), 20_000).unref())
        const ms = await Promise.race([got, timeout])
        sub.unsubscribe()
        return ms
      })
      if (Number.isNaN(ms)) return yield* Effect.fail(new Error(`latency sample ${i}: no result within 20 s`))
      if (i > 0) samples.push(ms) // sample 0 warms the path (slice load, JIT)
      yield* Effect.sleep("30 millis")
    }
    return samples
  })

// ---------------------------------------------------------------- the program

const program = (root: string) =>
  Effect.gen(function* () {
    const settings = yield* NatsSettings
    const t00 = Date.now()
    const bigScenarios = expand(BIG, "inproc-big")
    const smallScenarios = expand(SMALL, "inproc-small")
    console.log(`load average at start ${loadavg().map((x) => x.toFixed(1)).join(" ")}`)
    console.log(
      `catalog: ${SYMBOLS.length} symbols, daily, scenarios ${START}..${END}; big sweep ${bigScenarios.length} scenarios, small ${smallScenarios.length}; ` +
        `${EXECUTORS} executor(s) on ${cpus().length} cores; nats-server ${settings.embedded ? "embedded" : settings.servers}`
    )

    // (a)
    const A = yield* measureInProcess(root, bigScenarios, "(a)")
    const resultCost = yield* measureResultCost(root, bigScenarios)
    yield* measureGroupCodec(bigScenarios, "big sweep")
    if (RUN_SMALL) yield* measureGroupCodec(smallScenarios, "small sweep")

    // (b) one executor
    const executors: ChildProcess[] = []
    executors.push(...(yield* spawnExecutors(1, settings, root)))
    const up1 = yield* waitForExecutors(1)
    const warm1 = yield* runBatch("warmup-1", WARMUP, executors)
    console.log(`(b) 1 executor pulling after ${up1.toFixed(1)} s; warm-up batch (8 scenarios, other dates) ${fmt(warm1.run.ms)} ms`)
    let seq = 0
    const id = (tag: string) => `big-${tag}-${++seq}`
    const cold = yield* runBatch(id("e1cold"), BIG, executors, { parseResults: true })
    describeRun("1 executor, cold (loader reads Parquet, stores 4 slices; executor fetches them)", cold.run, 1)
    describeTimeline(cold.run)
    const b1: BatchRun[] = []
    for (let i = 0; i < RUNS; i++) {
      const r = yield* runBatch(id("e1"), BIG, executors, { parseResults: true })
      describeRun(`1 executor, warm run ${i + 1}`, r.run, 1)
      b1.push(r.run)
    }
    describeTimeline(b1[b1.length - 1])

    // (b) more executors
    const counts = [...new Set([2, EXECUTORS])].filter((n) => n > 1).sort((a, b) => a - b)
    const warmByCount = new Map<number, BatchRun[]>([[1, b1]])
    for (const n of counts) {
      executors.push(...(yield* spawnExecutors(n - executors.length, settings, root)))
      const up = yield* waitForExecutors(n)
      const first = yield* runBatch(id(`e${n}first`), BIG, executors, { parseResults: true })
      console.log(`(b) ${n} executors pulling after ${up.toFixed(1)} s`)
      describeRun(`${n} executors, first run (slices in the store; new executors fetch them once)`, first.run, n)
      const runs: BatchRun[] = []
      for (let i = 0; i < RUNS; i++) {
        const r = yield* runBatch(id(`e${n}`), BIG, executors, { parseResults: true })
        describeRun(`${n} executors, warm run ${i + 1}`, r.run, n)
        runs.push(r.run)
      }
      describeTimeline(runs[runs.length - 1])
      warmByCount.set(n, runs)
    }
    const Bof = (n: number) => median(warmByCount.get(n)!.map((r) => r.ms))
    const B1 = Bof(1)
    const B2 = Bof(2)
    const Bn = Bof(EXECUTORS)
    const efficiency = A / (Bn * EXECUTORS)
    const speedup = B1 / B2
    const execShare = median(warmByCount.get(EXECUTORS)!.map((r) => r.execMsSum)) / Bn
    console.log(
      `(b) warm medians: B(1) ${fmt(B1)} ms, B(2) ${fmt(B2)} ms${EXECUTORS > 2 ? `, B(${EXECUTORS}) ${fmt(Bn)} ms` : ""}; A ${fmt(A)} ms → ` +
        `efficiency A/(B×${EXECUTORS}) = ${efficiency.toFixed(3)}, speedup 1→2 = ${speedup.toFixed(2)}; ` +
        `engine time (Σ exec_ms) is ${(execShare * 100).toFixed(0)}% of B(${EXECUTORS}); cold 1-executor run ${fmt(cold.run.ms)} ms`
    )

    // (c) latency
    const lat = yield* firstResultLatency(String(Date.now() % 100000))
    const p50 = percentile(lat, 50)
    const p95 = percentile(lat, 95)
    console.log(`(c) publish → first result, single scenario (2019, ${SYMBOLS[0]}), ${lat.length} samples: p50 ${p50.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms, max ${Math.max(...lat).toFixed(1)} ms`)

    // (d) many small
    let smallRatio: number | string = "skipped"
    if (RUN_SMALL) {
      const Asmall = yield* measureInProcess(root, smallScenarios, "(d)")
      const small = yield* runBatch(`small-${Date.now() % 100000}`, SMALL, executors, { timeoutS: SMALL_TIMEOUT_S })
      if (small.finished) {
        smallRatio = Asmall / small.run.ms
        describeRun(`${EXECUTORS} executors, ${smallScenarios.length} scenarios`, small.run, EXECUTORS)
        describeTimeline(small.run)
        console.log(
          `(d) ${smallScenarios.length} scenarios: pipeline ${fmt(smallScenarios.length / (small.run.ms / 1000))}/s vs in-process ${fmt(smallScenarios.length / (Asmall / 1000))}/s = ${smallRatio.toFixed(3)}x`
        )
      } else {
        const rate = small.run.results / (small.run.ms / 1000)
        console.log(
          `(d) skipped: the ${smallScenarios.length}-scenario batch did not finish within ${SMALL_TIMEOUT_S} s ` +
            `(${small.run.results} results in ${fmt(small.run.ms)} ms = ${fmt(rate)}/s vs in-process ${fmt(smallScenarios.length / (Asmall / 1000))}/s)`
        )
        describeTimeline(small.run)
      }
    } else console.log("(d) skipped (SMALL=0)")
    console.log(
      `total ${((Date.now() - t00) / 1000).toFixed(0)} s; load average now ${loadavg().map((x) => x.toFixed(1)).join(" ")} on ${cpus().length} cores ` +
        `(other work on this machine competes with the pipeline for CPU); result encode ${resultCost.us.toFixed(0)} µs + decode ${resultCost.decUs.toFixed(0)} µs per scenario`
    )

    result("pipeline_efficiency", Number(efficiency.toFixed(3)), 0.8)
    result("pipeline_speedup_1_to_2", Number(speedup.toFixed(2)), 1.8)
    result("pipeline_first_result_p50_ms", Number(p50.toFixed(1)), 100)
    result("pipeline_first_result_p95_ms", Number(p95.toFixed(1)), 250)
    result("pipeline_small_vs_inprocess", typeof smallRatio === "number" ? Number(smallRatio.toFixed(3)) : smallRatio, 0.5)
  })

const main = Effect.gen(function* () {
  const root = yield* Effect.acquireRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), "tickflow-bench-pipeline-"))),
    (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
  )
  const t0 = performance.now()
  yield* generateCatalog({ root, symbols: SYMBOLS, freqs: ["1d"], start: "1999-01-01", end: "2020-12-31", seed: 11 })
  console.log(`catalog generated in ${fmt(performance.now() - t0)} ms under ${root}`)
  const infra = Layer.mergeAll(actorSettingsLayer({ dataRoot: root }), shutdownLayer).pipe(
    Layer.provideMerge(busLayer()),
    Layer.provideMerge(Nats.Default),
    Layer.provideMerge(embeddedSettings())
  )
  const actors = actorsLayer(ACTOR_NAMES.filter((n) => n !== "executor"))
  // Scope order on release: executors (spawned inside program) first, then actors, the
  // connection and the server, then the catalog dir.
  yield* program(root).pipe(Effect.scoped, Effect.provide(actors.pipe(Layer.provideMerge(infra))))
})

runBenchmark(main.pipe(Effect.scoped, Effect.provide(LoggingLive), Effect.tap(() => Effect.sync(printResults))))
