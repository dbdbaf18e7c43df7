/**
 * Phase 6, execution. Executors are competing consumers of one durable consumer: start more
 * of them (here or on other machines) and they share the work. An executor runs a group's
 * parameter sets over one loaded slice — a sweep is a loop over parameters on the same arrays —
 * and publishes one result per scenario, in bulk, while it goes. `working()` keeps the message
 * while a long group runs; a killed executor's message is redelivered to another, which skips
 * the scenarios that already have a final result (and results are de-duplicated by id).
 */
import { Effect, type Either, Fiber, Option } from "effect"
import type { BusError } from "../streams/errors.js"
import {
  ENGINE_VERSION,
  EngineRunError,
  parseFormula,
  runBacktest,
  SCAN_STRATEGY,
  scanWithValues,
  scenarioSeed,
  validateParams,
  type StrategyDefinition
} from "../engine/index.js"
import { scenarioWindow } from "../engine/window.js"
import type { PriceSeries } from "../engine/types.js"
import { dayEndMs, dayStartMs, WIRE_VERSION } from "../schemas/common.js"
import type { GroupItem, GroupMessage } from "../schemas/wire.js"
import { MAX_SCAN_MATCHES, PipelineEvent, type ScenarioResult } from "../schemas/results.js"
import { type Bus, type Delivery, lastMessageOn, type OutgoingMessage, publish, publishManyTrusted } from "../streams/bus.js"
import { Nats } from "../streams/connection.js"
import { SUBJECT } from "../streams/topology.js"
import { ActorSettings, ownUniverses, phaseResultMessage, phaseStart, publishResultMessages, ranResult, resultMessages, stoppedResult, type ResultExtra } from "./common.js"
import { type CacheCandidate, storeCached } from "./cache.js"
import { type SummaryEntry, summaryEntry, summaryMessage, summaryMessages } from "./summaries.js"
import { ActorMetrics, ExecutorIdleGc, type FileFooters, type SliceCache } from "./process-state.js"
import { CurvesBuilder } from "./equity.js"
import { resultKey, sliceHash } from "./result-key.js"
import { fetchSlice, loadSliceDirect } from "./slices.js"
import { StrategyStore } from "../strategies-store.js"
import { groupActor } from "./runner.js"

/** Scenarios with at least this many rows stream `started` and `progress` events. */
const EVENT_ROWS = 100_000
/** Give the event loop a turn (heartbeats, acks, publishes) at least this often. */
const YIELD_EVERY_MS = 50
/**
 * Publish results in bulk: when this many are ready, or this long after the first. Each bulk
 * is a publish round with its own summary message for the reporter; at 64 a 10,000-scenario
 * daily sweep took 156 of them, at 256 (a whole 250-scenario chunk, ~30 ms of engine) 40, and
 * the executors used ~8% and nats-server ~15% less CPU (bench/pipeline.ts, back-to-back runs).
 * Long runs still stream out at least every FLUSH_MS.
 */
const FLUSH_COUNT = 256
const FLUSH_MS = 100
/**
 * Bulks whose acks may be outstanding while the engine goes on. Waiting for each bulk's acks
 * before the next scenario left the executor idle for a server round trip every bulk of results;
 * the chunk's message is still acknowledged only after every result's ack (at-least-once).
 */
const FLUSHES_IN_FLIGHT = 4

const now = () => new Date().toISOString()
/** a day in ms: dayEndMs(d) is dayStartMs(d) + this */
const ONE_DAY_MS = 86_400_000

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

/** A group's loaded slices: the universe in order, and every slice (benchmarks too) by symbol. */
interface LoadedSeries {
  readonly universe: ReadonlyArray<PriceSeries>
  readonly bySymbol: ReadonlyMap<string, PriceSeries>
}

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
  /** hash of the slice part of the result key (undefined without a data version) */
  readonly sliceKey: string | undefined
  /** keep the equity curve inline (a scenario run alone) instead of in the chunk's curves message */
  readonly inlineEquity: boolean
  /** subject of this chunk's curves message */
  readonly curvesSubject: string
  /** the engine version that resolved the items' params (GroupMessage.resolved_by) */
  readonly resolvedBy: string | undefined
  /** the submission the results answer (set when the result is built, not added to it later) */
  readonly submission: string | undefined
  /** dayStartMs, remembered per date for the chunk (its scenarios share a few dates) */
  readonly dayStart: (isoDate: string) => number
}

/**
 * One symbol of a scan job: the formula over the symbol's own window (its warm-up = the
 * formula's lookback, its dates), the matching rows with the values the formula compared. A
 * failure is this symbol's result; the group goes on.
 */
const runScan = (item: GroupItem, loaded: LoadedSeries, ctx: RunContext): ScenarioResult => {
  const s = item.scenario
  const base = { ...(item.params ? { params: item.params } : {}), warnings: item.warnings, attempt: ctx.attempt, ...(ctx.dataVersion ? { data_version: ctx.dataVersion } : {}), executor: ctx.instance }
  const symbol = s.universe[0]
  const series = loaded.bySymbol.get(symbol)
  if (s.universe.length !== 1 || series === undefined)
    return stoppedResult(s, "failed", "execution", `a scan scenario reads exactly one loaded symbol; this one names ${s.universe.join(", ")}`, base)
  const t0 = performance.now()
  try {
    const formula = parseFormula(String((item.params ?? s.params).formula ?? ""))
    const own = scenarioWindow({ warmupBars: item.warmup_bars ?? 0, startMs: dayStartMs(s.start_date), endMs: dayEndMs(s.end_date) }, [series]).series[0]
    const found = scanWithValues(formula, own, MAX_SCAN_MATCHES)
    return ranResult(s, base, {
      scan: {
        symbol,
        formula: formula.source,
        match_count: found.matchCount,
        truncated: found.truncated,
        matches: found.matches.map((m) => ({ ts: m.ts, time: new Date(m.ts).toISOString(), values: m.values })),
        rows: own.ts.length - own.startIndex
      },
      exec_ms: Math.round((performance.now() - t0) * 1000) / 1000,
      submission: ctx.submission
    })
  } catch (e) {
    return stoppedResult(s, "failed", "execution", `scan of ${symbol} failed: ${(e as Error)?.message ?? String(e)}`, base)
  }
}

/**
 * One scenario, as plain code: the engine run and its result. Telemetry publishes it started
 * (long runs only) are pushed to `events` for the caller to await.
 */
const runOne = (
  item: GroupItem,
  strategy: Either.Either<StrategyDefinition<any>, unknown>,
  loaded: LoadedSeries,
  ctx: RunContext,
  curves: CurvesBuilder,
  events: Array<Promise<unknown>>
): ScenarioResult => {
  const s = item.scenario
  if (s.strategy === SCAN_STRATEGY) return runScan(item, loaded, ctx)
  // what a stopped result carries (made only when one is: it is the rare path)
  const base = (): ResultExtra => ({ params: item.params, warnings: item.warnings, attempt: ctx.attempt, data_version: ctx.dataVersion || undefined })
  const def = strategy
  if (def._tag === "Left") {
    const cause = (def.left as { error?: unknown }).error ?? def.left
    return stoppedResult(s, "failed", "execution", `strategy could not be loaded: ${(cause as Error).message ?? String(cause)}`, base())
  }
  // Parameters resolved by requirements with this very engine version run as they are; a
  // different build (an executor not yet upgraded, or newer) checks them again.
  const v =
    item.params !== undefined && ctx.resolvedBy === ENGINE_VERSION
      ? { ok: true as const, params: item.params, warnings: [] as string[], errors: [] as string[] }
      : validateParams(def.right, item.params ?? s.params, { strict: s.strict })
  if (!v.ok) return stoppedResult(s, "skipped", "execution", v.errors.join("; "), base())
  const series = loaded.universe
  const rows = series.reduce((n, x) => n + x.ts.length, 0)
  const longRun = rows >= EVENT_ROWS
  let seq = 0
  const emit = (kind: EventKind, data: Record<string, unknown>) => events.push(ctx.emit(s, kind, seq++, data))
  if (longRun) emit("started", { rows, executor: ctx.instance })
  let lastProgress = Date.now()
  const t0 = performance.now()
  try {
    // no conditional spreads on the hot path (each cost V8 a slow object clone): absent fields
    // are undefined, which the engine reads as absent
    const result = runBacktest(
      {
        strategy: def.right,
        params: v.params,
        startCapital: s.start_capital,
        costs: s.costs,
        seed: scenarioSeed(s.batch_seed, s.scenario_id),
        startMs: ctx.dayStart(s.start_date),
        endMs: ctx.dayStart(s.end_date) + ONE_DAY_MS,
        // its own warm-up, whatever the group's slice holds: the result depends on the scenario only
        warmupBars: item.warmup_bars ?? 0,
        benchmark: s.benchmark !== undefined ? loaded.bySymbol.get(s.benchmark) : undefined,
        // Results stay small for 10,000-scenario sweeps: ~monthly points over ten years.
        maxEquityPoints: longRun && ctx.equityEvents ? EVENT_EQUITY_POINTS : RESULT_EQUITY_POINTS,
        progressEvery: longRun ? 250_000 : undefined,
        onProgress: longRun
          ? (done: number, total: number) => {
              if (Date.now() - lastProgress < 500) return
              lastProgress = Date.now()
              emit("progress", { done, total })
            }
          : undefined
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
    const curve = thin(result.equity, RESULT_EQUITY_POINTS)
    const out = ranResult(
      s,
      {
        params: v.params,
        warnings: v.warnings.length === 0 && result.warnings.length === 0 ? item.warnings : [...item.warnings, ...v.warnings, ...result.warnings],
        attempt: ctx.attempt,
        data_version: ctx.dataVersion,
        executor: ctx.instance
      },
      {
        metrics: result.metrics,
        equity: ctx.inlineEquity ? curve : undefined,
        equity_ref: ctx.inlineEquity ? undefined : ctx.curvesSubject,
        result_key: ctx.sliceKey !== undefined ? resultKey(ctx.sliceKey, s, v.params, item.warmup_bars ?? 0) : undefined,
        exec_ms: Math.round(execMs * 1000) / 1000,
        submission: ctx.submission
      }
    )
    if (!ctx.inlineEquity) curves.add(s.scenario_id, curve)
    return out
  } catch (e) {
    const reason = e instanceof EngineRunError ? e.reason : `strategy ${s.strategy} threw: ${(e as Error)?.message ?? String(e)}`
    return stoppedResult(s, "failed", "execution", reason, { ...base(), executor: ctx.instance })
  }
}

/**
 * Scenarios of a redelivered group that this submission already answered: the latest result on
 * each scenario's subject, if it belongs to the same submission, with its summary entry (the
 * attempt that stored it may have died before publishing its summary). One lookup per
 * scenario, paid only on redelivery.
 */
const alreadyAnswered = (group: { readonly batch_id: string; readonly submission?: string | undefined; readonly items: ReadonlyArray<GroupItem> }) =>
  Effect.gen(function* () {
    const done = new Map<string, SummaryEntry>()
    yield* Effect.forEach(
      group.items,
      (item) =>
        lastMessageOn(SUBJECT.result(group.batch_id, item.scenario.scenario_id)).pipe(
          Effect.map((m) => {
            const r = m?.json<ScenarioResult>()
            if (m && r && r.scenario_id === item.scenario.scenario_id && r.submission === group.submission && (r.status === "success" || r.status === "skipped" || r.status === "failed"))
              done.set(item.scenario.scenario_id, summaryEntry(r, m.seq))
          }),
          // not found (no result yet) is the usual answer
          Effect.catchAll(() => Effect.void)
        ),
      { concurrency: 32, discard: true }
    )
    return done
  })

/** One execution message: its scenarios run, their results, curves and cache entry published. */
const runChunk = (group: GroupMessage, delivery: Delivery<GroupMessage>) =>
  Effect.gen(function* () {
    const settings = yield* ActorSettings
    const metrics = yield* ActorMetrics
    const natsContext = yield* Effect.context<Nats>()
    const sliceKey = group.data_version !== undefined ? sliceHash(group.slice, group.data_version) : undefined
    const dayStarts = new Map<string, number>()
    const ctx: RunContext = {
      dayStart: (iso) => {
        let ms = dayStarts.get(iso)
        if (ms === undefined) dayStarts.set(iso, (ms = dayStartMs(iso)))
        return ms
      },
      sliceKey,
      inlineEquity: group.items.length === 1,
      curvesSubject: SUBJECT.curves(group.batch_id, group.group_id),
      resolvedBy: group.resolved_by,
      submission: group.submission,
      dataVersion: group.data_version,
      instance: settings.instance,
      attempt: delivery.deliveryCount,
      strategies: yield* StrategyStore,
      // long runs stream their curve as events (settings.equityEvents): by default only alone
      equityEvents: settings.equityEvents === "all" || (settings.equityEvents === "single" && group.items.length === 1),
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
    // Only the slices this message's scenarios read: an execution chunk of a scan group holds
    // some of the group's symbols, not all of them.
    const perItem = ownUniverses(group)
    const needed = perItem ? new Set(group.items.flatMap((it) => [...it.scenario.universe, ...(it.scenario.benchmark ? [it.scenario.benchmark] : [])])) : undefined
    const refs = (group.slices ?? []).filter((r) => needed === undefined || needed.has(r.symbol))
    const getSeries = (ref: (typeof refs)[number]): Effect.Effect<PriceSeries, { message: string }, Bus | Nats | SliceCache | ActorMetrics | FileFooters> =>
      settings.executorData === "direct" ? loadSliceDirect(root, group.slice, ref) : fetchSlice(ref)
    const fetched = yield* Effect.forEach(refs, getSeries, { concurrency: 4 })
    const bySymbol = new Map(refs.map((r, i) => [r.symbol, fetched[i]] as const))
    const loaded: LoadedSeries = { universe: group.slice.universe.map((sym) => bySymbol.get(sym)!).filter((x) => x !== undefined), bySymbol }
    metrics.groups++
    const pending: ScenarioResult[] = []
    // What the cache entry needs of each result (not scans: a formula's matches are cheap to
    // recompute and not a backtest result): the bytes it was published as and the fields that
    // decide whether it is stored, not the whole result kept to the chunk's end.
    const published: CacheCandidate[] = []
    const toMessages = (results: ReadonlyArray<ScenarioResult>) => {
      const messages = resultMessages(results, group.submission)
      for (let i = 0; i < results.length; i++) {
        const r = results[i]
        if (r.strategy !== SCAN_STRATEGY) published.push({ result: { status: r.status, result_key: r.result_key, cached: r.cached }, payload: messages[i].payload })
      }
      return messages
    }
    const curves = new CurvesBuilder()
    // a chunk of a sweep names one strategy: resolved once, not once per scenario
    const strategies = new Map<string, Either.Either<StrategyDefinition<any>, unknown>>()
    const finished =
      delivery.deliveryCount > 1
        ? yield* alreadyAnswered(group).pipe(
            Effect.tap((done) =>
              Effect.logInfo("redelivered execution chunk: scenarios this submission already answered are not run again").pipe(
                Effect.annotateLogs({ batch_id: group.batch_id, group_id: group.group_id, attempt: delivery.deliveryCount, answered: done.size, scenarios: group.items.length })
              )
            )
          )
        : new Map<string, SummaryEntry>()
    let firstPendingAt = 0
    let lastYield = Date.now()
    const counts = { in: group.items.length, pass: 0, skipped: 0, failed: 0 }
    const inFlight: Array<Fiber.RuntimeFiber<unknown, BusError>> = []
    // the oldest bulk's acks awaited (its failure fails the chunk) when too many are out, or done
    const settleFlushes = (max: number) =>
      Effect.gen(function* () {
        while (inFlight.length > 0 && (inFlight.length > max || Option.isSome(yield* Fiber.poll(inFlight[0])))) yield* Fiber.join(inFlight.shift()!)
      })
    // a bulk of results, then (stored) their summary for the reporter
    const flush = Effect.gen(function* () {
      const results = pending.splice(0, pending.length)
      inFlight.push(yield* Effect.fork(publishResultMessages(results, toMessages(results))))
      yield* settleFlushes(FLUSHES_IN_FLIGHT)
    })
    for (const item of group.items) {
      const answered = finished.get(item.scenario.scenario_id)
      if (answered !== undefined) {
        // Redelivered (an executor died or timed out): scenarios already answered are not rerun,
        // but count in this group's phase result as they ended, so phase counts stay exact.
        metrics.skippedAsDone++
        if (answered.status === "success") counts.pass++
        else counts[answered.status]++
        continue
      }
      let strategy = strategies.get(item.scenario.strategy)
      if (strategy === undefined) strategies.set(item.scenario.strategy, (strategy = yield* Effect.either(ctx.strategies.load(item.scenario.strategy))))
      const own: LoadedSeries = perItem ? { universe: item.scenario.universe.flatMap((sym) => bySymbol.get(sym) ?? []), bySymbol } : loaded
      const events: Array<Promise<unknown>> = []
      const r = runOne(item, strategy, own, ctx, curves, events)
      if (events.length > 0) yield* Effect.promise(() => Promise.all(events))
      metrics.scenarios++
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
    // The end of a chunk is one bulk publish, in this order on the connection (so in the
    // stream): the curves, then the phase result, then the last results — a client that reads
    // the chunk's last result finds its curve, and the record is usually complete when that
    // result makes the batch done (the reporter folds both either way). The cache entry goes
    // at the same time: one wait for all of them instead of four round trips in a row.
    const tail: OutgoingMessage[] = []
    if (curves.size > 0)
      tail.push({ subject: ctx.curvesSubject, value: { v: WIRE_VERSION, ...curves.message(group.batch_id, group.group_id) }, msgId: `${group.batch_id}:${group.group_id}:curves` })
    tail.push(yield* phaseResultMessage("execution", group, started, counts))
    const last = pending.splice(0, pending.length)
    const lastFrom = tail.length
    tail.push(...toMessages(last))
    const cacheWrite =
      sliceKey === undefined || published.length === 0
        ? Effect.void
        : storeCached(sliceKey, group.batch_id, group.group_id, published).pipe(
            Effect.catchAll((e) => Effect.logWarning("result cache write failed; the results stand, a re-run will compute them again", e))
          )
    // the last results' summary once they are stored; those answered by an earlier attempt get
    // theirs again (the same stored sequences: a summary that did go out is a duplicate)
    const tailThenSummaries = Effect.gen(function* () {
      const acks = yield* publishManyTrusted(tail)
      const summaries = summaryMessages(last, acks.slice(lastFrom))
      if (finished.size > 0) summaries.push(summaryMessage(group.batch_id, [...finished.values()]))
      if (summaries.length > 0) yield* publishManyTrusted(summaries)
    })
    yield* Effect.all([tailThenSummaries, cacheWrite, settleFlushes(0)], { concurrency: 3, discard: true })
  })

export const executorActor = groupActor({
  name: "executor",
  consumer: "executor",
  phase: "execution",
  // One message at a time and none buffered: an idle executor must be able to take the next.
  oneAtATime: true,
  handle: (group, delivery) =>
    Effect.gen(function* () {
      const idle = yield* ExecutorIdleGc
      idle.busy()
      yield* runChunk(group, delivery).pipe(Effect.ensuring(Effect.sync(() => idle.idle())))
    })
})
