/**
 * Sessions (src/actors/session.ts): the config a session starts from, the commands on
 * `tf.ses.<id>.cmd`, the state kept in KV `tf_sessions`, and the validation answer every
 * addition gets.
 */
import { z } from "zod"
import { Freq, IsoDate, SafeName, Symbol, WIRE_VERSION } from "./common.js"
import { Id } from "./batch.js"

/** `rsi:14`, `sma:20`, `ema:50`: computed on the provisioned slice, no backtest. */
export const INDICATOR_RE = /^(rsi|sma|ema):([1-9][0-9]{0,3})$/
export const IndicatorSpec = z.string().regex(INDICATOR_RE, {
  error: (i) => `${JSON.stringify(i.input)} is not an indicator; write rsi:<period>, sma:<period> or ema:<period> (period 1..9999)`
})

/** A strategy of the session: fixed parameters, or a sweep grid (expanded like a batch's). */
export const SessionStrategy = z.strictObject({
  id: Id.optional(),
  strategy: z.string().min(1),
  params: z.record(z.string(), z.unknown()).optional(),
  /** sweep axes: lists or {from, to, step}, as in a batch's `sweep.grid` */
  grid: z.record(z.string().min(1), z.unknown()).optional()
})

export const SessionConfig = z.strictObject({
  v: z.literal(WIRE_VERSION).optional(),
  session_id: Id.optional(),
  session_name: SafeName,
  symbols: z.array(Symbol).max(500).default([]),
  freqs: z.array(Freq).min(1).max(5).default(["1d"]),
  start_date: IsoDate,
  end_date: IsoDate,
  start_capital: z.number().gt(0).default(100_000),
  strategies: z.array(SessionStrategy).min(1).max(20),
  /** indicators computed for every symbol the session provisions */
  indicators: z.array(IndicatorSpec).max(8).default([])
})
export type SessionConfig = z.infer<typeof SessionConfig>

export const ADD_SOURCES = ["config", "strategy", "scanner", "adhoc"] as const
export type AddSource = (typeof ADD_SOURCES)[number]

export const SessionCommand = z.discriminatedUnion("op", [
  z.strictObject({ op: z.literal("start"), config: z.unknown() }),
  z.strictObject({
    op: z.literal("add"),
    symbol: Symbol,
    /** a bar interval for this symbol: the session's strategies run on it too */
    interval: Freq.optional(),
    indicators: z.array(IndicatorSpec).max(8).optional(),
    /** lightweight: validate and provision only (no backtests) until a full addition upgrades it */
    adhoc: z.boolean().optional(),
    source: z.enum(ADD_SOURCES).optional()
  }),
  z.strictObject({ op: z.literal("remove"), symbol: Symbol }),
  z.strictObject({ op: z.literal("show") }),
  z.strictObject({ op: z.literal("export") })
])
export type SessionCommand = z.infer<typeof SessionCommand>

/** The answer to every addition, by reply and as an event. */
export interface Validation {
  readonly can_proceed: boolean
  readonly reason: string | null
  readonly data_source_available: boolean
  readonly intervals_supported: boolean
  readonly has_historical_data: boolean
  readonly meets_config_requirements: boolean
}

export interface ProvisionedSlice {
  readonly freq: Freq
  readonly warmup_bars: number
  readonly key: string
  readonly rows: number
  readonly resampled_from_ticks: boolean
  readonly quality_warnings: ReadonlyArray<string>
}

export interface IndicatorValue {
  readonly spec: string
  readonly freq: Freq
  readonly rows: number
  /** the last values (at most 20) with their timestamps (ms) */
  readonly tail: ReadonlyArray<{ readonly ts: number; readonly value: number | null }>
}

export type SymbolStatus = "provisioning" | "active" | "failed" | "removed"

export interface SessionSymbol {
  readonly symbol: string
  status: SymbolStatus
  added_by: AddSource
  meets_session_config_requirements: boolean
  auto_provisioned: boolean
  added_at: string
  upgraded_from_adhoc: boolean
  /** true while only validated/provisioned (adhoc), false once its backtests were submitted */
  adhoc: boolean
  intervals: Freq[]
  indicators: string[]
  reason?: string
  validation?: Validation
  slices: ProvisionedSlice[]
  indicator_values: IndicatorValue[]
  /** scenarios submitted for this symbol (ids `<SYMBOL>-<freq>-<run>` in the session's batch) */
  scenarios: number
}

export interface SessionState {
  readonly v: typeof WIRE_VERSION
  readonly session_id: string
  readonly config: SessionConfig
  status: "running" | "failed"
  reason?: string
  created_at: string
  updated_at: string
  /** owner of the session's batch (coordinator rule): never leaves the actors */
  owner_token: string
  event_seq: number
  symbols: Record<string, SessionSymbol>
}

/** What a session looks like to clients: the state without its owner token. */
export const publicSession = (s: SessionState) => {
  const { owner_token: _t, ...rest } = s
  return rest
}
