/**
 * coordinator: takes a batch config or a single scenario from `tf.submit`, expands defaults and
 * sweeps into scenarios with stable ids, records the batch in KV `tf_batches`, and publishes the
 * scenarios in groups that share a data slice to `tf.scn.avail.<batch>`.
 *
 * A submission is untrusted (anyone with the submitter role): its size is checked before it is
 * expanded, it may not name host paths, and it may create or add to a batch only under ids it
 * owns. A refused submission is answered in `tf_rejections` / `tf.rejected.<seq>` (see
 * src/security/rejections.ts), never in the batch it named.
 */
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { isAbsolute, resolve } from "node:path"
import { Duration, Effect, Schedule } from "effect"
import type { KV } from "@nats-io/kv"
import { z } from "zod"
import {
  ID_RE,
  ConfigError,
  expandBatch,
  parseBatchConfig,
  Scenario,
  sliceGroupKey,
  type Scenario as ScenarioT
} from "../schemas/batch.js"
import { WIRE_VERSION } from "../schemas/common.js"
import { formatIssues } from "../schemas/errors.js"
import { BatchRecord, PipelineEvent, RunStatus } from "../schemas/results.js"
import { SubmitMessage, type GroupMessage as GroupMessageT, type SubmitScan } from "../schemas/wire.js"
import { FormulaParseError, parseFormula, SCAN_STRATEGY } from "../engine/index.js"
import { coverageFor } from "../data/index.js"
import { Bus, kvCreate, kvGet, publish, type Delivery } from "../streams/bus.js"
import { SUBJECT } from "../streams/topology.js"
import { boundReason, currentSecuritySettings, hostPathProblems, limitProblems, truncate, type SecuritySettingsShape } from "../security/limits.js"
import { openRejectionBucket, recordRejection } from "../security/rejections.js"
import { ActorSettings, missingBatchRecord, publishGroup } from "./common.js"
import { coverageOf } from "./coverage.js"
import { canonicalJson } from "./result-key.js"
import { runActor, TransientFault } from "./runner.js"

/**
 * Universe files: one symbol per line, or a CSV whose first column is the symbol; # comments.
 * Used by the CLI on its own machine (submit, run, validate); never for a bus message.
 */
export const universeFileReader = (baseDir: string) => (p: string): string[] =>
  readFileSync(isAbsolute(p) ? p : resolve(baseDir, p), "utf8")
    .split(/\r?\n/)
    .map((l) => l.split(",")[0].trim().toUpperCase())
    .filter((l) => l !== "" && !l.startsWith("#") && l !== "SYMBOL")

const hash = (s: string, n: number) => createHash("sha256").update(s).digest("hex").slice(0, n)
const now = () => new Date().toISOString()

/**
 * Most scenarios in one group message, and the most their JSON may take by `scenarioJsonBound`
 * (an overestimate of ~1.5×): well under max_payload, as the compact wire form is smaller still.
 */
export const MAX_GROUP_ITEMS = 500
export const MAX_GROUP_BYTES = 384 * 1024

/** A scenario's fixed JSON: its key names and punctuation, and 7 numbers of at most 24 characters. */
const SCENARIO_JSON_FIXED = 360 + 7 * 24
/**
 * At least the length of a scenario's JSON, without writing it out (JSON.stringify of every
 * scenario was most of grouping a 10,000-scenario sweep): ids and symbols are plain text, other
 * strings may escape a character into six, numbers take at most 24 characters.
 */
export const scenarioJsonBound = (s: ScenarioT): number => {
  let n = SCENARIO_JSON_FIXED + s.batch_id.length + s.scenario_id.length + s.freq.length + s.start_date.length + s.end_date.length
  n += 6 * (s.strategy.length + (s.name?.length ?? 0) + (s.data_root?.length ?? 0) + (s.benchmark?.length ?? 0))
  for (const sym of s.universe) n += 3 + 6 * sym.length
  return n + JSON.stringify(s.params).length
}

/**
 * Split scenarios into groups sharing a slice, each under the item and byte limits. Group ids
 * carry the submission, so a new submission of the same scenarios is a new group (answered
 * again), while a redelivered submission republishes the same ids (de-duplicated).
 *
 * The groups come out taking turns between slices (the first group of each slice, then the
 * second of each, ...): the loader works on several groups at once, and a sweep's groups in
 * slice order gave all of its slots the same slice — one loaded it while the others waited,
 * slice after slice (10,000 daily scenarios on 4 symbols: loading ended 3.4 s after submit).
 */
export const groupScenarios = (scenarios: ReadonlyArray<ScenarioT>, submission?: string, cache?: boolean): GroupMessageT[] => {
  const byKey = new Map<string, ScenarioT[]>()
  for (const s of scenarios) {
    const k = sliceGroupKey(s)
    const list = byKey.get(k)
    if (list) list.push(s)
    else byKey.set(k, [s])
  }
  const bySlice: GroupMessageT[][] = []
  for (const [key, list] of byKey) {
    const groups: GroupMessageT[] = []
    bySlice.push(groups)
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
      const size = scenarioJsonBound(s)
      if (chunk.length >= MAX_GROUP_ITEMS || bytes + size > MAX_GROUP_BYTES) flush()
      chunk.push(s)
      bytes += size
    }
    flush()
  }
  const total = bySlice.reduce((n, g) => n + g.length, 0)
  const groups: GroupMessageT[] = []
  for (let round = 0; groups.length < total; round++)
    for (const sliceGroups of bySlice) if (round < sliceGroups.length) groups.push(sliceGroups[round])
  return groups
}

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

/** What the handler needs besides the message: limits, where rejections go, the scan grouping. */
interface CoordinatorContext {
  readonly limits: SecuritySettingsShape
  readonly rejections: KV
  /** groups a scan job is cut into (ActorSettings.scanGroups) */
  readonly scanGroups: number
  /** the actors' catalog: `symbols: "all"` of a scan job means its symbols */
  readonly dataRoot: string
}

/** A submission refused: answered under its own stream sequence, never in the batch it named. */
class Refused {
  readonly _tag = "Refused"
  constructor(readonly problems: ReadonlyArray<string>) {}
}

/**
 * Batch ids belong to the submission that created them. A batch submission owns its id when
 * its content is the same as the creating one (a redelivery or an identical resubmission
 * republishes the same, de-duplicated group ids); anything else naming that id is refused and
 * the record and results stay as they are.
 */
const acceptBatch = (msg: Extract<SubmitMessage, { kind: "batch" }>, ctx: CoordinatorContext, submission: string) =>
  Effect.gen(function* () {
    const fingerprint = hash(canonicalJson({ batch_id: msg.batch_id ?? null, config: msg.config }), 32)
    const owner = `batch:${fingerprint}`
    let scenarios: ScenarioT[]
    let batchId: string
    let batchName: string
    let cacheAllowed: boolean | undefined
    try {
      const cfg = parseBatchConfig(msg.config)
      cacheAllowed = cfg.cache
      // Without an id the batch gets one from its content: a redelivery finds the same batch.
      batchId = msg.batch_id ?? `${cfg.batch_name.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 100)}-${fingerprint.slice(0, 12)}`
      batchName = cfg.batch_name
      // No universe-file reader and no data root: from the bus, symbols come as lists and the
      // actors use their own catalog root.
      scenarios = expandBatch(cfg, { batchId, maxScenarios: ctx.limits.maxScenariosPerBatch })
    } catch (e) {
      return yield* Effect.fail(new Refused(e instanceof ConfigError ? e.problems : [String((e as Error)?.message ?? e)]))
    }
    const groups = groupScenarios(scenarios, submission, cacheAllowed)
    yield* openBatch({
      record: { ...missingBatchRecord(batchId), status: "accepted", batch_name: batchName, total: scenarios.length, groups: groups.length, owner },
      taken: `batch_id: ${JSON.stringify(batchId)} is already used by another submission; choose a new batch id (a batch belongs to the submission that created it)`,
      submission,
      event: { batch_name: batchName },
      groups,
      log: (redelivered) =>
        Effect.logInfo(`batch accepted: ${scenarios.length} scenarios in ${groups.length} groups`).pipe(
          Effect.annotateLogs({ batch_id: batchId, batch_name: batchName, redelivered })
        )
    })
  })

/**
 * Create a batch (or scan job) record owned by this submission, or find it already made by the
 * same submission (a redelivery); announce the submission (the reporter derives the total from
 * this event: from here on it alone updates the record) and publish the groups.
 */
const openBatch = (o: {
  record: BatchRecord
  taken: string
  submission: string
  event: Record<string, unknown>
  groups: ReadonlyArray<GroupMessageT>
  log: (redelivered: boolean) => Effect.Effect<void>
}) =>
  Effect.gen(function* () {
    const bus = yield* Bus
    const { record } = o
    const created = yield* kvCreate(bus.batches, record.batch_id, record)
    if (!created) {
      const existing = yield* kvGet(bus.batches, record.batch_id, BatchRecord)
      if (existing?.value.owner !== record.owner) return yield* Effect.fail(new Refused([o.taken]))
    }
    yield* submissionEvent(record.batch_id, o.submission, {
      in: record.total,
      pass: record.total,
      skipped: 0,
      failed: 0,
      total: record.total,
      groups: o.groups.length,
      ...o.event
    })
    yield* o.log(!created)
    yield* publishGroups(o.groups)
  })

/** A scan scenario's id: its symbol, with what a subject token cannot hold ('.') as '_'. */
export const scanScenarioId = (symbol: string) => symbol.replace(/[^A-Za-z0-9_-]/g, "_")

/** Symbols per scan group: S symbols over `groups` groups, at least 1, at most a group's limit. */
export const scanGroupSize = (symbols: number, groups: number) => Math.min(MAX_GROUP_ITEMS, Math.max(1, Math.ceil(symbols / Math.max(1, groups))))

/**
 * A scan job's scenarios (one symbol each) in groups of `scanGroupSize` symbols: the group's
 * slice holds the group's symbols, each item reads only its own (GroupItemWire.universe), so
 * availability, loading and quality judge each symbol on its own while a stage handles one
 * message per group instead of one per symbol. Quality then cuts each group into execution
 * messages of `execChunkSize`, as for sweeps.
 */
export const groupScan = (scenarios: ReadonlyArray<ScenarioT>, submission: string, groups: number): GroupMessageT[] => {
  if (scenarios.length === 0) return []
  const first = scenarios[0]
  const size = scanGroupSize(scenarios.length, groups)
  const base = `g${hash(JSON.stringify([first.batch_id, first.freq, first.start_date, first.end_date, first.params]), 10)}-${submission}`
  const out: GroupMessageT[] = []
  for (let i = 0, n = 0; i < scenarios.length; i += size, n++) {
    const chunk = scenarios.slice(i, i + size)
    out.push({
      v: WIRE_VERSION,
      batch_id: first.batch_id,
      group_id: `${base}-${n}`,
      slice: { universe: chunk.map((s) => s.universe[0]), freq: first.freq, start_date: first.start_date, end_date: first.end_date, warmup_bars: 0 },
      items: chunk.map((scenario) => ({ scenario, warnings: [] })),
      findings: [],
      submission,
      // a scan's answer is cheap and has no result key: never from or into the result cache
      cache: false
    })
  }
  return out
}

/**
 * A scanner job: the formula is parsed and type-checked first (a bad one is refused with its
 * column, before anything is loaded), `all` becomes the symbols the actors' catalog holds at the
 * frequency, then one scenario per symbol (strategy `scan`) goes through the same phases as a
 * backtest, grouped by `groupScan`. The job id belongs to the submission's content, as a batch's.
 */
const acceptScan = (msg: SubmitScan, ctx: CoordinatorContext, submission: string) =>
  Effect.gen(function* () {
    try {
      parseFormula(msg.formula)
    } catch (e) {
      return yield* Effect.fail(new Refused([`formula: ${e instanceof FormulaParseError ? e.message : String((e as Error)?.message ?? e)}`]))
    }
    let symbols: string[]
    if (msg.symbols === "all") {
      const report = yield* Effect.either(coverageOf(ctx.dataRoot))
      if (report._tag === "Left") return yield* Effect.fail(new Refused([`symbols: "all" needs the catalog's index, which is unreadable: ${report.left.message}`]))
      const all = new Set(report.right.entries.map((e) => e.symbol))
      symbols = [...all].filter((sym) => coverageFor(report.right, sym, msg.freq) !== undefined || (msg.freq !== "tick" && coverageFor(report.right, sym, "tick") !== undefined)).sort()
      if (symbols.length === 0) return yield* Effect.fail(new Refused([`symbols: "all" found no symbol with ${msg.freq} data in the catalog; import data or list the symbols`]))
    } else symbols = [...new Set(msg.symbols)]
    if (symbols.length > ctx.limits.maxScenariosPerBatch)
      return yield* Effect.fail(new Refused([`symbols: ${symbols.length} symbols, above the limit ${ctx.limits.maxScenariosPerBatch} per job (TICKFLOW_MAX_SCENARIOS); split the job`]))
    const ids = new Map<string, string>()
    for (const sym of symbols) {
      const id = scanScenarioId(sym)
      const other = ids.get(id)
      if (other !== undefined) return yield* Effect.fail(new Refused([`symbols: ${other} and ${sym} both become result subject ${id}; scan them in separate jobs`]))
      ids.set(id, sym)
    }
    const fingerprint = hash(canonicalJson({ job_id: msg.job_id ?? null, symbols: msg.symbols, freq: msg.freq, start_date: msg.start_date, end_date: msg.end_date, formula: msg.formula }), 32)
    const owner = `scan:${fingerprint}`
    const jobId = msg.job_id ?? `scan-${fingerprint.slice(0, 12)}`
    const scenarios: ScenarioT[] = symbols.map((symbol) => ({
      v: WIRE_VERSION,
      batch_id: jobId,
      scenario_id: scanScenarioId(symbol),
      strategy: SCAN_STRATEGY,
      params: { formula: msg.formula },
      strict: true,
      freq: msg.freq,
      start_date: msg.start_date,
      end_date: msg.end_date,
      universe: [symbol],
      // required by the scenario shape; a scan trades nothing
      start_capital: 1,
      costs: { commission_bps: 0, spread_w: 0, impact_w: 0, slippage_bps: 0 },
      batch_seed: 0
    }))
    const groups = groupScan(scenarios, submission, ctx.scanGroups)
    yield* openBatch({
      record: {
        ...missingBatchRecord(jobId),
        status: "accepted",
        batch_name: jobId,
        total: scenarios.length,
        groups: groups.length,
        owner,
        kind: "scan",
        scan: { formula: msg.formula, processed: 0, errors: 0, matches: 0 }
      },
      taken: `job_id: ${JSON.stringify(jobId)} is already used by another submission; choose a new job id`,
      submission,
      event: { batch_name: jobId, kind: "scan", formula: msg.formula },
      groups,
      log: (redelivered) =>
        Effect.logInfo(`scan accepted: ${scenarios.length} symbols in ${groups.length} groups`).pipe(
          Effect.annotateLogs({ batch_id: jobId, formula: truncate(msg.formula, 200), freq: msg.freq, redelivered })
        )
    })
  })

/** Stable ids for a scenario sent without them: the same JSON gets the same ids. */
const adhocIds = (s: Omit<ScenarioT, "batch_id" | "scenario_id">) => {
  const h = hash(JSON.stringify(s), 12)
  return { batch_id: `adhoc-${h.slice(0, 8)}`, scenario_id: `s-${h}` }
}

/** Raw `tf_runs` entry: the queued status plus the fingerprint of the submission that queued it. */
const QueuedRun = RunStatus.extend({ submission: z.string().optional() })

/**
 * Single scenarios may share a batch (a service sending one at a time). The batch's owner is
 * `scenarios:<sha256 of owner_token>` (or `scenarios:open` without a token); a scenario may be
 * added only to a batch with the same owner, and only under a scenario id not used yet — the
 * same submission again (a redelivery) republishes its de-duplicated group.
 */
const acceptScenario = (msg: Extract<SubmitMessage, { kind: "scenario" }>, submission: string) =>
  Effect.gen(function* () {
    const bus = yield* Bus
    const { kind: _kind, batch_id, scenario_id, owner_token, cache, ...rest } = msg
    const ids = adhocIds(rest as Omit<ScenarioT, "batch_id" | "scenario_id">)
    const parsed = Scenario.safeParse({ ...rest, batch_id: batch_id ?? ids.batch_id, scenario_id: scenario_id ?? ids.scenario_id }, { reportInput: true })
    if (!parsed.success) return yield* Effect.fail(new Refused(formatIssues(parsed.error)))
    const scenario = parsed.data
    const owner = `scenarios:${owner_token !== undefined ? hash(`tickflow-owner:${owner_token}`, 32) : "open"}`
    const fingerprint = hash(canonicalJson(scenario), 32)
    const fresh: BatchRecord = { ...missingBatchRecord(scenario.batch_id), status: "accepted", owner }
    if (!(yield* kvCreate(bus.batches, scenario.batch_id, fresh))) {
      const existing = yield* kvGet(bus.batches, scenario.batch_id, BatchRecord)
      if (existing?.value.owner !== owner)
        return yield* Effect.fail(
          new Refused([
            `batch_id: ${JSON.stringify(scenario.batch_id)} belongs to another submitter; choose another batch id${owner_token === undefined ? " (or send the owner_token of that batch)" : ""}`
          ])
        )
    }
    // A scenario id belongs to the content that first used it (a redelivery or the same content again is fine).
    const runKey = `${scenario.batch_id}.${scenario.scenario_id}`
    const first = yield* kvCreate(bus.runs, runKey, {
      v: WIRE_VERSION,
      batch_id: scenario.batch_id,
      scenario_id: scenario.scenario_id,
      status: "queued",
      submission: fingerprint,
      updated_at: now()
    })
    if (!first) {
      const run = yield* kvGet(bus.runs, runKey, QueuedRun)
      if (run?.value.status !== "queued" || run.value.submission !== fingerprint)
        return yield* Effect.fail(
          new Refused([`scenario_id: ${JSON.stringify(scenario.scenario_id)} is already used in batch ${JSON.stringify(scenario.batch_id)}; choose a new scenario id`])
        )
    }
    // The batch's total is the reporter's: from submission events, each scenario id once.
    yield* submissionEvent(scenario.batch_id, submission, { in: 1, pass: 1, skipped: 0, failed: 0, scenario_ids: [scenario.scenario_id] })
    yield* Effect.logInfo("scenario accepted").pipe(Effect.annotateLogs({ batch_id: scenario.batch_id, scenario_id: scenario.scenario_id }))
    yield* publishGroups(groupScenarios([scenario], submission, cache))
  })

/**
 * A refused submission is answered in `tf_rejections` under its stream sequence (expiring) and
 * on `tf.rejected.<seq>`; the batch it named is not touched. The reason is bounded and never
 * carries file contents (nothing is read from files here) or a huge value.
 */
const rejectSubmission = (seq: number, raw: unknown, problems: ReadonlyArray<string>, ctx: CoordinatorContext) =>
  Effect.gen(function* () {
    const r = (raw ?? {}) as Record<string, unknown>
    const validId = (v: unknown): v is string => typeof v === "string" && ID_RE.test(v)
    const reason = truncate(`submission rejected: ${boundReason(problems, ctx.limits.maxReasonChars)}`, ctx.limits.maxReasonChars + 40)
    yield* recordRejection(ctx.rejections, {
      v: WIRE_VERSION,
      seq,
      ...(validId(r.batch_id) ? { batch_id: r.batch_id } : {}),
      ...(validId(r.scenario_id) ? { scenario_id: r.scenario_id } : {}),
      reason,
      at: now()
    })
    yield* Effect.logWarning(reason).pipe(
      Effect.annotateLogs({ submission_seq: seq, ...(validId(r.batch_id) ? { batch_id: r.batch_id } : {}), ...(validId(r.scenario_id) ? { scenario_id: r.scenario_id } : {}) })
    )
  })

const handleSubmission = (raw: unknown, delivery: Delivery<unknown>, ctx: CoordinatorContext) =>
  Effect.gen(function* () {
    // Size first, on the raw message, before anything is parsed further or expanded.
    const limits = limitProblems(raw, delivery.msg.data.length, ctx.limits)
    if (limits.length > 0) return yield* Effect.fail(new Refused(limits))
    const hostPaths = hostPathProblems(raw)
    if (hostPaths.length > 0) return yield* Effect.fail(new Refused(hostPaths))
    const parsed = SubmitMessage.safeParse(raw, { reportInput: true })
    if (!parsed.success) return yield* Effect.fail(new Refused(formatIssues(parsed.error)))
    const msg = parsed.data
    // The submission's identity: its place in the stream (the same when redelivered).
    const submission = `s${delivery.streamSeq}`
    return yield* msg.kind === "batch"
      ? acceptBatch(msg, ctx, submission)
      : msg.kind === "scan"
        ? acceptScan(msg, ctx, submission)
        : acceptScenario(msg, submission)
  }).pipe(
    Effect.catchAll((e) =>
      e instanceof Refused ? rejectSubmission(delivery.streamSeq, raw, e.problems, ctx) : Effect.fail(e)
    ),
    Effect.mapError((e) => new TransientFault({ reason: e.message, cause: e }))
  )

export const coordinatorActor = Effect.gen(function* () {
  const limits = yield* currentSecuritySettings
  const rejections = yield* openRejectionBucket(limits.rejectionTtlMs).pipe(
    Effect.retry(Schedule.exponential(Duration.millis(200)).pipe(Schedule.intersect(Schedule.recurs(8))))
  )
  const settings = yield* ActorSettings
  const ctx: CoordinatorContext = { limits, rejections, scanGroups: settings.scanGroups, dataRoot: settings.dataRoot }
  yield* runActor({
    name: "coordinator",
    consumer: "coordinator",
    // Parsed in the handler so that an invalid submission is answered, not just dead-lettered.
    schema: z.unknown(),
    handle: (raw, delivery) => handleSubmission(raw, delivery, ctx),
    // not even JSON within the depth limit: refused like any invalid submission, by sequence
    onPoison: (raw, reason, delivery) => rejectSubmission(delivery.streamSeq, raw, [reason], ctx)
  })
})
