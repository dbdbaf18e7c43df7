/**
 * bench/pipeline.ts, the in-process side: the peer every pipeline figure is a ratio against, and
 * what the stages pay per message and per result outside the engine.
 */
import { Effect } from "effect"
import { cpus, loadavg } from "node:os"
import { fmt, gc, machineCpuSeconds, median, selfCpuSeconds } from "./_support.js"
import { loadSlice } from "../src/data/index.js"
import { getStrategy, runBacktest, scenarioSeed, validateParams } from "../src/engine/index.js"
import type { PriceSeries } from "../src/engine/types.js"
import { sliceGroupKey, type Scenario } from "../src/schemas/batch.js"
import { dayEndMs, dayStartMs } from "../src/schemas/common.js"
import { ScenarioResult } from "../src/schemas/results.js"
import { encodeGroup, GroupOnWire, GroupWire } from "../src/schemas/wire.js"
import { decodeMessage } from "../src/streams/bus.js"
import { stoppedResult } from "../src/actors/common.js"
import { groupScenarios } from "../src/actors/coordinator.js"

/** timed runs per measurement (median); the in-process ones after a warm-up */
export const RUNS = 3
/** Executors keep 120 equity points per scenario in sweeps (src/actors/executor.ts): so does A. */
const RESULT_EQUITY_POINTS = 120
const decoder = new TextDecoder()
const loadAvg = () => loadavg().map((x) => x.toFixed(1)).join(" ")
const sum = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0)


export interface InProcess {
  loadMs: number
  runMs: number
  totalMs: number
  rows: number
}

/** Load each distinct slice once, then run every scenario — what one executor does, minus the bus. */
export const runInProcess = (root: string, scenarios: ReadonlyArray<Scenario>) =>
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
            // as an executor: the scenario's own warm-up from the shared slice, a thin curve
            warmupBars: def.calculateRequirements(params as never, s.freq).warmupBars,
            maxEquityPoints: RESULT_EQUITY_POINTS
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
export const measureInProcess = (root: string, scenarios: ReadonlyArray<Scenario>, label: string, warmup = scenarios.length) =>
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
    return { total, load, engine, rows: runs[0].rows, runs: runs.map((r) => r.totalMs) }
  })

/**
 * What an executor does per scenario beyond the engine: build the result object, validate it
 * with the ScenarioResult schema and JSON-encode it (typed publish); and what the reporter does
 * to decode it. Measured here on a daily scenario's output.
 */
export const measureResultCost = (root: string, scenarios: ReadonlyArray<Scenario>) =>
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
        maxEquityPoints: RESULT_EQUITY_POINTS
      },
      [loaded.series]
    )
    // a thin result, as executors publish them in sweeps: the curve travels once per chunk
    const make = () => ({
      ...stoppedResult(s0, "failed", "execution", ""),
      status: "success" as const,
      phase: undefined,
      reason: undefined,
      params: v.params,
      metrics: r.metrics,
      equity_ref: `tf.evt.${s0.batch_id}.g0123456789-s1-0-e0.curves`,
      result_key: "0".repeat(64),
      cached: false,
      submission: "s1",
      executor: "bench-host:12345",
      timings: { exec_ms: 0.1 }
    })
    let bytes = 0
    const n = 2_000
    for (let i = 0; i < 200; i++) JSON.stringify(make()) // warm-up
    const t0 = performance.now()
    for (let i = 0; i < n; i++) bytes = JSON.stringify(make()).length
    const us = ((performance.now() - t0) / n) * 1000
    const wire = new TextEncoder().encode(JSON.stringify(make()))
    // what the reporter does: parse and a shape check of the few fields it folds
    const t1 = performance.now()
    for (let i = 0; i < n; i++) {
      const x = JSON.parse(decoder.decode(wire)) as { status?: unknown; batch_id?: unknown }
      if (typeof x.batch_id !== "string" || typeof x.status !== "string") throw new Error("bad shape")
    }
    const decUs = ((performance.now() - t1) / n) * 1000
    // the full zod check, which a foreign client's decoder or a test still runs
    const t2 = performance.now()
    for (let i = 0; i < n; i++) decodeMessage(ScenarioResult, "tf.res.x.y", wire)
    const zodUs = ((performance.now() - t2) / n) * 1000
    console.log(
      `per result, outside the engine: executor builds + JSON-encodes it (no zod on the hot path) ${us.toFixed(0)} µs; reporter parses + shape-checks it ${decUs.toFixed(0)} µs ` +
        `(full zod decode would be ${zodUs.toFixed(0)} µs); ${fmt(bytes)} B (thin: the ${r.equity.ts.length}-point curve goes once per chunk)`
    )
    return { us, decUs, bytes }
  })

/** What every stage pays per group message: decode (JSON + zod) on consume, validate + encode on publish. */
export const measureGroupCodec = (scenarios: ReadonlyArray<Scenario>, label: string) =>
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

