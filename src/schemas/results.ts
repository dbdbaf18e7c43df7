/** Results, events, batch records and manifests: what streams out while a batch runs. */
import { z } from "zod"
import { Freq, IsoDate, WIRE_VERSION } from "./common.js"
import { Id } from "./batch.js"

export const PHASES = ["submission", "coverage", "availability", "requirements", "loading", "quality", "execution", "summary"] as const
export const Phase = z.enum(PHASES)
export type Phase = z.infer<typeof Phase>
/** Numbered as in the seeds' log lines (`Phase 4: Loading data...`). */
export const PHASE_NUMBER: Record<Phase, number> = {
  submission: 0,
  coverage: 1,
  availability: 2,
  requirements: 3,
  loading: 4,
  quality: 5,
  execution: 6,
  summary: 7
}

export const ResultStatus = z.enum(["success", "skipped", "failed"])
export type ResultStatus = z.infer<typeof ResultStatus>

const nullableMetric = z.number().finite().nullable()
export const MetricsSchema = z.object({
  total_return: nullableMetric,
  cagr: nullableMetric,
  volatility: nullableMetric,
  sharpe: nullableMetric,
  sortino: nullableMetric,
  max_drawdown_pct: nullableMetric,
  profit_factor: nullableMetric,
  trades: z.number().int().min(0),
  win_rate: nullableMetric,
  exposure: nullableMetric,
  final_equity: z.number().finite(),
  /** true when NAV reached zero: positions closed, trading stopped (notes.ruin says when) */
  ruined: z.boolean().optional(),
  /** benchmark statistics (LEAN's), present when the scenario has a benchmark */
  alpha: nullableMetric.optional(),
  beta: nullableMetric.optional(),
  information_ratio: nullableMetric.optional(),
  tracking_error: nullableMetric.optional(),
  treynor_ratio: nullableMetric.optional(),
  notes: z.record(z.string(), z.string())
})
export type MetricsRecord = z.infer<typeof MetricsSchema>
export const METRIC_NAMES = [
  "total_return",
  "cagr",
  "volatility",
  "sharpe",
  "sortino",
  "max_drawdown_pct",
  "profit_factor",
  "trades",
  "win_rate",
  "exposure",
  "final_equity"
] as const
export type MetricName = (typeof METRIC_NAMES)[number]

/** The final result of one scenario, on `tf.res.<batch>.<scenario>` (exactly one per scenario). */
export const ScenarioResult = z.object({
  v: z.literal(WIRE_VERSION),
  batch_id: Id,
  scenario_id: Id,
  name: z.string().optional(),
  status: ResultStatus,
  /** the phase that decided a skipped/failed status */
  phase: Phase.optional(),
  reason: z.string().optional(),
  strategy: z.string(),
  params: z.record(z.string(), z.unknown()),
  universe: z.array(z.string()),
  freq: Freq,
  start_date: IsoDate,
  end_date: IsoDate,
  metrics: MetricsSchema.optional(),
  /** inline equity curve: only for a scenario that ran alone; sweeps carry `equity_ref` */
  equity: z.object({ ts: z.array(z.number()), nav: z.array(z.number()) }).optional(),
  /** subject on TF_EVENTS holding this run's equity curve (one message per execution chunk) */
  equity_ref: z.string().optional(),
  /** hash of everything that decides the numbers: canonical scenario content, data versions, engine version */
  result_key: z.string().optional(),
  /** answered from the result cache (the timings are those of the original run) */
  cached: z.boolean().optional(),
  /** the submission this result answers (stream sequence of its tf.submit message) */
  submission: z.string().optional(),
  warnings: z.array(z.string()).default([]),
  engine_version: z.string(),
  data_version: z.string().optional(),
  executor: z.string().optional(),
  attempt: z.number().int().min(1).optional(),
  timings: z.object({ exec_ms: z.number().optional(), load_ms: z.number().optional() }).default({}),
  /** a scan job's symbol: the matching candles with the values the formula used */
  scan: z
    .object({
      symbol: z.string(),
      formula: z.string(),
      /** every matching row from start_date to end_date */
      match_count: z.number().int().min(0),
      /** the first MAX_SCAN_MATCHES of them (true when more matched) */
      truncated: z.boolean(),
      matches: z.array(z.object({ ts: z.number(), time: z.string(), values: z.record(z.string(), z.number().nullable()) })),
      rows: z.number().int().min(0)
    })
    .optional(),
  finished_at: z.string()
})
export type ScenarioResult = z.infer<typeof ScenarioResult>
/** Matches one scan result carries at most (match_count counts them all): results stay small. */
export const MAX_SCAN_MATCHES = 1_000

/** `results`: a bulk of stored results summarised for the reporter (actors/summaries.ts) */
export const EventKind = z.enum(["started", "progress", "equity", "phase_start", "phase_result", "log", "results"])
/** Telemetry on `tf.evt.<batch>.<scenario-or-group>.<kind>`. */
export const PipelineEvent = z.object({
  v: z.literal(WIRE_VERSION),
  batch_id: Id,
  /** scenario id, or group id for phase telemetry of a group */
  subject_id: Id,
  kind: EventKind,
  phase: Phase.optional(),
  at: z.string(),
  data: z.record(z.string(), z.unknown()).default({})
})
export type PipelineEvent = z.infer<typeof PipelineEvent>

const PhaseCounter = z.object({ in: z.number().int(), pass: z.number().int(), skipped: z.number().int(), failed: z.number().int() })
export type PhaseCounter = z.infer<typeof PhaseCounter>
export const emptyPhaseCounter = (): PhaseCounter => ({ in: 0, pass: 0, skipped: 0, failed: 0 })

export const BatchStatus = z.enum(["accepted", "running", "done", "failed"])
/** Batch record in KV `tf_batches` and summary on `tf.evt.<batch>.batch`. */
export const BatchRecord = z.object({
  v: z.literal(WIRE_VERSION),
  batch_id: Id,
  batch_name: z.string(),
  status: BatchStatus,
  total: z.number().int().min(0),
  groups: z.number().int().min(0),
  counts: z.object({ success: z.number().int(), skipped: z.number().int(), failed: z.number().int() }),
  phases: z.record(z.string(), PhaseCounter).default({}),
  output_root: z.string().optional(),
  /** who may add to the batch: `batch:<hash of the creating submission>` or `scenarios:<hash of an owner token | open>` */
  owner: z.string().optional(),
  created_at: z.string(),
  updated_at: z.string(),
  finished_at: z.string().optional(),
  /** batch-level failure (index unreadable, no scenario loadable) */
  error: z.string().optional(),
  best: z.object({ scenario_id: z.string(), metric: z.string(), value: z.number() }).optional(),
  /** `scan` for a scanner job (one scenario per symbol); absent for backtest batches */
  kind: z.enum(["batch", "scan"]).optional(),
  /** a scanner job's summary: symbols processed, errors (failed or skipped), matching rows, time from acceptance to the last result */
  scan: z
    .object({
      formula: z.string(),
      processed: z.number().int().min(0),
      errors: z.number().int().min(0),
      matches: z.number().int().min(0),
      total_ms: z.number().min(0).optional()
    })
    .optional()
})
export type BatchRecord = z.infer<typeof BatchRecord>

/** Per-scenario status in KV `tf_runs` (key `<batch>.<scenario>`). */
export const RunStatus = z.object({
  v: z.literal(WIRE_VERSION),
  batch_id: Id,
  scenario_id: Id,
  status: z.enum(["queued", "running", "success", "skipped", "failed"]),
  phase: Phase.optional(),
  reason: z.string().optional(),
  updated_at: z.string()
})
export type RunStatus = z.infer<typeof RunStatus>

/** What a run wrote and from what, so a result can be reproduced. */
export const RunManifest = z.object({
  v: z.literal(WIRE_VERSION),
  batch_id: Id,
  scenario_id: Id,
  engine_version: z.string(),
  data_version: z.string().optional(),
  config_hash: z.string(),
  status: ResultStatus,
  files: z.array(z.string()),
  created_at: z.string()
})
export type RunManifest = z.infer<typeof RunManifest>
