/** Shared by the actors: settings, results for scenarios a phase stops, telemetry, counters. */
import { Context, Deferred, Effect, Layer, Option } from "effect"
import { existsSync, writeFileSync } from "node:fs"
import { hostname } from "node:os"
import { ENGINE_VERSION } from "../engine/index.js"
import { processStateLayer } from "./process-state.js"
import { publishSummaries } from "./summaries.js"
import { type OutgoingMessage, publish, publishManyTrusted, publishTrusted } from "../streams/bus.js"
import { SUBJECT } from "../streams/topology.js"
import type { Scenario } from "../schemas/batch.js"
import { encodeGroup, type GroupItem, type GroupMessage, type Stage } from "../schemas/wire.js"
import {
  BatchRecord,
  emptyPhaseCounter,
  PHASE_NUMBER,
  PHASES,
  PipelineEvent,
  ScenarioResult,
  type Phase
} from "../schemas/results.js"
import { WIRE_VERSION } from "../schemas/common.js"

export interface ActorSettingsShape {
  /** catalog root used when a scenario names none */
  readonly dataRoot: string
  /** directory relative strategy module paths resolve against */
  readonly baseDir: string
  /** most scenarios per execution message (its results, curves and cache entry stay well under 1 MB) */
  readonly execChunkSize: number
  /**
   * rows an execution message should hold (scenarios × rows each): each message costs an
   * executor a few bus round trips (pull, ack, results, events, cache), so short runs travel
   * many to a message and long runs few, which still spreads them over the executors
   */
  readonly execChunkRows: number
  /** ack wait of the stage consumers; heartbeats (`working()`) go at a third of it */
  readonly ackWaitMs: number
  /** deliveries before a message is dead-lettered (matches the consumers' max_deliver) */
  readonly maxDeliver: number
  /** executors read slices from the object store (`store`) or the catalog directly (`direct`) */
  readonly executorData: "store" | "direct"
  /** name of this process in results and logs */
  readonly instance: string
  /** session actor lease: an owner that has not renewed for this long is replaced */
  readonly sessionLeaseMs: number
  /** bytes of loaded slices a process keeps in memory (SliceCache) */
  readonly sliceCacheBytes: number
  /**
   * long runs stream their equity curve as `equity` events: `single` only when the scenario
   * runs alone (the default: in a sweep of long runs the events were tens of MB per batch and
   * cost 15% of pipeline efficiency), `all`, or `none`
   */
  readonly equityEvents: "single" | "all" | "none"
  /**
   * groups a scan job of S symbols is cut into: ceil(S / scanGroups) symbols per group (at
   * least 1), so a job spreads over about 4 groups per executor while each stage handles a few
   * messages, not five per symbol
   */
  readonly scanGroups: number
  /**
   * interval of the heartbeats (`working()`) sent while a message is in hand
   * (TICKFLOW_HEARTBEAT_MS); default a third of ackWaitMs. 0 turns them off: then any message
   * held longer than the ack wait is redelivered to another consumer (the fault tests' negative
   * control shows it).
   */
  readonly heartbeatMs?: number
  /** fault tests only (TICKFLOW_TEST_FREEZE): freeze this process at one point, see `freezeAt` */
  readonly testFreeze?: TestFreeze
  /**
   * an executor with nothing to do for this long, whose heap grew 16 MB since, runs one full
   * garbage collection (TICKFLOW_IDLE_GC_MS, default 5,000; 0: never; IdleCollector). 500 keeps
   * RSS flat through back-to-back batches too (×1.08 over 20,000 scenarios instead of ×1.16),
   * but the collections in short pauses cost tick sweeps ~15% throughput (bench/pipeline.ts)
   */
  readonly idleGcMs: number
}

/**
 * Where a fault test freezes a process to kill it there, deterministically:
 * - `received`: a stage's message is decoded, nothing of its phase is published yet;
 * - `started`: inside the phase (its `phase_start` event is published, no output yet);
 * - `handled`: the handler has published everything (outputs, phase result), the message is not acked;
 * - `partial`: the reporter has written a batch record with some, not all, results counted;
 * - `claimed`: the loader holds a slice's claim in `tf_claims` and has not stored the slice.
 */
export const FREEZE_POINTS = ["received", "started", "handled", "partial", "claimed"] as const
export type FreezePoint = (typeof FREEZE_POINTS)[number]
export interface TestFreeze {
  readonly phase: Phase
  readonly point: FreezePoint
  /** file written (with the pid) when the freeze begins: the test waits for it, then kills */
  readonly marker: string
}
/** A frozen process is normally killed long before this; if not, it goes on (as after a long pause). */
const TEST_FREEZE_MS = 120_000

/** TICKFLOW_HEARTBEAT_MS: whole milliseconds, 0 for none; anything else is refused (NaN would silently mean none). */
export const parseHeartbeatMs = (text: string): number => {
  const n = Number(text)
  if (text.trim() === "" || !Number.isInteger(n) || n < 0)
    throw new Error(`TICKFLOW_HEARTBEAT_MS: ${JSON.stringify(text.slice(0, 50))} is not a whole number of milliseconds >= 0; unset it for the default (a third of the ack wait)`)
  return n
}

/** `<phase>:<point>:<marker file>`, e.g. `loading:started:/tmp/x/frozen`. */
export const parseTestFreeze = (spec: string): TestFreeze => {
  const [phase, point, ...rest] = spec.split(":")
  const marker = rest.join(":")
  if (!(PHASES as readonly string[]).includes(phase) || !(FREEZE_POINTS as readonly string[]).includes(point) || marker === "")
    throw new Error(
      `TICKFLOW_TEST_FREEZE: ${JSON.stringify(spec.slice(0, 200))} is not <phase>:<point>:<marker file> with phase one of ${PHASES.join(", ")} and point one of ${FREEZE_POINTS.join(", ")}; unset it outside fault tests`
    )
  return { phase: phase as Phase, point: point as FreezePoint, marker }
}

/**
 * Fault tests: when this process is set to freeze at (phase, point), write the marker and block
 * the whole process (no fiber, timer or socket of it runs) until the test SIGKILLs it — a crash
 * at exactly that point, whatever the machine's load. Once per process (the marker exists
 * afterwards). Nothing happens without TICKFLOW_TEST_FREEZE.
 */
export const freezeAt = (phase: Phase, point: FreezePoint) =>
  Effect.flatMap(Effect.serviceOption(ActorSettings), (settings) =>
    Effect.sync(() => {
      const f = Option.isSome(settings) ? settings.value.testFreeze : undefined
      if (!f || f.phase !== phase || f.point !== point || existsSync(f.marker)) return
      writeFileSync(f.marker, String(process.pid))
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, TEST_FREEZE_MS)
    })
  )

export class ActorSettings extends Context.Tag("tickflow/ActorSettings")<ActorSettings, ActorSettingsShape>() {}

export const defaultActorSettings = (over: Partial<ActorSettingsShape> = {}): ActorSettingsShape => ({
  dataRoot: process.env.TICKFLOW_DATA_ROOT ?? ".tickflow/data",
  baseDir: process.cwd(),
  execChunkSize: Number(process.env.TICKFLOW_EXEC_CHUNK ?? 250),
  execChunkRows: Number(process.env.TICKFLOW_EXEC_CHUNK_ROWS ?? 20_000_000),
  ackWaitMs: Number(process.env.TICKFLOW_ACK_WAIT_MS ?? 30_000),
  maxDeliver: 5,
  executorData: process.env.TICKFLOW_EXECUTOR_DATA === "direct" ? "direct" : "store",
  sessionLeaseMs: Number(process.env.TICKFLOW_SESSION_LEASE_MS ?? 10_000),
  sliceCacheBytes: Number(process.env.TICKFLOW_SLICE_CACHE_MB ?? 1024) * 1024 * 1024,
  equityEvents: process.env.TICKFLOW_EQUITY_EVENTS === "all" ? "all" : process.env.TICKFLOW_EQUITY_EVENTS === "none" ? "none" : "single",
  scanGroups: Math.max(1, Number(process.env.TICKFLOW_SCAN_GROUPS ?? 8) || 8),
  idleGcMs: Math.max(0, Number(process.env.TICKFLOW_IDLE_GC_MS ?? 5_000) || 0),
  ...(process.env.TICKFLOW_HEARTBEAT_MS !== undefined ? { heartbeatMs: parseHeartbeatMs(process.env.TICKFLOW_HEARTBEAT_MS) } : {}),
  ...(process.env.TICKFLOW_TEST_FREEZE ? { testFreeze: parseTestFreeze(process.env.TICKFLOW_TEST_FREEZE) } : {}),
  instance: `${hostname()}:${process.pid}${process.env.TICKFLOW_INSTANCE_SUFFIX ? `:${process.env.TICKFLOW_INSTANCE_SUFFIX}` : ""}`,
  ...over
})

/** The settings, with the process-local state they size (slice cache, counters). */
export const actorSettingsLayer = (over: Partial<ActorSettingsShape> = {}) => {
  const settings = defaultActorSettings(over)
  return Layer.merge(Layer.succeed(ActorSettings, settings), processStateLayer(settings.sliceCacheBytes, settings.idleGcMs))
}

/**
 * Graceful shutdown: completing it makes every actor stop taking messages; the one in hand
 * finishes (or, if the process dies, is redelivered by the server after ack_wait).
 */
export class Shutdown extends Context.Tag("tickflow/Shutdown")<Shutdown, Deferred.Deferred<void>>() {}
export const shutdownLayer = Layer.effect(Shutdown, Deferred.make<void>())

const now = () => new Date().toISOString()

/**
 * A result's de-duplication id: a redelivered message republishes the same id (stored once),
 * while a new submission of the same scenario gets its own answer on the same subject.
 */
export const resultMsgId = (batch: string, scenario: string, submission?: string) =>
  submission === undefined ? `res:${batch}:${scenario}` : `res:${batch}:${scenario}:${submission}`

/** What the phases learnt about a scenario, carried into its result. */
export interface ResultExtra {
  readonly params?: Record<string, unknown>
  readonly warnings?: ReadonlyArray<string>
  readonly attempt?: number
  readonly data_version?: string
  /** the executor that ran it (results of the execution phase) */
  readonly executor?: string
}

/** What a run adds to a result (a success from the engine, a scan). */
export interface RunFields {
  readonly metrics?: ScenarioResult["metrics"]
  readonly equity?: ScenarioResult["equity"]
  readonly equity_ref?: string
  readonly result_key?: string
  readonly scan?: ScenarioResult["scan"]
  readonly exec_ms: number
  readonly submission?: string
}

/**
 * Every result is written as one object literal of one shape: a field a result does not have
 * is `undefined`, which JSON leaves out, so the text is what a literal of only the present
 * fields gives, in the same order. `{ ...result, more: … }` — a result spread and then given
 * fields it did not have — took V8 ~10 µs a result (Node 20), more than JSON-encoding it; the
 * conditional spreads this literal had for its optional fields still cost ~10 µs a result
 * (executor CPU profile), 1 µs without them.
 */
const buildResult = (
  scenario: Scenario,
  status: ScenarioResult["status"],
  extra: ResultExtra,
  stop: { readonly phase: Phase; readonly reason: string } | undefined,
  run: RunFields | undefined
): ScenarioResult => ({
  v: WIRE_VERSION,
  batch_id: scenario.batch_id,
  scenario_id: scenario.scenario_id,
  name: scenario.name,
  status,
  strategy: scenario.strategy,
  params: extra.params ?? scenario.params,
  universe: scenario.universe,
  freq: scenario.freq,
  start_date: scenario.start_date,
  end_date: scenario.end_date,
  warnings: extra.warnings !== undefined ? extra.warnings.slice() : [],
  engine_version: ENGINE_VERSION,
  data_version: extra.data_version,
  attempt: extra.attempt,
  timings: run !== undefined ? { exec_ms: run.exec_ms } : {},
  finished_at: now(),
  phase: stop?.phase,
  reason: stop?.reason,
  metrics: run?.metrics,
  equity: run?.equity,
  equity_ref: run?.equity_ref,
  result_key: run?.result_key,
  scan: run?.scan,
  cached: run !== undefined && run.scan === undefined ? false : undefined,
  executor: extra.executor,
  submission: run?.submission
})

/** The fields every result of a scenario has, whatever its status. */
export const resultFor = (scenario: Scenario, status: ScenarioResult["status"], extra: ResultExtra = {}): ScenarioResult =>
  buildResult(scenario, status, extra, undefined, undefined)

/** The result of a scenario that ran: its metrics (or scan), where its curve is, its key. */
export const ranResult = (scenario: Scenario, extra: ResultExtra, run: RunFields): ScenarioResult => buildResult(scenario, "success", extra, undefined, run)

/** A result for a scenario that a phase stopped (skipped) or that failed. */
export const stoppedResult = (
  scenario: Scenario,
  status: "skipped" | "failed",
  phase: Phase,
  reason: string,
  extra: ResultExtra = {}
): ScenarioResult => buildResult(scenario, status, extra, { phase, reason }, undefined)

/**
 * Publish results concurrently (bulk async publish), each de-duplicated by scenario and
 * submission, then — once they are stored — their summary for the reporter (summaries.ts).
 * Results are built by our own code (typed), so the hot path skips zod: a result is checked
 * where it enters from outside (a foreign client's decoder, a replay).
 */
export const publishResults = (results: ReadonlyArray<ScenarioResult>, submission?: string) =>
  results.length === 0 ? Effect.void : publishResultMessages(results, resultMessages(results, submission))

/** `publishResults` with the messages already built (`resultMessages` of the same results, in order). */
export const publishResultMessages = (results: ReadonlyArray<ScenarioResult>, messages: ReadonlyArray<OutgoingMessage>) =>
  Effect.flatMap(publishManyTrusted(messages), (acks) => publishSummaries(results, acks))

/**
 * The messages of `publishResults`, to send along with others in one bulk publish: each result
 * JSON-encoded once, to bytes (an executor's cache entry reuses them). `Buffer.from` takes small
 * buffers from Node's pool; a TextEncoder allocated a fresh ArrayBuffer per result.
 */
export const resultMessages = (results: ReadonlyArray<ScenarioResult>, submission?: string): Array<OutgoingMessage & { readonly payload: Uint8Array }> =>
  results.map((r) => {
    // Object.assign, not a spread: see buildResult
    const out = submission !== undefined && r.submission === undefined ? Object.assign({}, r, { submission }) : r
    return { subject: SUBJECT.result(out.batch_id, out.scenario_id), payload: Buffer.from(JSON.stringify(out), "utf8"), msgId: resultMsgId(out.batch_id, out.scenario_id, out.submission) }
  })

/** Stop every scenario of a group with the same status and reason. */
export const stopGroup = (
  group: GroupMessage,
  items: ReadonlyArray<GroupItem>,
  status: "skipped" | "failed",
  phase: Phase,
  reason: string,
  attempt?: number
) =>
  publishResults(
    items.map((it) =>
      stoppedResult(it.scenario, status, phase, reason, {
        ...(it.params ? { params: it.params } : {}),
        warnings: it.warnings,
        ...(attempt !== undefined ? { attempt } : {}),
        ...(group.data_version !== undefined ? { data_version: group.data_version } : {})
      })
    ),
    group.submission
  )

const PHASE_TITLE: Record<Phase, string> = {
  submission: "Accepting submission",
  coverage: "Building coverage index",
  availability: "Checking availability",
  requirements: "Resolving requirements",
  loading: "Loading data",
  quality: "Checking data quality",
  execution: "Executing scenarios",
  summary: "Summarising"
}

/** `Phase 4: Loading data...` log line + phase_start event; returns the start time. */
export const phaseStart = (phase: Phase, group: GroupMessage) =>
  Effect.gen(function* () {
    yield* Effect.logInfo(`Phase ${PHASE_NUMBER[phase]}: ${PHASE_TITLE[phase]}...`).pipe(
      Effect.annotateLogs({ phase, batch_id: group.batch_id, group_id: group.group_id, scenarios: group.items.length })
    )
    yield* publish(
      SUBJECT.event(group.batch_id, group.group_id, "phase"),
      PipelineEvent,
      { v: WIRE_VERSION, batch_id: group.batch_id, subject_id: group.group_id, kind: "phase_start", phase, at: now(), data: { scenarios: group.items.length } },
      { msgId: `${group.batch_id}:${group.group_id}:${phase}:start` }
    )
    yield* freezeAt(phase, "started")
    return Date.now()
  })

/**
 * phase_result: a telemetry event and a log line. The event's id is stable per (group, phase),
 * so a redelivered group republishes the same event; the reporter folds the latest event of
 * each (group, phase) into the batch record's phase counters, which therefore stay exact under
 * redeliveries and restarts (no per-group compare-and-set on the batch record).
 */
export const phaseResult = (
  phase: Phase,
  group: GroupMessage,
  started: number,
  counts: { in: number; pass: number; skipped: number; failed: number },
  extra: Record<string, unknown> = {}
) =>
  Effect.flatMap(phaseResultMessage(phase, group, started, counts, extra), (m) =>
    publish(m.subject, PipelineEvent, m.value, { msgId: m.msgId })
  )

/** The phase_result event (and its log line), for a caller that sends it in a bulk publish. */
export const phaseResultMessage = (
  phase: Phase,
  group: GroupMessage,
  started: number,
  counts: { in: number; pass: number; skipped: number; failed: number },
  extra: Record<string, unknown> = {}
) =>
  Effect.gen(function* () {
    const ms = Date.now() - started
    yield* Effect.logInfo(`Phase ${PHASE_NUMBER[phase]}: ${PHASE_TITLE[phase]} done`).pipe(
      Effect.annotateLogs({ phase, batch_id: group.batch_id, group_id: group.group_id, ms, ...counts, ...extra })
    )
    const value: PipelineEvent = {
      v: WIRE_VERSION,
      batch_id: group.batch_id,
      subject_id: group.group_id,
      kind: "phase_result",
      phase,
      at: now(),
      data: { ...counts, ms, ...extra }
    }
    return { subject: SUBJECT.event(group.batch_id, group.group_id, "phase"), value, msgId: `${group.batch_id}:${group.group_id}:${phase}:result` } satisfies OutgoingMessage
  })

/** A record for a batch the coordinator never saw (a group published by hand): counted anyway. */
export const missingBatchRecord = (batchId: string): BatchRecord => ({
  v: WIRE_VERSION,
  batch_id: batchId,
  batch_name: batchId,
  status: "running",
  total: 0,
  groups: 0,
  counts: { success: 0, skipped: 0, failed: 0 },
  phases: {},
  created_at: now(),
  updated_at: now()
})

/**
 * True when some item reads its own symbols rather than the whole slice's (a scan group: one
 * symbol per item, the slice holds them all). Such groups are judged per item where a backtest
 * group is judged as a whole: one symbol's missing or bad data stops only its own scenario.
 */
export const ownUniverses = (group: GroupMessage) =>
  group.items.some((it) => it.scenario.universe !== group.slice.universe && it.scenario.universe.join() !== group.slice.universe.join())

/** Messages for the next stage get a stable id: a redelivered input republishes the same ids. */
export const stageMsgId = (group: GroupMessage, stage: string) => `${group.batch_id}:${group.group_id}:${stage}`

/**
 * Send a group to a stage in its compact wire form (shared fields once), de-duplicated by id.
 * Our own typed code built it, so no zod pass on the way out (a 500-scenario group cost ~10 ms
 * per stage to validate); the next stage decodes it with GroupOnWire at its boundary.
 */
export const publishGroup = (stage: Stage, group: GroupMessage) =>
  publishTrusted(SUBJECT.stage(stage, group.batch_id), encodeGroup(group), { msgId: stageMsgId(group, stage) })
