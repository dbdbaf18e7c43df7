/**
 * Phase 7, summary: the reporter derives each batch's record from what the results stream holds
 * and writes it to KV `tf_batches`, publishing it on `tf.evt.<batch>.batch` as it changes.
 *
 * Counts are exact by construction, not by careful increments: the state of a batch is a fold
 * of (a) the latest result of each scenario (`tf.res.<batch>.<scenario>`), (b) the latest
 * `phase_result` event of each (group, phase), and (c) the coordinator's `submission` events
 * (how many scenarios a submission brought). A fold of the same messages gives the same record,
 * so a redelivery, a replay, a reporter killed at any moment (its successor rebuilds unfinished
 * batches by replaying their subjects) or two reporters at once cannot skew it, and nothing
 * depends on KV compare-and-set (unsafe on a 2.9 cluster, NATS.md). The reporter is the only
 * writer that updates a batch record (the coordinator only creates it).
 *
 * Also here: the dead-letter watcher for messages the server gave up on (max_deliver reached
 * while their process kept dying): their scenarios get `failed` results; the message moves to
 * `tf.dlq.<stage>` and leaves the work queue.
 */
import { createHash } from "node:crypto"
import { Deferred, Duration, Effect, Either, Exit, Schedule, Stream } from "effect"
import type { Msg } from "@nats-io/transport-node"
import type { JsMsg } from "@nats-io/jetstream"
import { WIRE_VERSION } from "../schemas/common.js"
import { BatchRecord, PHASES, type Phase, type PhaseCounter, type ResultStatus } from "../schemas/results.js"
import { GroupOnWire } from "../schemas/wire.js"
import { Nats } from "../streams/connection.js"
import { Bus, decodeMessage, kvGet, kvKeysAsync, publishRaw, publishTrusted } from "../streams/bus.js"
import { BusError } from "../streams/errors.js"
import { followInto } from "../streams/follow.js"
import { replayAll } from "../streams/replay.js"
import { BUCKET, STREAM, SUBJECT } from "../streams/topology.js"
import { MAX_REASON, readSummary } from "./summaries.js"
import { freezeAt, missingBatchRecord, Shutdown, stopGroup } from "./common.js"
import { STAGE_PHASE } from "./runner.js"

const now = () => new Date().toISOString()
const STATUSES = new Set<string>(["success", "skipped", "failed"])
const PHASE_SET = new Set<string>(PHASES)
/** A finished batch's state is dropped after this long without news (rebuilt if news comes). */
const EVICT_AFTER_MS = 60_000
/**
 * A batch not done that has had no news this long has its results replayed: results whose
 * publisher died before their summary (summaries.ts) are counted then, and so is what a
 * follower that stalled did not deliver (once in ~15 pipeline benches a batch's record lagged
 * its last result by ~5 s, cause not found). The wait doubles after each replay, up to
 * RECONCILE_MAX_MS, so a batch of long scenarios is not replayed every gap.
 */
const RECONCILE_QUIET_MS = 2_000
const RECONCILE_MAX_MS = 60_000
/**
 * How long a batch whose phase events already account for every scenario (each skipped or
 * failed in some phase, or through execution) waits for the summaries of its last results
 * before replaying them. They follow the execution phase result within milliseconds; when the
 * summary follower stalls while the phase follower does not (seen in ~1 of 7 pipeline benches
 * today: thousands of results counted only by the 2 s quiet replay, the batch done 2.3 s after
 * its last result), the batch is done this long after its last phase result instead.
 */
const RECONCILE_COMPLETE_MS = 250

/**
 * The phases say every scenario of the batch has ended (a batch config's total; cached answers
 * and ad-hoc scenarios are not accounted for this way, so those batches wait the quiet time).
 */
export const phasesAccountForAll = (f: BatchFold): boolean => {
  let total = 0
  let ended = 0
  for (const p of f.phases.values()) {
    if (p.phase === "submission") {
      if (p.scenarioIds !== undefined) return false
      total = Math.max(total, p.total ?? 0)
      ended += p.counts.skipped + p.counts.failed
    } else ended += p.counts.skipped + p.counts.failed + (p.phase === "execution" ? p.counts.pass : 0)
  }
  return total > 0 && ended >= total && f.scenarios.size < total
}
/**
 * The fold runs this often while news arrives, and a changed record is written (KV put and
 * batch event) at most this often. At 100 ms a batch was declared done 50 ms after its last
 * result on average (bench/pipeline.ts); each pass with news costs a KV read and write.
 */
const PASS_MS = 40

interface ScenarioState {
  readonly seq: number
  readonly status: ResultStatus
  readonly phase: string | undefined
  readonly reason: string | undefined
  readonly sharpe: number | undefined
  /** a scan result's matching rows */
  readonly matches: number | undefined
}

interface PhaseState {
  readonly seq: number
  readonly phase: Phase
  readonly counts: PhaseCounter
  /** submission events: how many scenarios the submission brought, and which (ad-hoc ones) */
  readonly total?: number
  readonly scenarioIds?: ReadonlyArray<string>
  readonly batchName?: string
  readonly outputRoot?: string
  readonly groups?: number
  /** `scan` when the submission was a scanner job, with its formula */
  readonly kind?: string
  readonly formula?: string
}

/** Everything known of one batch; the record is a pure function of it. */
export interface BatchFold {
  readonly batchId: string
  readonly scenarios: Map<string, ScenarioState>
  readonly phases: Map<string, PhaseState>
  dirty: boolean
  lastNewsAt: number
  /** scenario ids in the order their first result arrived: the k-th is progress (k, total) */
  readonly completedOrder: string[]
  /** progress events published so far (scan jobs): the next is completedOrder[progressSent] */
  progressSent: number
  /** the batch's phase events were read from the stream when its results first made it final */
  phasesCaughtUp: boolean
  /**
   * the highest stream sequence of the batch's phase events folded: every earlier one is folded
   * too (the follower and a replay both deliver them in stream order), so catching up reads
   * only what comes after it
   */
  phaseSeq: number
  /** the last record written was final (done or failed) */
  final: boolean
  /** `lastNewsAt` when its results were last replayed for want of summaries, and how long to wait next */
  reconciledNewsAt: number
  reconcileAfterMs: number
}

const newFold = (batchId: string): BatchFold => ({
  batchId,
  scenarios: new Map(),
  phases: new Map(),
  dirty: true,
  lastNewsAt: Date.now(),
  completedOrder: [],
  progressSent: 0,
  phasesCaughtUp: false,
  phaseSeq: 0,
  final: false,
  reconciledNewsAt: 0,
  reconcileAfterMs: RECONCILE_QUIET_MS
})

/** The cheapest check that still catches a wrong shape (results are ~1 KB, thousands a second). */
const readResult = (m: JsMsg): { batch: string; scenario: string; state: ScenarioState } | undefined => {
  let r: Record<string, unknown>
  try {
    r = m.json<Record<string, unknown>>()
  } catch {
    return undefined
  }
  if (r === null || typeof r !== "object" || typeof r.batch_id !== "string" || typeof r.scenario_id !== "string" || !STATUSES.has(r.status as string)) return undefined
  if (m.subject !== SUBJECT.result(r.batch_id, r.scenario_id)) return undefined
  const metrics = r.metrics as { sharpe?: unknown } | undefined
  const scan = r.scan as { match_count?: unknown } | undefined
  return {
    batch: r.batch_id,
    scenario: r.scenario_id,
    state: {
      seq: m.seq,
      status: r.status as ResultStatus,
      phase: typeof r.phase === "string" ? r.phase : undefined,
      reason: typeof r.reason === "string" ? r.reason.slice(0, MAX_REASON) : undefined,
      sharpe: typeof metrics?.sharpe === "number" ? metrics.sharpe : undefined,
      matches: typeof scan?.match_count === "number" ? scan.match_count : undefined
    }
  }
}

const count = (v: unknown) => (typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : 0)

const readPhaseEvent = (m: JsMsg): { batch: string; key: string; state: PhaseState } | undefined => {
  let e: Record<string, unknown>
  try {
    e = m.json<Record<string, unknown>>()
  } catch {
    return undefined
  }
  if (e === null || typeof e !== "object" || e.kind !== "phase_result" || typeof e.batch_id !== "string" || typeof e.subject_id !== "string" || !PHASE_SET.has(e.phase as string))
    return undefined
  const d = (e.data ?? {}) as Record<string, unknown>
  const ids = Array.isArray(d.scenario_ids) ? d.scenario_ids.filter((x): x is string => typeof x === "string") : undefined
  return {
    batch: e.batch_id,
    key: `${e.subject_id}\u0000${e.phase as string}`,
    state: {
      seq: m.seq,
      phase: e.phase as Phase,
      counts: { in: count(d.in), pass: count(d.pass), skipped: count(d.skipped), failed: count(d.failed) },
      ...(typeof d.total === "number" ? { total: count(d.total) } : {}),
      ...(ids ? { scenarioIds: ids } : {}),
      ...(typeof d.batch_name === "string" ? { batchName: d.batch_name } : {}),
      ...(typeof d.output_root === "string" ? { outputRoot: d.output_root } : {}),
      ...(typeof d.groups === "number" ? { groups: count(d.groups) } : {}),
      ...(typeof d.kind === "string" ? { kind: d.kind } : {}),
      ...(typeof d.formula === "string" ? { formula: d.formula.slice(0, 4_000) } : {})
    }
  }
}

/** One scenario's latest state into its batch's fold: the newer stream sequence wins. */
const foldScenario = (f: BatchFold, scenario: string, state: ScenarioState) => {
  const cur = f.scenarios.get(scenario)
  if (!cur) f.completedOrder.push(scenario)
  if (!cur || cur.seq < state.seq) {
    f.scenarios.set(scenario, state)
    f.dirty = true
  }
}

/**
 * What one message says, as a change to its batch's fold: a result, a result summary
 * (summaries.ts: the same fold, under each result's own stream sequence) or a phase event.
 */
const readMessage = (m: JsMsg): { batch: string; apply: (f: BatchFold) => void } | undefined => {
  if (m.subject.startsWith("tf.res.")) {
    const r = readResult(m)
    return r && { batch: r.batch, apply: (f) => foldScenario(f, r.scenario, r.state) }
  }
  if (m.subject.endsWith(".summary")) {
    const sum = readSummary(m)
    return (
      sum && {
        batch: sum.batch,
        apply: (f) => {
          for (const e of sum.entries) foldScenario(f, e.id, { seq: e.seq, status: e.status, phase: e.phase, reason: e.reason, sharpe: e.sharpe, matches: e.matches })
        }
      }
    )
  }
  const e = readPhaseEvent(m)
  return (
    e && {
      batch: e.batch,
      apply: (f) => {
        const cur = f.phases.get(e.key)
        f.phaseSeq = Math.max(f.phaseSeq, e.state.seq)
        if (!cur || cur.seq < e.state.seq) {
          f.phases.set(e.key, e.state)
          f.dirty = true
        }
      }
    }
  )
}

/**
 * Fold one message into its batch's state (created when `create`; otherwise a batch with no
 * state is only named, for the caller to rebuild). Returns the batch it belongs to.
 */
export const foldMessage = (folds: Map<string, BatchFold>, m: JsMsg, create: boolean): string | undefined => {
  const read = readMessage(m)
  if (!read) return undefined
  let f = folds.get(read.batch)
  if (!f) {
    if (!create) return read.batch
    folds.set(read.batch, (f = newFold(read.batch)))
  }
  read.apply(f)
  f.lastNewsAt = Date.now()
  return read.batch
}

/** The batch record a fold says, over what the coordinator created (name, times, owner, ...). */
export const recordOf = (f: BatchFold, created: BatchRecord | undefined): BatchRecord => {
  const base = created ?? missingBatchRecord(f.batchId)
  const counts = { success: 0, skipped: 0, failed: 0 }
  let best: BatchRecord["best"] = undefined
  let coverageError: string | undefined
  let loadingFailures = 0
  let matches = 0
  for (const [id, s] of f.scenarios) {
    counts[s.status]++
    matches += s.matches ?? 0
    if (s.status === "failed" && s.phase === "loading") loadingFailures++
    if (s.status === "failed" && s.phase === "coverage" && coverageError === undefined) coverageError = s.reason
    if (s.sharpe !== undefined && (!best || s.sharpe > best.value || (s.sharpe === best.value && id < best.scenario_id)))
      best = { scenario_id: id, metric: "sharpe", value: s.sharpe }
  }
  const phases: Record<string, PhaseCounter> = {}
  let batchTotal = 0
  let groups = 0
  const adhoc = new Set<string>()
  let batchName: string | undefined
  let outputRoot: string | undefined
  let sawSubmission = false
  let scanFormula: string | undefined
  for (const p of f.phases.values()) {
    const c = (phases[p.phase] ??= { in: 0, pass: 0, skipped: 0, failed: 0 })
    c.in += p.counts.in
    c.pass += p.counts.pass
    c.skipped += p.counts.skipped
    c.failed += p.counts.failed
    if (p.phase !== "submission") continue
    sawSubmission = true
    if (p.kind === "scan") scanFormula = p.formula ?? scanFormula ?? ""
    if (p.scenarioIds) for (const id of p.scenarioIds) adhoc.add(id)
    else if (p.total !== undefined && p.total > batchTotal) {
      // a batch config (re)submitted: its expansion is the batch's set of scenarios
      batchTotal = p.total
      groups = Math.max(groups, p.groups ?? 0)
      batchName = p.batchName ?? batchName
      outputRoot = p.outputRoot ?? outputRoot
    }
  }
  // From the submissions alone (the stored total is this function's own earlier output); a
  // batch without submission events (groups published by hand) keeps what its record says.
  const total = sawSubmission ? batchTotal + adhoc.size : base.total
  const done = counts.success + counts.skipped + counts.failed
  const error = base.error ?? coverageError
  const noneLoadable = counts.success === 0 && counts.failed > 0 && loadingFailures === counts.failed
  let status: BatchRecord["status"] = done === 0 && base.status === "accepted" ? "accepted" : "running"
  let finalError = error
  if (base.status === "failed" && base.error && done === 0) status = "failed"
  if (total > 0 && done >= total) {
    status = error || noneLoadable ? "failed" : "done"
    if (noneLoadable && !error) finalError = "no scenario could be loaded"
  }
  const rec: BatchRecord = {
    ...base,
    batch_name: batchName ?? base.batch_name,
    total,
    groups: Math.max(base.groups, groups + adhoc.size),
    counts,
    phases,
    status,
    updated_at: now(),
    ...(outputRoot !== undefined ? { output_root: outputRoot } : {}),
    ...(finalError !== undefined ? { error: finalError } : {}),
    ...(best ? { best } : {})
  }
  if (status === "done" || status === "failed") rec.finished_at = base.finished_at ?? now()
  else delete rec.finished_at
  if (scanFormula !== undefined || base.kind === "scan") {
    // a scanner job's summary: processed, errors (skipped or failed symbols), matches, total time
    rec.kind = "scan"
    rec.scan = {
      formula: scanFormula ?? base.scan?.formula ?? "",
      processed: done,
      errors: counts.skipped + counts.failed,
      matches,
      ...(rec.finished_at !== undefined ? { total_ms: Math.max(0, Date.parse(rec.finished_at) - Date.parse(base.created_at)) } : {})
    }
  }
  return rec
}

const doneOf = (r: BatchRecord) => r.counts.success + r.counts.skipped + r.counts.failed
const isFinal = (r: BatchRecord) => r.status === "done" || r.status === "failed"

/** Write the record unless the stored one is already further along (another reporter ahead). */
const writeRecord = (f: BatchFold) =>
  Effect.gen(function* () {
    const bus = yield* Bus
    const stored = yield* kvGet(bus.batches, f.batchId, BatchRecord)
    let rec = recordOf(f, stored?.value)
    f.final = isFinal(rec)
    if (isFinal(rec) && !f.phasesCaughtUp) {
      // Results and phase events come through two followers, which keep no order between
      // them: under load the last result can arrive before phase events stored ahead of it
      // (an execution chunk publishes its phase result before its last results). Before the
      // final record goes out, read the batch's phase events from the stream (a replay stops
      // when caught up), so a batch is never "done" with its phase counts still partial: those
      // after the last one folded (reading them all took 35–50 ms for a 10,000-scenario batch).
      const events = yield* replayAll(SUBJECT.phaseEventsOf(f.batchId), { fromSeq: f.phaseSeq + 1 })
      const folds = new Map([[f.batchId, f]])
      for (const m of events) foldMessage(folds, m, false)
      f.phasesCaughtUp = true
      rec = recordOf(f, stored?.value)
    }
    const prev = stored?.value
    if (prev && (doneOf(prev) > doneOf(rec) || (isFinal(prev) && !isFinal(rec) && doneOf(prev) >= doneOf(rec)))) return
    const same =
      prev !== undefined &&
      prev.status === rec.status &&
      prev.total === rec.total &&
      doneOf(prev) === doneOf(rec) &&
      JSON.stringify(prev.counts) === JSON.stringify(rec.counts) &&
      JSON.stringify(prev.phases) === JSON.stringify(rec.phases)
    if (same) return
    yield* Effect.tryPromise({
      try: () => bus.batches.put(f.batchId, JSON.stringify(rec)),
      catch: (cause) => new BusError({ op: `kv put ${f.batchId}`, cause, transient: true })
    })
    const done = doneOf(rec)
    // de-duplicated by content (two reporters publish the same record once), phases included:
    // a record whose phase counts moved while no result came is news too (`run --until`)
    const content = createHash("sha256").update(JSON.stringify([rec.status, rec.total, rec.counts, rec.phases])).digest("hex").slice(0, 16)
    if (done > 0 && !isFinal(rec)) yield* freezeAt("summary", "partial")
    yield* publishTrusted(SUBJECT.batchEvent(f.batchId), rec, { msgId: `batch:${f.batchId}:${done}:${content}` })
    if (isFinal(rec) && !(prev && isFinal(prev))) {
      const scan = rec.scan
      const line = scan
        ? `Phase 7: scan ${rec.status}: ${scan.processed} processed, ${scan.errors} errors, ${scan.matches} matches in ${((scan.total_ms ?? 0) / 1000).toFixed(2)} s`
        : `Phase 7: batch ${rec.status}: ${rec.counts.success} success, ${rec.counts.skipped} skipped, ${rec.counts.failed} failed`
      yield* Effect.logInfo(line).pipe(
        Effect.annotateLogs({
          batch_id: f.batchId,
          phase: "summary",
          ...rec.counts,
          total: rec.total,
          ...(scan ? { processed: scan.processed, errors: scan.errors, matches: scan.matches, total_ms: scan.total_ms } : {})
        })
      )
    }
  })

/**
 * A scanner job's progress: one event `tf.evt.<job>.job.progress` {completed, total, symbol} per
 * finished symbol, in the order results reached the stream, so a job of 4 symbols says (1,4),
 * (2,4), (3,4), (4,4) however results were batched. Ids are per step (`<job>:progress:<k>`): a
 * rebuilt reporter or a second one republishes the same steps, stored once.
 */
const publishProgress = (f: BatchFold) =>
  Effect.gen(function* () {
    let kind: string | undefined
    let total = 0
    for (const p of f.phases.values()) if (p.phase === "submission" && p.kind === "scan") (kind = "scan"), (total = Math.max(total, p.total ?? 0))
    if (kind !== "scan" || total === 0) return
    while (f.progressSent < f.completedOrder.length) {
      const k = f.progressSent + 1
      const scenario = f.completedOrder[k - 1]
      const state = f.scenarios.get(scenario)
      yield* publishTrusted(
        SUBJECT.event(f.batchId, "job", "progress"),
        {
          v: WIRE_VERSION,
          batch_id: f.batchId,
          subject_id: "job",
          kind: "progress",
          phase: "summary",
          at: now(),
          data: { completed: k, total, scenario_id: scenario, status: state?.status, ...(state?.matches !== undefined ? { matches: state.matches } : {}) }
        },
        { msgId: `${f.batchId}:progress:${k}` }
      )
      f.progressSent = k
    }
  })

/** Rebuild one batch's fold from everything the results stream holds for it. */
const rebuild = (folds: Map<string, BatchFold>, batchId: string) =>
  Effect.gen(function* () {
    const f = folds.get(batchId) ?? newFold(batchId)
    folds.set(batchId, f)
    const [results, events] = yield* Effect.all(
      [replayAll(SUBJECT.resultsOf(batchId), { lastPerSubject: true }), replayAll(SUBJECT.phaseEventsOf(batchId))],
      { concurrency: 2 }
    )
    for (const m of results) foldMessage(folds, m, true)
    for (const m of events) foldMessage(folds, m, true)
    f.dirty = true
    yield* Effect.logInfo("batch state rebuilt from the results stream").pipe(
      Effect.annotateLogs({ batch_id: batchId, results: results.length, phase_events: events.length })
    )
  })

/** Batches whose record is not final: their state is rebuilt when a reporter starts. */
const unfinishedBatches = Effect.gen(function* () {
  const bus = yield* Bus
  const { jsm } = yield* Nats
  // not kv.keys(): its consumer would stay on KV_tf_batches (kvKeysAsync)
  const keys = yield* Effect.tryPromise({
    try: () => kvKeysAsync(jsm, BUCKET.batches, ">"),
    catch: (cause) => new BusError({ op: "list batches", cause, transient: true })
  })
  const open: string[] = []
  yield* Effect.forEach(
    keys,
    (k) =>
      kvGet(bus.batches, k, BatchRecord).pipe(
        Effect.map((r) => {
          if (r && !isFinal(r.value)) open.push(k)
        })
      ),
    { concurrency: 16, discard: true }
  )
  return open
})

const handleChunk = (folds: Map<string, BatchFold>, chunk: ReadonlyArray<JsMsg>) =>
  Effect.gen(function* () {
    const unknown = new Set<string>()
    for (const m of chunk) {
      const b = foldMessage(folds, m, false)
      if (b !== undefined && !folds.has(b)) unknown.add(b)
    }
    // News of a batch we hold no state for (new, evicted, or missed while down): rebuild it
    // from the stream, which includes this chunk's messages.
    yield* Effect.forEach(unknown, (b) => rebuild(folds, b), { concurrency: 4, discard: true })
    // Batches gone quiet before done: replay their results (the truth) in case summaries are missing.
    const now = Date.now()
    const quiet = [...folds.values()].filter(
      (f) => !f.final && f.reconciledNewsAt !== f.lastNewsAt && now - f.lastNewsAt > (phasesAccountForAll(f) ? RECONCILE_COMPLETE_MS : f.reconcileAfterMs)
    )
    yield* Effect.forEach(
      quiet,
      (f) =>
        Effect.gen(function* () {
          const news = f.lastNewsAt
          const before = new Map([...f.scenarios].map(([id, st]) => [id, st.seq] as const))
          yield* rebuild(folds, f.batchId)
          // what only the replay knew: results whose summary never came (their publisher died
          // before it, or it was lost on the way), said once per replay, a few by name
          const missed = [...f.scenarios].filter(([id, st]) => before.get(id) !== st.seq)
          if (missed.length > 0)
            yield* Effect.logWarning("a quiet batch's replay found results its summaries had not said").pipe(
              Effect.annotateLogs({
                batch_id: f.batchId,
                results: missed.length,
                sample: missed.slice(0, 5).map(([id, st]) => `${id}@${st.seq}`).join(" ")
              })
            )
          // a replay is not news: the batch stays quiet, and the next replay waits longer
          f.lastNewsAt = f.reconciledNewsAt = news
          f.reconcileAfterMs = Math.min(RECONCILE_MAX_MS, f.reconcileAfterMs * 2)
        }),
      { concurrency: 2, discard: true }
    )
    const dirty = [...folds.values()].filter((f) => f.dirty)
    for (const f of dirty) f.dirty = false
    yield* Effect.forEach(dirty, (f) => Effect.zipRight(publishProgress(f), writeRecord(f)).pipe(Effect.tapError(() => Effect.sync(() => (f.dirty = true)))), {
      concurrency: 8,
      discard: true
    })
    const cutoff = Date.now() - EVICT_AFTER_MS
    for (const [b, f] of folds) if (!f.dirty && f.lastNewsAt < cutoff) folds.delete(b)
  })

export const reporterActor = Effect.gen(function* () {
  const shutdown = yield* Shutdown
  yield* Effect.logInfo("reporter following result summaries and phase events")
  const run = Effect.gen(function* () {
    const folds = new Map<string, BatchFold>()
    // What the followers delivered since the last pass: a plain array, folded every PASS_MS.
    const inbox: JsMsg[] = []
    const lost = yield* Deferred.make<void, BusError>()
    const onEnd = (e?: BusError) => void Deferred.unsafeDone(lost, Exit.fail(e ?? new BusError({ op: "follow", cause: "the consumer ended", transient: true })))
    // The live followers first: nothing falls between them and the start-up rebuild, and
    // folding a message twice changes nothing.
    yield* followInto(SUBJECT.allResultSummaries, { deliverNew: true }, (m) => void inbox.push(m), onEnd)
    yield* followInto(SUBJECT.allPhaseEvents, { deliverNew: true }, (m) => void inbox.push(m), onEnd)
    const open = yield* unfinishedBatches
    yield* Effect.forEach(open, (b) => rebuild(folds, b), { concurrency: 4, discard: true })
    let lastPass = 0
    // every PASS_MS when something arrived (a record is written at most that often), every
    // RECONCILE_COMPLETE_MS otherwise (the start-up rebuild's writes, batches gone quiet,
    // evictions)
    const pass = Effect.suspend(() => {
      if (inbox.length === 0 && Date.now() - lastPass < RECONCILE_COMPLETE_MS) return Effect.void
      lastPass = Date.now()
      return handleChunk(folds, inbox.splice(0, inbox.length))
    })
    yield* pass.pipe(
      Effect.repeat(Schedule.spaced(Duration.millis(PASS_MS))),
      Effect.raceFirst(Deferred.await(lost)),
      Effect.raceFirst(Deferred.await(shutdown))
    )
  }).pipe(Effect.scoped)
  yield* run.pipe(
    Effect.tapError((e) => Effect.logError("reporter failed; restarting", e)),
    // Capped at 500 ms, like the stage actors (runner.ts): the schedule's state lives as long as
    // the reporter, and after a few restarts a 5 s cap made every later nats-server restart
    // cost up to 5 s more before batches were counted.
    Effect.retry(Schedule.exponential(Duration.millis(100)).pipe(Schedule.union(Schedule.spaced(Duration.millis(500)))))
  )
}).pipe(Effect.annotateLogs({ actor: "reporter" }))

/**
 * Messages that reached max_deliver without an ack (their process died each time) stay in the
 * work queue on 2.9 (NATS.md): we answer for their scenarios, dead-letter and delete them.
 */
export const deadLetterWatcher = Effect.gen(function* () {
  const { nc, jsm } = yield* Nats
  const shutdown = yield* Shutdown
  const advisories = Stream.asyncScoped<Msg, BusError>((emit) =>
    Effect.acquireRelease(
      Effect.sync(() =>
        nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${STREAM.pipeline}.*`, {
          callback: (err, m) => {
            if (err) void emit.fail(new BusError({ op: "advisory subscription", cause: err, transient: true }))
            else void emit.single(m)
          }
        })
      ),
      (sub) => Effect.sync(() => sub.unsubscribe())
    )
  )
  yield* Effect.logInfo("dead-letter watcher listening for max-deliveries advisories")
  yield* advisories.pipe(
    Stream.interruptWhen(Deferred.await(shutdown)),
    Stream.mapEffect((m) =>
      Effect.gen(function* () {
        const adv = m.json<{ stream_seq: number; consumer: string; deliveries: number }>()
        const stored = yield* Effect.tryPromise(() => jsm.streams.getMessage(STREAM.pipeline, { seq: adv.stream_seq })).pipe(
          Effect.orElseSucceed(() => null)
        )
        if (!stored) return
        const decoded = decodeMessage(GroupOnWire, stored.subject, stored.data)
        const reason = `the ${adv.consumer} stage gave up after ${adv.deliveries} deliveries (its process died or timed out each time)`
        if (Either.isRight(decoded)) yield* stopGroup(decoded.right, decoded.right.items, "failed", STAGE_PHASE[adv.consumer] ?? "execution", reason)
        yield* publishRaw(
          SUBJECT.dlq(adv.consumer),
          JSON.stringify({ stage: adv.consumer, subject: stored.subject, stream_seq: adv.stream_seq, deliveries: adv.deliveries, reason, at: now(), payload: new TextDecoder().decode(stored.data) }),
          `dlq:${adv.consumer}:${adv.stream_seq}`
        )
        yield* Effect.tryPromise(() => jsm.streams.deleteMessage(STREAM.pipeline, adv.stream_seq)).pipe(Effect.ignore)
        yield* Effect.logError(`dead-lettered: ${reason}`).pipe(Effect.annotateLogs({ subject: stored.subject, stream_seq: adv.stream_seq }))
      }).pipe(Effect.catchAllCause((c) => Effect.logError("dead-letter handling failed", c)))
    ),
    Stream.runDrain
  )
})
