/**
 * Phase 6, execution. Executors are competing consumers of one durable consumer: start more
 * of them (here or on other machines) and they share the work. An executor runs a group's
 * parameter sets over one loaded slice — a sweep is a loop over parameters on the same arrays —
 * and publishes one result per scenario, in bulk, while it goes. `working()` keeps the message
 * while a long group runs; a killed executor's message is redelivered to another, which skips
 * the scenarios that already have a final result (and results are de-duplicated by id).
 */
import { Effect } from "effect"
import {
  EngineRunError,
  runBacktest,
  scenarioSeed,
  validateParams
} from "../engine/index.js"
import type { PriceSeries } from "../engine/types.js"
import { dayEndMs, dayStartMs, WIRE_VERSION } from "../schemas/common.js"
import type { GroupItem } from "../schemas/wire.js"
import { PipelineEvent, RunStatus, type ScenarioResult } from "../schemas/results.js"
import { Bus, kvGet, publish } from "../streams/bus.js"
import type { Nats } from "../streams/connection.js"
import { SUBJECT } from "../streams/topology.js"
import { ActorSettings, phaseResult, phaseStart, publishResults, resultFor, stoppedResult } from "./common.js"
import { fetchSlice, loadSliceDirect } from "./slices.js"
import { StrategyStore } from "../strategies-store.js"
import { groupActor } from "./runner.js"

/** Scenarios with at least this many rows stream `started` and `progress` events. */
const EVENT_ROWS = 100_000
/** Give the event loop a turn (heartbeats, acks, publishes) at least this often. */
const YIELD_EVERY_MS = 50
/** Publish results in bulk: when this many are ready, or this long after the first. */
const FLUSH_COUNT = 64
const FLUSH_MS = 100

export const executorMetrics = { groups: 0, scenarios: 0, skippedAsDone: 0 }

const now = () => new Date().toISOString()

/**
 * Long runs also stream their equity curve, in chunks, as `equity` events (DESIGN.md) — by
 * default only when the scenario runs alone (a single submitted scenario): in a sweep of long
 * runs the events were tens of MB per batch and cost 15% of pipeline efficiency
 * (bench/pipeline.ts: 0.73 → 0.85 without them). TICKFLOW_EQUITY_EVENTS=all streams them always,
 * =none never.
 */
const EQUITY_EVENTS = (process.env.TICKFLOW_EQUITY_EVENTS ?? "single") as "single" | "all" | "none"
const EVENT_EQUITY_POINTS = 2_000
const EQUITY_CHUNK = 500
const RESULT_EQUITY_POINTS = 120

/** Every k-th point, always keeping the last: the result's curve from a long run's finer one. */
const thin = (eq: { ts: number[]; nav: number[] }, max: number) => {
  if (eq.ts.length <= max) return eq
  const step = (eq.ts.length - 1) / (max - 1)
  const idx = Array.from({ length: max }, (_, i) => Math.round(i * step))
  return { ts: idx.map((i) => eq.ts[i]), nav: idx.map((i) => eq.nav[i]) }
}

type EventKind = "started" | "progress" | "equity"

interface RunContext {
  readonly dataVersion: string | undefined
  readonly instance: string
  readonly attempt: number
  /** built-ins, and published modules fetched by name@hash (never paths) */
  readonly strategies: StrategyStore
  /** fire-and-forget telemetry publish; the returned promise never rejects */
  readonly emit: (s: GroupItem["scenario"], kind: EventKind, seq: number, data: Record<string, unknown>) => Promise<unknown>
  /** stream the equity curve of long runs as events */
  readonly equityEvents: boolean
}

const runOne = (item: GroupItem, series: ReadonlyArray<PriceSeries>, ctx: RunContext) =>
  Effect.gen(function* () {
    const s = item.scenario
    const base = { ...(item.params ? { params: item.params } : {}), warnings: item.warnings, attempt: ctx.attempt, ...(ctx.dataVersion ? { data_version: ctx.dataVersion } : {}) }
    const def = yield* Effect.either(ctx.strategies.load(s.strategy))
    if (def._tag === "Left") {
      const cause = (def.left as { error?: unknown }).error ?? def.left
      return stoppedResult(s, "failed", "execution", `strategy could not be loaded: ${(cause as Error).message ?? String(cause)}`, base)
    }
    // Second parameter check: the executor may run a different build than requirements did.
    const v = validateParams(def.right, item.params ?? s.params, { strict: s.strict })
    if (!v.ok) return stoppedResult(s, "skipped", "execution", v.errors.join("; "), base)
    const rows = series.reduce((n, x) => n + x.ts.length, 0)
    const longRun = rows >= EVENT_ROWS
    const events: Array<Promise<unknown>> = []
    let seq = 0
    const emit = (kind: EventKind, data: Record<string, unknown>) => events.push(ctx.emit(s, kind, seq++, data))
    if (longRun) emit("started", { rows, executor: ctx.instance })
    let lastProgress = Date.now()
    const t0 = performance.now()
    try {
      const result = runBacktest(
        {
          strategy: def.right,
          params: v.params,
          startCapital: s.start_capital,
          costs: s.costs,
          seed: scenarioSeed(s.batch_seed, s.scenario_id),
          startMs: dayStartMs(s.start_date),
          endMs: dayEndMs(s.end_date),
          // Results stay small for 10,000-scenario sweeps: ~monthly points over ten years.
          maxEquityPoints: longRun && ctx.equityEvents ? EVENT_EQUITY_POINTS : RESULT_EQUITY_POINTS,
          ...(longRun
            ? {
                progressEvery: 250_000,
                onProgress: (done: number, total: number) => {
                  if (Date.now() - lastProgress < 500) return
                  lastProgress = Date.now()
                  emit("progress", { done, total })
                }
              }
            : {})
        },
        series
      )
      const execMs = performance.now() - t0
      if (longRun && ctx.equityEvents) {
        const chunks = Math.ceil(result.equity.ts.length / EQUITY_CHUNK)
        for (let c = 0; c < chunks; c++)
          emit("equity", {
            chunk: c,
            of: chunks,
            ts: result.equity.ts.slice(c * EQUITY_CHUNK, (c + 1) * EQUITY_CHUNK),
            nav: result.equity.nav.slice(c * EQUITY_CHUNK, (c + 1) * EQUITY_CHUNK)
          })
      }
      const out: ScenarioResult = {
        ...resultFor(s, "success", { ...base, params: v.params, warnings: [...item.warnings, ...v.warnings, ...result.warnings] }),
        metrics: result.metrics,
        equity: thin(result.equity, RESULT_EQUITY_POINTS),
        executor: ctx.instance,
        timings: { exec_ms: Math.round(execMs * 1000) / 1000 }
      }
      yield* Effect.promise(() => Promise.all(events))
      return out
    } catch (e) {
      yield* Effect.promise(() => Promise.all(events))
      const reason = e instanceof EngineRunError ? e.reason : `strategy ${s.strategy} threw: ${(e as Error)?.message ?? String(e)}`
      return { ...stoppedResult(s, "failed", "execution", reason, base), executor: ctx.instance }
    }
  })

export const executorActor = groupActor({
  name: "executor",
  consumer: "executor",
  phase: "execution",
  // One message at a time and none buffered: an idle executor must be able to take the next.
  oneAtATime: true,
  handle: (group, delivery) =>
    Effect.gen(function* () {
      const settings = yield* ActorSettings
      const bus = yield* Bus
      const natsContext = yield* Effect.context<Nats>()
      const ctx: RunContext = {
        dataVersion: group.data_version,
        instance: settings.instance,
        attempt: delivery.deliveryCount,
        strategies: yield* StrategyStore,
        equityEvents: EQUITY_EVENTS === "all" || (EQUITY_EVENTS === "single" && group.items.length === 1),
        emit: (s, kind, seq, data) =>
          Effect.runPromise(
            publish(
              SUBJECT.event(s.batch_id, s.scenario_id, kind),
              PipelineEvent,
              { v: WIRE_VERSION, batch_id: s.batch_id, subject_id: s.scenario_id, kind, phase: "execution", at: now(), data },
              { msgId: `${s.batch_id}:${s.scenario_id}:${kind}:${delivery.deliveryCount}:${seq}` }
            ).pipe(Effect.provide(natsContext))
          ).catch(() => undefined)
      }
      const started = yield* phaseStart("execution", group)
      const root = group.slice.data_root ?? settings.dataRoot
      const refs = group.slices ?? []
      const getSeries = (ref: (typeof refs)[number]): Effect.Effect<PriceSeries, { message: string }, Bus> =>
        settings.executorData === "direct" ? loadSliceDirect(root, group.slice, ref) : fetchSlice(ref)
      const series = yield* Effect.forEach(refs, getSeries, { concurrency: 4 })
      executorMetrics.groups++
      const pending: ScenarioResult[] = []
      let firstPendingAt = 0
      let lastYield = Date.now()
      const counts = { in: group.items.length, pass: 0, skipped: 0, failed: 0 }
      const flush = Effect.suspend(() => {
        const batch = pending.splice(0, pending.length)
        return publishResults(batch)
      })
      for (const item of group.items) {
        if (delivery.deliveryCount > 1) {
          // Redelivered (an executor died or timed out): scenarios already finished are not rerun.
          const done = yield* kvGet(bus.runs, `${item.scenario.batch_id}.${item.scenario.scenario_id}`, RunStatus)
          if (done && done.value.status !== "queued" && done.value.status !== "running") {
            executorMetrics.skippedAsDone++
            continue
          }
        }
        const r = yield* runOne(item, series, ctx)
        executorMetrics.scenarios++
        if (r.status === "success") counts.pass++
        else if (r.status === "skipped") counts.skipped++
        else counts.failed++
        if (pending.length === 0) firstPendingAt = Date.now()
        pending.push(r)
        if (pending.length >= FLUSH_COUNT || Date.now() - firstPendingAt > FLUSH_MS) yield* flush
        if (Date.now() - lastYield > YIELD_EVERY_MS) {
          // A real macrotask turn, so the heartbeat timer and socket I/O get to run.
          yield* Effect.sleep(0)
          lastYield = Date.now()
        }
      }
      yield* flush
      yield* phaseResult("execution", group, started, counts)
    })
})
