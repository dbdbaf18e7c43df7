/**
 * coordinator: takes a batch config or a single scenario from `tf.submit`, expands defaults and
 * sweeps into scenarios with stable ids, records the batch in KV `tf_batches`, and publishes the
 * scenarios in groups that share a data slice to `tf.scn.avail.<batch>`.
 */
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { isAbsolute, resolve } from "node:path"
import { Effect } from "effect"
import { z } from "zod"
import { ENGINE_VERSION } from "../engine/index.js"
import {
  ID_RE,
  ConfigError,
  expandBatch,
  makeBatchId,
  parseBatchConfig,
  Scenario,
  sliceGroupKey,
  type Scenario as ScenarioT
} from "../schemas/batch.js"
import { FREQS, isRealDate, WIRE_VERSION } from "../schemas/common.js"
import { formatIssues } from "../schemas/errors.js"
import { BatchRecord, PipelineEvent } from "../schemas/results.js"
import { SubmitMessage, type GroupMessage as GroupMessageT } from "../schemas/wire.js"
import { Bus, kvCreate, kvGet, kvPut, kvUpdate, publish } from "../streams/bus.js"
import { SUBJECT } from "../streams/topology.js"
import { ActorSettings, missingBatchRecord, publishResults, publishGroup } from "./common.js"
import { runActor, TransientFault } from "./runner.js"

/** Universe files: one symbol per line, or a CSV whose first column is the symbol; # comments. */
export const universeFileReader = (baseDir: string) => (p: string): string[] =>
  readFileSync(isAbsolute(p) ? p : resolve(baseDir, p), "utf8")
    .split(/\r?\n/)
    .map((l) => l.split(",")[0].trim().toUpperCase())
    .filter((l) => l !== "" && !l.startsWith("#") && l !== "SYMBOL")

const hash = (s: string, n: number) => createHash("sha256").update(s).digest("hex").slice(0, n)
const now = () => new Date().toISOString()

/** Most scenarios in one group message and its largest JSON size (well under max_payload). */
export const MAX_GROUP_ITEMS = 500
export const MAX_GROUP_BYTES = 256 * 1024

/**
 * Split scenarios into groups sharing a slice, each under the item and byte limits. Group ids
 * carry the submission, so a new submission of the same scenarios is a new group (answered
 * again), while a redelivered submission republishes the same ids (de-duplicated).
 */
export const groupScenarios = (scenarios: ReadonlyArray<ScenarioT>, submission?: string, cache?: boolean): GroupMessageT[] => {
  const byKey = new Map<string, ScenarioT[]>()
  for (const s of scenarios) {
    const k = sliceGroupKey(s)
    const list = byKey.get(k)
    if (list) list.push(s)
    else byKey.set(k, [s])
  }
  const groups: GroupMessageT[] = []
  for (const [key, list] of byKey) {
    const base = submission === undefined ? `g${hash(key, 10)}` : `g${hash(key, 10)}-${submission}`
    let chunk: ScenarioT[] = []
    let bytes = 0
    let n = 0
    const flush = () => {
      if (chunk.length === 0) return
      const first = chunk[0]
      groups.push({
        v: WIRE_VERSION,
        batch_id: first.batch_id,
        group_id: `${base}-${n++}`,
        slice: {
          universe: [...first.universe],
          freq: first.freq,
          start_date: first.start_date,
          end_date: first.end_date,
          ...(first.data_root !== undefined ? { data_root: first.data_root } : {}),
          warmup_bars: 0
        },
        items: chunk.map((scenario) => ({ scenario, warnings: [] })),
        findings: [],
        ...(submission !== undefined ? { submission } : {}),
        ...(cache === false ? { cache: false } : {})
      })
      chunk = []
      bytes = 0
    }
    for (const s of list) {
      const size = JSON.stringify(s).length + 32
      if (chunk.length >= MAX_GROUP_ITEMS || bytes + size > MAX_GROUP_BYTES) flush()
      chunk.push(s)
      bytes += size
    }
    flush()
  }
  return groups
}

const failBatch = (batchId: string, name: string, error: string) =>
  Effect.gen(function* () {
    const bus = yield* Bus
    const rec: BatchRecord = {
      ...missingBatchRecord(batchId),
      batch_name: name,
      status: "failed",
      error,
      finished_at: now()
    }
    yield* kvPut(bus.batches, batchId, rec)
    yield* publish(SUBJECT.batchEvent(batchId), BatchRecord, rec, { msgId: `batch:${batchId}:rejected` })
    yield* Effect.logError(`batch rejected: ${error}`).pipe(Effect.annotateLogs({ batch_id: batchId }))
  })

const publishGroups = (groups: ReadonlyArray<GroupMessageT>) =>
  Effect.forEach(
    groups,
    (g) => publishGroup("avail", g),
    { concurrency: 64, discard: true }
  )

/**
 * What a submission brought, as a `submission` phase event: the reporter derives the batch's
 * total from these events (one per submission, stable id), never from increments.
 */
const submissionEvent = (batchId: string, submission: string, data: Record<string, unknown>) =>
  publish(
    SUBJECT.event(batchId, `sub-${submission}`, "phase"),
    PipelineEvent,
    { v: WIRE_VERSION, batch_id: batchId, subject_id: `sub-${submission}`, kind: "phase_result", phase: "submission", at: now(), data },
    { msgId: `${batchId}:sub-${submission}:submission:result` }
  )

const acceptBatch = (msg: Extract<SubmitMessage, { kind: "batch" }>, submission: string) =>
  Effect.gen(function* () {
    const bus = yield* Bus
    const settings = yield* ActorSettings
    const rawName = (msg.config as { batch_name?: unknown } | null)?.batch_name
    const fallbackId = msg.batch_id ?? `rejected-${hash(JSON.stringify(msg.config ?? null), 10)}`
    let scenarios: ScenarioT[]
    let batchId: string
    let batchName: string
    let outputRoot: string
    let cacheAllowed: boolean | undefined
    try {
      const cfg = parseBatchConfig(msg.config)
      cacheAllowed = cfg.cache
      batchId = msg.batch_id ?? makeBatchId(cfg)
      batchName = cfg.batch_name
      outputRoot = cfg.output_root
      const baseDir = msg.base_dir ?? settings.baseDir
      scenarios = expandBatch(cfg, { batchId, readUniverseFile: universeFileReader(baseDir) })
    } catch (e) {
      const text = e instanceof ConfigError ? e.message : String(e)
      return yield* failBatch(fallbackId, typeof rawName === "string" ? rawName : fallbackId, text)
    }
    const groups = groupScenarios(scenarios, submission, cacheAllowed)
    const record: BatchRecord = {
      ...missingBatchRecord(batchId),
      status: "accepted",
      batch_name: batchName,
      total: scenarios.length,
      groups: groups.length,
      output_root: outputRoot
    }
    // Created once (so watchers see it at once); from then on only the reporter updates it.
    yield* kvCreate(bus.batches, batchId, record)
    yield* submissionEvent(batchId, submission, {
      in: scenarios.length,
      pass: scenarios.length,
      skipped: 0,
      failed: 0,
      total: scenarios.length,
      groups: groups.length,
      batch_name: batchName,
      output_root: outputRoot
    })
    yield* Effect.logInfo(`batch accepted: ${scenarios.length} scenarios in ${groups.length} groups`).pipe(
      Effect.annotateLogs({ batch_id: batchId, batch_name: batchName })
    )
    yield* publishGroups(groups)
  })

/** Stable ids for a scenario sent without them: the same JSON gets the same ids. */
const adhocIds = (s: Omit<ScenarioT, "batch_id" | "scenario_id">) => {
  const h = hash(JSON.stringify(s), 12)
  return { batch_id: `adhoc-${h.slice(0, 8)}`, scenario_id: `s-${h}` }
}

const acceptScenario = (msg: Extract<SubmitMessage, { kind: "scenario" }>, submission: string) =>
  Effect.gen(function* () {
    const bus = yield* Bus
    const { kind: _kind, batch_id, scenario_id, cache, ...rest } = msg
    const ids = adhocIds(rest as Omit<ScenarioT, "batch_id" | "scenario_id">)
    const parsed = Scenario.safeParse({ ...rest, batch_id: batch_id ?? ids.batch_id, scenario_id: scenario_id ?? ids.scenario_id }, { reportInput: true })
    if (!parsed.success) return yield* failBatch(batch_id ?? ids.batch_id, batch_id ?? ids.batch_id, formatIssues(parsed.error).join("; "))
    const scenario = parsed.data
    // The batch record appears at once; its counts are the reporter's (from submission events
    // and results, so a scenario submitted twice is counted once).
    yield* kvCreate(bus.batches, scenario.batch_id, { ...missingBatchRecord(scenario.batch_id), status: "accepted" })
    yield* submissionEvent(scenario.batch_id, submission, { in: 1, pass: 1, skipped: 0, failed: 0, scenario_ids: [scenario.scenario_id] })
    yield* Effect.logInfo("scenario accepted").pipe(Effect.annotateLogs({ batch_id: scenario.batch_id, scenario_id: scenario.scenario_id }))
    yield* publishGroups(groupScenarios([scenario], submission, cache))
  })

/**
 * A submission that is not valid still gets an answer: the batch record says why, and when the
 * sender named its batch and scenario ids, a `skipped` result arrives where it is listening.
 */
const rejectSubmission = (raw: unknown, problems: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const r = (raw ?? {}) as Record<string, unknown>
    const validId = (v: unknown) => typeof v === "string" && ID_RE.test(v)
    const batchId = validId(r.batch_id) ? String(r.batch_id) : `rejected-${hash(JSON.stringify(raw ?? null), 10)}`
    const reason = `submission rejected: ${problems.join("; ")}`
    if (validId(r.scenario_id)) {
      const asText = (v: unknown, d: string) => (typeof v === "string" ? v : d)
      yield* publishResults([
        {
          v: WIRE_VERSION,
          batch_id: batchId,
          scenario_id: String(r.scenario_id),
          status: "skipped",
          phase: "submission",
          reason,
          strategy: asText(r.strategy, "unknown"),
          params: typeof r.params === "object" && r.params !== null ? (r.params as Record<string, unknown>) : {},
          universe: Array.isArray(r.universe) ? r.universe.map(String) : [],
          freq: FREQS.includes(r.freq as never) ? (r.freq as ScenarioT["freq"]) : "1d",
          start_date: isRealDate(asText(r.start_date, "")) ? String(r.start_date) : "1970-01-01",
          end_date: isRealDate(asText(r.end_date, "")) ? String(r.end_date) : "1970-01-01",
          warnings: [],
          engine_version: ENGINE_VERSION,
          timings: {},
          finished_at: now()
        }
      ])
    }
    yield* failBatch(batchId, batchId, reason)
  })

export const coordinatorActor = runActor({
  name: "coordinator",
  consumer: "coordinator",
  // Parsed in the handler so that an invalid submission is answered, not just dead-lettered.
  schema: z.unknown(),
  handle: (raw, delivery) => {
    // The submission's identity: its place in the stream (the same when redelivered).
    const submission = `s${delivery.streamSeq}`
    const parsed = SubmitMessage.safeParse(raw, { reportInput: true })
    if (!parsed.success) return rejectSubmission(raw, formatIssues(parsed.error)).pipe(
      Effect.mapError((e) => new TransientFault({ reason: e.message, cause: e }))
    )
    const msg = parsed.data
    return (msg.kind === "batch" ? acceptBatch(msg, submission) : acceptScenario(msg, submission)).pipe(
      Effect.mapError((e) => new TransientFault({ reason: e.message, cause: e }))
    )
  }
})
