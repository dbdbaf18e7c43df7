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
  ENGINE_VERSION,
  EngineRunError,
  loadStrategy,
  runBacktest,
  scenarioSeed,
  validateParams
} from "../engine/index.js"
import type { PriceSeries } from "../engine/types.js"
import { dayEndMs, dayStartMs, WIRE_VERSION } from "../schemas/common.js"
import { GroupMessage, type GroupItem } from "../schemas/wire.js"
import { PipelineEvent, RunStatus, type ScenarioResult } from "../schemas/results.js"
import { Bus, kvGet, publish } from "../streams/bus.js"
import { SUBJECT } from "../streams/topology.js"
import { ActorSettings, phaseResult, phaseStart, publishResults, stopGroup, stoppedResult } from "./common.js"
import { fetchSlice, loadSliceDirect } from "./slices.js"
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

const runOne = (item: GroupItem, series: ReadonlyArray<PriceSeries>, dataVersion: string | undefined, instance: string, attempt: number, baseDir: string) =>
  Effect.gen(function* () {
    const s = item.scenario
    const base = { ...(item.params ? { params: item.params } : {}), warnings: item.warnings, attempt, ...(dataVersion ? { data_version: dataVersion } : {}) }
    const def = yield* Effect.either(Effect.tryPromise(() => loadStrategy(s.strategy, baseDir)))
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
    const emit = (kind: "started" | "progress", data: Record<string, unknown>) =>
      events.push(
        Effect.runPromise(
          publish(SUBJECT.event(s.batch_id, s.scenario_id, kind), PipelineEvent, {
            v: WIRE_VERSION,
            batch_id: s.batch_id,
            subject_id: s.scenario_id,
            kind,
            phase: "execution",
            at: now(),
            data
          }, { msgId: `${s.batch_id}:${s.scenario_id}:${kind}:${attempt}:${String(data.done ?? 0)}` }).pipe(Effect.provide(currentNats))
        ).catch(() => undefined)
      )
    if (longRun) emit("started", { rows, executor: instance })
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
          maxEquityPoints: 120,
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
      const out: ScenarioResult = {
        ...stoppedResult(s, "failed", "execution", "", base),
        status: "success",
        phase: undefined,
        reason: undefined,
        params: v.params,
        metrics: result.metrics,
        equity: result.equity,
        warnings: [...item.warnings, ...v.warnings, ...result.warnings],
        engine_version: ENGINE_VERSION,
        executor: instance,
        timings: { exec_ms: Math.round(execMs * 1000) / 1000 }
      }
      delete out.phase
      delete out.reason
      yield* Effect.promise(() => Promise.all(events))
      return out
    } catch (e) {
      yield* Effect.promise(() => Promise.all(events))
      const reason = e instanceof EngineRunError ? e.reason : `strategy ${s.strategy} threw: ${(e as Error)?.message ?? String(e)}`
      return { ...stoppedResult(s, "failed", "execution", reason, base), executor: instance }
    }
  })

/** The Nats service captured for fire-and-forget event publishes from inside the hot loop. */
let currentNats: import("effect").Context.Context<import("../streams/connection.js").Nats>

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
      currentNats = yield* Effect.context<import("../streams/connection.js").Nats>()
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
        const r = yield* runOne(item, series, group.data_version, settings.instance, delivery.deliveryCount, settings.baseDir)
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
