/**
 * Pipeline benchmark: the actor pipeline over NATS JetStream against the same scenarios run
 * in-process, at both ends of the scenario size (DESIGN.md, "Throughput").
 *
 * LARGE scenarios (efficiency, 1→2 speedup): 500 trend_baseline scenarios (25 fast × 5 slow ×
 * 4 symbols) over synthetic TICK data (4 symbols, ~16 weeks of 2023 at TICKS_PER_MINUTE ticks
 * per session minute: ~1.5 M rows per slice), so the engine dominates (~12 ms per scenario):
 *  (a) in-process: each distinct slice loaded once (loadSlice), then runBacktest for all 500
 *      scenarios, sequentially, in this process: A (load + engine; a short JIT warm-up, then the
 *      median of RUNS runs, slices reloaded every run);
 *  (b) full pipeline: embedded nats-server, every actor in this process except executors, plus
 *      executor child processes (spawnExecutors). B = submit → batch record done. Executors are
 *      started, pulling (the `executor` consumer shows their waiting pull requests) and warmed by
 *      a small tick batch on other dates before any clock starts.
 *      - 1 executor: a cold run (slices not in the object store: the loader reads Parquet and
 *        stores them; the executor fetches them), then warm runs (slices in the store and in
 *        the executor's memory);
 *      - `os.cpus().length` executors: a first run (slices in the store; the new executor
 *        fetches them once), then warm runs.
 *      efficiency = A / (B(n) × n) with n = os.cpus().length; speedup 1→2 = B(1) / B(2), warm
 *      medians, every run with a fresh batch id. The loss is split into factors: in-process load
 *      share, engine slowdown inside executors, executor overhead outside the engine, idle.
 * SMALL scenarios (DESIGN.md's other end):
 *  (c) publish → first result latency of a single daily scenario sent to `tf.submit`
 *      (LATENCY_SAMPLES after one warm-up), slice already in the object store;
 *  (d) many small: 10,000 daily scenarios (20 years, 4 symbols) through the pipeline against the
 *      same runs in-process (scenarios/s ratio); a second run when the first was quick.
 * For each pipeline run: per-phase timeline (`phase_start` / `phase_result` events), result
 * arrival per executor, when the reporter declares the batch done, CPU seconds per process
 * (this process = every non-executor actor + the bench's listeners; each executor; nats-server).
 *
 * Run: npm run bench -- pipeline   (or npx tsx bench/pipeline.ts; --expose-gc for gc between runs)
 * Knobs: EXECUTORS (default os.cpus().length), TICKS_PER_MINUTE (default 50: sizes the large
 * scenarios), LARGE=0 skips (a) and (b), SMALL=0 skips (d), SMALL_TIMEOUT_S (default 90).
 */
import { fmt, gc, machineCpuSeconds, median, percentile, printResults, procCpuSeconds, result, runBenchmark, selfCpuSeconds } from "./_support.js"
import { mkdtemp, rm } from "node:fs/promises"
import { cpus, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import type { ChildProcess } from "node:child_process"
import { Effect, Layer } from "effect"
import type { Msg, Subscription } from "@nats-io/transport-node"
import { generateCatalog, loadSlice } from "../src/data/index.js"
import { getStrategy, runBacktest, scenarioSeed, validateParams } from "../src/engine/index.js"
import type { PriceSeries } from "../src/engine/types.js"
import { expandBatch, parseBatchConfig, sliceGroupKey, type Scenario } from "../src/schemas/batch.js"
import { dayEndMs, dayStartMs } from "../src/schemas/common.js"
import { BatchRecord, ScenarioResult } from "../src/schemas/results.js"
import { encodeGroup, GroupOnWire, GroupWire } from "../src/schemas/wire.js"
import { embeddedSettings, Nats, NatsSettings } from "../src/streams/connection.js"
import { Bus, busLayer, decodeMessage, kvGet, publishRaw } from "../src/streams/bus.js"
import { CONSUMER, STREAM, SUBJECT } from "../src/streams/topology.js"
import { actorSettingsLayer, shutdownLayer, stoppedResult } from "../src/actors/common.js"
import { ACTOR_NAMES, actorsLayer } from "../src/actors/index.js"
import { groupScenarios } from "../src/actors/coordinator.js"
import { spawnExecutors } from "../src/cli/system.js"
import { reportPeakRss } from "./_rss.js"
import { LoggingLive } from "../src/logging.js"

const SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]
const EXECUTORS = Number(process.env.EXECUTORS ?? cpus().length)
const TICKS_PER_MINUTE = Number(process.env.TICKS_PER_MINUTE ?? 50)
/** timed runs per measurement (median); the in-process ones after a warm-up */
const RUNS = 3
/** warm 1-executor runs of the large batch (each ~A): fewer, to keep the benchmark short */
const RUNS_1 = 2
const LATENCY_SAMPLES = 20
const RUN_LARGE = process.env.LARGE !== "0"
const RUN_SMALL = process.env.SMALL !== "0"
const SMALL_TIMEOUT_S = Number(process.env.SMALL_TIMEOUT_S ?? 90)
/** a second 10,000-scenario run only when the first took less than this */
const SMALL_SECOND_RUN_S = 30
const BATCH_TIMEOUT_S = 120
/**
 * Engine settings of the executor (src/actors/executor.ts), so A does the same work: runs of at
 * least 100,000 rows keep a 2,000-point equity curve (streamed as `equity` events), others 120.
 */
const maxEquityPoints = (rows: number) => (rows >= 100_000 ? 2_000 : 120)
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

const config = (name: string, freq: string, dates: { start_date: string; end_date: string }, grid: Record<string, unknown>) => ({
  batch_name: name,
  defaults: { strategy: "trend_baseline", freq, ...dates, universe: [SYMBOLS[0]], start_capital: 1_000_000, commission_bps: 1, slippage_bps: 0.5 },
  sweep: { id: "g", grid }
})
/** Ticks generated for 2022-12-26..2023-04-28 (weekdays); the large batch runs on 2023-01-09..04-28. */
const TICK_GEN = { start: "2022-12-26", end: "2023-04-28" }
/** 25 fast × 5 slow × 4 symbols = 500 scenarios of ~1.5 M ticks each */
const LARGE = config("bench-large", "tick", { start_date: "2023-01-09", end_date: "2023-04-28" }, {
  fast: range(2, 26),
  slow: { from: 30, to: 150, step: 30 },
  symbol: SYMBOLS
})
/** executor warm-up: 8 tick scenarios on other dates, so the large batch's slices stay cold */
const WARMUP = config("bench-warmup", "tick", { start_date: "2023-01-03", end_date: "2023-01-06" }, { fast: [5, 10], slow: [30], symbol: SYMBOLS })
/** 50 fast × 50 slow × 4 symbols = 10,000 daily scenarios of ~5,000 bars */
const SMALL = config("bench-small", "1d", { start_date: "2000-01-01", end_date: "2019-12-31" }, {
  fast: range(2, 51),
  slow: { from: 60, to: 158, step: 2 },
  symbol: SYMBOLS
})

const expand = (cfg: unknown, batchId: string): Scenario[] => expandBatch(parseBatchConfig(cfg), { batchId })
const loadAvg = () => loadavg().map((x) => x.toFixed(1)).join(" ")
const sum = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0)
const pct = (x: number) => `${(100 * x).toFixed(0)}%`

// ---------------------------------------------------------------- (a) in-process

interface InProcess {
  loadMs: number
  runMs: number
  totalMs: number
  rows: number
}

/** Load each distinct slice once, then run every scenario — what one executor does, minus the bus. */
const runInProcess = (root: string, scenarios: ReadonlyArray<Scenario>) =>
  Effect.gen(function* () {
    const def = getStrategy("trend_baseline")!
    const t0 = performance.now()
    const bySlice = new Map<string, Array<{ s: Scenario; params: Record<string, unknown> }>>()
    for (const s of scenarios) {
      const v = validateParams(def, s.params, { strict: s.strict })
      if (!v.ok) throw new Error(v.errors.join("; "))
      const k = sliceGroupKey(s)
      const list = bySlice.get(k) ?? []
      list.push({ s, params: v.params })
      bySlice.set(k, list)
    }
    const series = new Map<string, PriceSeries>()
    let rows = 0
    for (const [k, list] of bySlice) {
      // the slice asks for the largest warmup of its scenarios, as the requirements phase does
      const s0 = list[0].s
      const warmupBars = Math.max(...list.map((x) => def.calculateRequirements(x.params as never, s0.freq).warmupBars))
      const loaded = yield* loadSlice(root, { symbol: s0.universe[0], freq: s0.freq, start: s0.start_date, end: s0.end_date, warmupBars })
      series.set(k, loaded.series)
      rows += loaded.series.ts.length
    }
    const t1 = performance.now()
    let sink = 0
    for (const [k, list] of bySlice) {
      const data = [series.get(k)!]
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
            maxEquityPoints: maxEquityPoints(data[0].ts.length)
          },
          data
        )
        sink += r.metrics.final_equity
      }
    }
    const t2 = performance.now()
    if (!Number.isFinite(sink)) console.log("(sink)", sink)
    return { loadMs: t1 - t0, runMs: t2 - t1, totalMs: t2 - t0, rows: rows / bySlice.size } satisfies InProcess
  })

/** A warm-up (JIT) on `warmup` of the scenarios, then the median of RUNS full runs. */
const measureInProcess = (root: string, scenarios: ReadonlyArray<Scenario>, label: string, warmup = scenarios.length) =>
  Effect.gen(function* () {
    yield* runInProcess(root, scenarios.slice(0, warmup))
    const runs: InProcess[] = []
    const m0 = machineCpuSeconds().busy
    const c0 = selfCpuSeconds()
    for (let i = 0; i < RUNS; i++) {
      gc()
      runs.push(yield* runInProcess(root, scenarios))
    }
    const others = machineCpuSeconds().busy - m0 - (selfCpuSeconds() - c0)
    const total = median(runs.map((r) => r.totalMs))
    const load = median(runs.map((r) => r.loadMs))
    const engine = median(runs.map((r) => r.runMs))
    console.log(
      `${label}: ${scenarios.length} scenarios in-process (${fmt(runs[0].rows)} rows per slice): median ${fmt(total)} ms = load ${fmt(load)} ms + ` +
        `engine ${fmt(engine)} ms (${((engine / scenarios.length) * 1000).toFixed(0)} µs/scenario); runs ${runs.map((r) => fmt(r.totalMs)).join(", ")} ms; ` +
        `other processes used ${others.toFixed(1)} core-s of ${((sum(runs.map((r) => r.totalMs)) / 1000) * cpus().length).toFixed(1)}; load avg ${loadAvg()}`
    )
    return { total, load, engine, rows: runs[0].rows }
  })

/**
 * What an executor does per scenario beyond the engine: build the result object, validate it
 * with the ScenarioResult schema and JSON-encode it (typed publish); and what the reporter does
 * to decode it. Measured here on a daily scenario's output.
 */
const measureResultCost = (root: string, scenarios: ReadonlyArray<Scenario>) =>
  Effect.gen(function* () {
    const def = getStrategy("trend_baseline")!
    const s0 = scenarios[0]
    const loaded = yield* loadSlice(root, { symbol: s0.universe[0], freq: s0.freq, start: s0.start_date, end: s0.end_date, warmupBars: 600 })
    const v = validateParams(def, s0.params, { strict: true })
    if (!v.ok) throw new Error(v.errors.join("; "))
    const r = runBacktest(
      {
        strategy: def,
        params: v.params,
        startCapital: s0.start_capital,
        costs: s0.costs,
        seed: 1,
        startMs: dayStartMs(s0.start_date),
        endMs: dayEndMs(s0.end_date),
        maxEquityPoints: maxEquityPoints(loaded.series.ts.length)
      },
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
    // as the stages do it: the compact wire form (GroupWire), expanded on decode (GroupOnWire)
    for (let i = 0; i < 3; i++) decodeMessage(GroupOnWire, "x", new TextEncoder().encode(JSON.stringify(GroupWire.parse(encodeGroup(g)))))
    const t0 = performance.now()
    let bytes = new Uint8Array()
    for (let i = 0; i < n; i++) bytes = new TextEncoder().encode(JSON.stringify(GroupWire.parse(encodeGroup(g))))
    const t1 = performance.now()
    for (let i = 0; i < n; i++) decodeMessage(GroupOnWire, "x", bytes)
    const t2 = performance.now()
    const enc = (t1 - t0) / n
    const dec = (t2 - t1) / n
    console.log(
      `${label}: ${groups.length} group messages of up to ${g.items.length} scenarios (${fmt(bytes.length / 1024)} KiB): encode ${enc.toFixed(2)} ms + decode ${dec.toFixed(2)} ms per message per stage ` +
        `(${(((enc + dec) * 1000) / g.items.length).toFixed(0)} µs per scenario per stage)`
    )
    return { enc, dec, groups: groups.length }
  })

// ---------------------------------------------------------------- (b) the pipeline

interface PhaseStats {
  n: number
  sumMs: number
  maxMs: number
  firstStartAt: number
  firstDoneAt: number
  lastDoneAt: number
}
interface ExecutorStats {
  n: number
  execMs: number
  firstAt: number
  lastAt: number
}
interface BatchRun {
  ms: number
  record: BatchRecord
  phases: Map<string, PhaseStats>
  byExecutor: Map<string, ExecutorStats>
  firstResultAt: number
  lastResultAt: number
  results: number
  resultBytes: number
  execMsSum: number
  /** CPU seconds over the run: this process, each executor (spawn order), nats-server, every other process on the machine */
  cpu: { self: number; executors: number[]; server: number; others: number }
  /** `started` events the executors published (one per long scenario, before its `equity` chunks) */
  runEvents: number
}

const emptyPhase = (): PhaseStats => ({ n: 0, sumMs: 0, maxMs: 0, firstStartAt: Number.NaN, firstDoneAt: Number.NaN, lastDoneAt: Number.NaN })

const cpuSnapshot = (executors: ReadonlyArray<ChildProcess>, serverPid: number | undefined) => ({
  machine: machineCpuSeconds().busy,
  self: selfCpuSeconds(),
  executors: executors.map((c) => procCpuSeconds(c.pid ?? -1)),
  server: serverPid ? procCpuSeconds(serverPid) : Number.NaN
})

const decoder = new TextDecoder()
const EXEC_MS_RE = /"exec_ms":([-+.\deE]+)/
const EXECUTOR_RE = /"executor":"([^"]*)"/

/** Submit a batch and wait for its record to say done; collect the telemetry on the way. */
const runBatch = (batchId: string, cfg: unknown, executors: ReadonlyArray<ChildProcess>, opts: { timeoutS?: number; parseResults?: boolean } = {}) =>
  Effect.gen(function* () {
    const { nc } = yield* Nats
    const settings = yield* NatsSettings
    const bus = yield* Bus
    const phases = new Map<string, PhaseStats>()
    const byExecutor = new Map<string, ExecutorStats>()
    let t0 = 0
    let firstResultAt = 0
    let lastResultAt = 0
    let results = 0
    let resultBytes = 0
    let execMsSum = 0
    let doneAt = 0
    let runEvents = 0
    let resolveDone: () => void = () => undefined
    const done = new Promise<void>((r) => (resolveDone = r))
    const subs: Subscription[] = []
    // Only phase events, the batch summary and `started` (one per long run): a long run's `equity`
    // chunks (MBs per batch) would make this listener part of what is measured.
    subs.push(nc.subscribe(`tf.evt.${batchId}.*.started`, { callback: () => void runEvents++ }))
    subs.push(
      nc.subscribe(`tf.evt.${batchId}.batch`, {
        callback: (_e, m: Msg) => {
          const ev = m.json<{ status?: string }>()
          if (ev.status === "done" || ev.status === "failed") {
            doneAt = performance.now() - t0
            resolveDone()
          }
        }
      })
    )
    subs.push(
      nc.subscribe(`tf.evt.${batchId}.*.phase`, {
        callback: (_e, m: Msg) => {
          const at = performance.now() - t0
          const ev = m.json<{ kind?: string; phase?: string; data?: { ms?: number } }>()
          if (!ev.phase || (ev.kind !== "phase_result" && ev.kind !== "phase_start")) return
          const p = phases.get(ev.phase) ?? emptyPhase()
          phases.set(ev.phase, p)
          if (ev.kind === "phase_start") {
            if (Number.isNaN(p.firstStartAt)) p.firstStartAt = at
            return
          }
          p.n++
          p.sumMs += ev.data?.ms ?? 0
          p.maxMs = Math.max(p.maxMs, ev.data?.ms ?? 0)
          if (Number.isNaN(p.firstDoneAt)) p.firstDoneAt = at
          p.lastDoneAt = at
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
          if (!opts.parseResults) return
          // two fields of a ~5 KB result: a regex over the text costs this listener far less than JSON.parse
          const text = decoder.decode(m.data)
          const ms = Number(EXEC_MS_RE.exec(text)?.[1] ?? 0)
          const executor = EXECUTOR_RE.exec(text)?.[1] ?? "?"
          execMsSum += ms
          const e = byExecutor.get(executor) ?? { n: 0, execMs: 0, firstAt: at, lastAt: at }
          e.n++
          e.execMs += ms
          e.lastAt = at
          byExecutor.set(executor, e)
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
        byExecutor,
        firstResultAt,
        lastResultAt,
        results,
        resultBytes,
        execMsSum,
        cpu: {
          self: cpu1.self - cpu0.self,
          executors: cpu1.executors.map((c, i) => c - (cpu0.executors[i] ?? 0)),
          server: cpu1.server - cpu0.server,
          others: Math.max(0, cpu1.machine - cpu0.machine - (cpu1.self - cpu0.self) - sum(cpu1.executors) + sum(cpu0.executors) - (cpu1.server - cpu0.server))
        },
        runEvents
      } satisfies BatchRun
    }
  })

const PHASE_ORDER = ["submission", "availability", "requirements", "loading", "quality", "execution"]

/** Share of n executors × B spent inside execution-phase handlers (group received → phase_result). */
const busyShare = (r: BatchRun, n: number) => (r.phases.get("execution")?.sumMs ?? 0) / (n * r.ms)

const describeRun = (label: string, r: BatchRun, n: number) => {
  const cpuTotal = r.cpu.self + sum(r.cpu.executors) + r.cpu.server
  const exec = r.phases.get("execution")
  console.log(
    `  ${label}: B = ${fmt(r.ms)} ms (${r.record.total} scenarios, ${r.record.groups} groups, ${exec?.n ?? 0} exec messages) | CPU s: bench+actors ${r.cpu.self.toFixed(2)}, ` +
      `executors ${r.cpu.executors.map((c) => c.toFixed(2)).join(" + ")}, nats-server ${r.cpu.server.toFixed(2)} = ${cpuTotal.toFixed(2)}, other processes ${r.cpu.others.toFixed(2)}, of ${((r.ms / 1000) * cpus().length).toFixed(2)} core-s | ` +
      `executors busy ${pct(busyShare(r, n))} of ${n}×B` +
      (r.execMsSum > 0 ? `, in the engine ${pct(r.execMsSum / (n * r.ms))}` : "") +
      ` | load avg ${loadavg()[0].toFixed(1)}`
  )
}

const describeTimeline = (r: BatchRun) => {
  const parts = PHASE_ORDER.filter((p) => r.phases.has(p)).map((p) => {
    const s = r.phases.get(p)!
    return `${p} ${s.n}× Σ${fmt(s.sumMs)} ms (max ${fmt(s.maxMs)}) ${fmt(s.firstStartAt)}→${fmt(s.firstDoneAt)}…${fmt(s.lastDoneAt)}`
  })
  console.log(`    timeline, ms after submit (first start→first done…last done): ${parts.join(" | ")}`)
  if (r.byExecutor.size > 0)
    console.log(
      `    per executor: ${[...r.byExecutor.values()]
        .map((e, i) => `#${i + 1} ${e.n} results, Σ exec_ms ${fmt(e.execMs)}, results ${fmt(e.firstAt)}…${fmt(e.lastAt)}`)
        .join(" | ")}`
    )
  console.log(
    `    results: ${r.results}${r.runEvents > 0 ? ` (${r.runEvents} long runs streamed started/equity events)` : ""} arrived ${fmt(r.firstResultAt)}…${fmt(r.lastResultAt)} ms (${fmt(r.resultBytes / 1e6)} MB, ${fmt(r.resultBytes / Math.max(1, r.results))} B each)` +
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

// ---------------------------------------------------------------- (a) + (b), large scenarios

/** In-process A, then the pipeline with 1 and n executors (spawned into `executors`). */
const largeEnd = (root: string, executors: ChildProcess[]) =>
  Effect.gen(function* () {
    const settings = yield* NatsSettings
    const largeScenarios = expand(LARGE, "inproc-large")
    // (a) in-process
    const A = yield* measureInProcess(root, largeScenarios, "(a) large", 10)
    yield* measureGroupCodec(largeScenarios, "large batch")

    // (b) one executor
    executors.push(...(yield* spawnExecutors(1, settings, root)))
    const up1 = yield* waitForExecutors(1)
    const warm1 = yield* runBatch("warmup-1", WARMUP, executors)
    console.log(`(b) 1 executor pulling after ${up1.toFixed(1)} s; warm-up batch (8 tick scenarios, other dates) ${fmt(warm1.run.ms)} ms`)
    let seq = 0
    const id = (tag: string) => `large-${tag}-${++seq}`
    const cold = yield* runBatch(id("e1cold"), LARGE, executors, { parseResults: true })
    describeRun("1 executor, cold (slices not in the object store: loader reads Parquet, stores 4 slices; executor fetches them)", cold.run, 1)
    describeTimeline(cold.run)
    const b1: BatchRun[] = []
    for (let i = 0; i < RUNS_1; i++) {
      const r = yield* runBatch(id("e1"), LARGE, executors, { parseResults: true })
      describeRun(`1 executor, warm run ${i + 1} (slices in the store and in the executor's memory)`, r.run, 1)
      b1.push(r.run)
    }
    describeTimeline(b1[b1.length - 1])

    // (b) more executors
    const counts = [...new Set([2, EXECUTORS])].filter((n) => n > 1).sort((a, b) => a - b)
    const warmByCount = new Map<number, BatchRun[]>([[1, b1]])
    for (const n of counts) {
      executors.push(...(yield* spawnExecutors(n - executors.length, settings, root)))
      const up = yield* waitForExecutors(n)
      const first = yield* runBatch(id(`e${n}first`), LARGE, executors, { parseResults: true })
      console.log(`(b) ${n} executors pulling after ${up.toFixed(1)} s`)
      describeRun(`${n} executors, first run (slices in the store; the new executor fetches them once)`, first.run, n)
      const runs: BatchRun[] = []
      for (let i = 0; i < RUNS; i++) {
        const r = yield* runBatch(id(`e${n}`), LARGE, executors, { parseResults: true })
        describeRun(`${n} executors, warm run ${i + 1} (slices in the store and in every executor's memory)`, r.run, n)
        runs.push(r.run)
      }
      describeTimeline(runs[runs.length - 1])
      warmByCount.set(n, runs)
    }
    const Bof = (n: number) => median(warmByCount.get(n)!.map((r) => r.ms))
    const B1 = Bof(1)
    const B2 = Bof(2)
    const Bn = Bof(EXECUTORS)
    const efficiency = A.total / (Bn * EXECUTORS)
    const speedup = B1 / B2
    // efficiency = (A / A_engine) × (A_engine / Σexec_ms) × (Σexec_ms / Σexecution-phase ms) × (Σexecution-phase ms / (n × B))
    const runsN = warmByCount.get(EXECUTORS)!
    const execMs = median(runsN.map((r) => r.execMsSum))
    const execPhaseMs = median(runsN.map((r) => r.phases.get("execution")?.sumMs ?? 0))
    const fill = median(runsN.map((r) => r.phases.get("execution")?.firstStartAt ?? Number.NaN))
    const tail = median(runsN.map((r) => r.ms - Math.min(...[...r.byExecutor.values()].map((e) => e.lastAt))))
    const engine1 = median(b1.map((r) => r.execMsSum))
    console.log(
      `(b) warm medians: B(1) ${fmt(B1)} ms, B(2) ${fmt(B2)} ms${EXECUTORS > 2 ? `, B(${EXECUTORS}) ${fmt(Bn)} ms` : ""}; A ${fmt(A.total)} ms (engine ${fmt(A.engine)} ms) → ` +
        `efficiency A/(B×${EXECUTORS}) = ${efficiency.toFixed(3)} (engine only: ${(A.engine / (Bn * EXECUTORS)).toFixed(3)}), speedup 1→2 = ${speedup.toFixed(2)}; ` +
        `cold 1-executor run ${fmt(cold.run.ms)} ms`
    )
    console.log(
      `    efficiency factors at ${EXECUTORS} executors: A/A_engine ${(A.total / A.engine).toFixed(3)} (in-process slice loads; the warm pipeline loads none) × ` +
        `A_engine/Σexec_ms ${(A.engine / execMs).toFixed(3)} (engine in the executors: Σ ${fmt(execMs)} ms; 1 executor: ${fmt(engine1)} ms) × ` +
        `Σexec_ms/Σexecution-phase ${(execMs / execPhaseMs).toFixed(3)} (per-message overhead outside the engine: ${fmt(execPhaseMs - execMs)} ms) × ` +
        `executor busy ${(execPhaseMs / (Bn * EXECUTORS)).toFixed(3)} (idle ${fmt(Bn * EXECUTORS - execPhaseMs)} executor-ms: first exec message starts ${fmt(fill)} ms after submit; ` +
        `the first executor to finish waits ${fmt(tail)} ms for the batch to be done)`
    )
    return { efficiency, speedup }
  })

// ---------------------------------------------------------------- the program

const program = (root: string) =>
  Effect.gen(function* () {
    const settings = yield* NatsSettings
    const t00 = Date.now()
    const smallScenarios = expand(SMALL, "inproc-small")
    console.log(
      `large: ${expand(LARGE, "x").length} tick scenarios (${SYMBOLS.length} symbols, ${LARGE.defaults.start_date}..${LARGE.defaults.end_date}, ${TICKS_PER_MINUTE} ticks/min); ` +
        `small: ${smallScenarios.length} daily scenarios; ${EXECUTORS} executor(s) on ${cpus().length} cores; nats-server ${settings.embedded ? "embedded" : settings.servers}`
    )

    const executors: ChildProcess[] = []
    const large = RUN_LARGE ? yield* largeEnd(root, executors) : undefined
    if (!large) {
      executors.push(...(yield* spawnExecutors(EXECUTORS, settings, root)))
      yield* waitForExecutors(EXECUTORS)
      yield* runBatch("warmup-n", WARMUP, executors)
      console.log("(a), (b) skipped (LARGE=0)")
    }
    // (c) latency
    const lat = yield* firstResultLatency(String(Date.now() % 100000))
    const p50 = percentile(lat, 50)
    const p95 = percentile(lat, 95)
    console.log(
      `(c) publish → first result, single daily scenario (2019, ${SYMBOLS[0]}), ${lat.length} samples: p50 ${p50.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms, max ${Math.max(...lat).toFixed(1)} ms; load avg ${loadAvg()}`
    )

    // (d) many small
    let smallRatio: number | string = "skipped"
    if (RUN_SMALL) {
      yield* measureGroupCodec(smallScenarios, "small batch")
      const resultCost = yield* measureResultCost(root, smallScenarios)
      const Asmall = yield* measureInProcess(root, smallScenarios, "(d) small")
      const runs: BatchRun[] = []
      for (let i = 0; i < 2; i++) {
        const small = yield* runBatch(`small-${i}-${Date.now() % 100000}`, SMALL, executors, { timeoutS: SMALL_TIMEOUT_S, parseResults: true })
        if (!small.finished) {
          const rate = small.run.results / (small.run.ms / 1000)
          console.log(
            `(d) the ${smallScenarios.length}-scenario batch did not finish within ${SMALL_TIMEOUT_S} s ` +
              `(${small.run.results} results in ${fmt(small.run.ms)} ms = ${fmt(rate)}/s vs in-process ${fmt(smallScenarios.length / (Asmall.total / 1000))}/s)`
          )
          describeTimeline(small.run)
          break
        }
        describeRun(`${EXECUTORS} executors, ${smallScenarios.length} daily scenarios, run ${i + 1}`, small.run, EXECUTORS)
        describeTimeline(small.run)
        runs.push(small.run)
        if (small.run.ms > SMALL_SECOND_RUN_S * 1000) break
      }
      if (runs.length > 0) {
        const Bsmall = median(runs.map((r) => r.ms))
        smallRatio = Asmall.total / Bsmall
        console.log(
          `(d) ${smallScenarios.length} scenarios: pipeline ${fmt(smallScenarios.length / (Bsmall / 1000))}/s (median of ${runs.length}) vs in-process ${fmt(smallScenarios.length / (Asmall.total / 1000))}/s = ${smallRatio.toFixed(3)}×; ` +
            `per result outside the engine: encode ${resultCost.us.toFixed(0)} µs + decode ${resultCost.decUs.toFixed(0)} µs`
        )
      }
    } else console.log("(d) skipped (SMALL=0)")
    console.log(`total ${((Date.now() - t00) / 1000).toFixed(0)} s; load average now ${loadAvg()} on ${cpus().length} cores (other work on this machine competes with the pipeline for CPU)`)

    result("pipeline_efficiency", large ? Number(large.efficiency.toFixed(3)) : "skipped", 0.8)
    result("pipeline_speedup_1_to_2", large ? Number(large.speedup.toFixed(2)) : "skipped", 1.8)
    result("pipeline_first_result_p50_ms", Number(p50.toFixed(1)), 100)
    result("pipeline_first_result_p95_ms", Number(p95.toFixed(1)), 250)
    result("pipeline_small_vs_inprocess", typeof smallRatio === "number" ? Number(smallRatio.toFixed(3)) : smallRatio, 0.5)
    reportPeakRss(executors, (yield* NatsSettings).embedded?.pid)
  })

const main = Effect.gen(function* () {
  const root = yield* Effect.acquireRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), "tickflow-bench-pipeline-"))),
    (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
  )
  console.log(`load average at start ${loadAvg()} on ${cpus().length} cores`)
  const t0 = performance.now()
  yield* generateCatalog({ root, symbols: SYMBOLS, freqs: ["1d"], start: "1999-01-01", end: "2020-12-31", seed: 11 })
  const t1 = performance.now()
  yield* generateCatalog({ root, symbols: SYMBOLS, freqs: ["tick"], ...TICK_GEN, seed: 11, ticksPerMinute: TICKS_PER_MINUTE })
  console.log(`catalog generated under ${root}: daily 1999–2020 in ${fmt(t1 - t0)} ms, ticks ${TICK_GEN.start}..${TICK_GEN.end} in ${fmt(performance.now() - t1)} ms`)
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
