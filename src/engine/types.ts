/**
 * The engine's public contract. The pipeline (src/actors) depends only on what is in this file
 * and on the functions exported from src/engine/index.ts. Plain TypeScript: no I/O, no Effect.
 */
import type { z } from "zod"
import type { Costs, Freq } from "../schemas/common.js"

/**
 * Columnar prices of one symbol, in timestamp order. Bars: OHLCV. Ticks: `close` is the trade
 * price and `volume` the size; open/high/low may be absent (the engine then uses close).
 */
export interface PriceSeries {
  readonly symbol: string
  readonly freq: Freq
  /** epoch milliseconds UTC; fractional for sub-millisecond ticks */
  readonly ts: Float64Array
  readonly close: Float64Array
  readonly open?: Float64Array | undefined
  readonly high?: Float64Array | undefined
  readonly low?: Float64Array | undefined
  readonly volume?: Float64Array | undefined
  /** 1 where the bar was made up (resampled or filled), 0 where it is real */
  readonly synthetic?: Uint8Array | undefined
  /** index of the first row at or after the scenario start: rows before it are warmup */
  readonly startIndex: number
}

/** What a strategy needs before it can run: phase 3 computes this without instantiating it. */
export interface StrategyRequirements {
  /** bars of history needed before the start date for indicators to be warm */
  readonly warmupBars: number
  /** indicator names, for display and for session provisioning */
  readonly indicators: ReadonlyArray<string>
  /** bar intervals the strategy reads (usually just the scenario's freq) */
  readonly intervals: ReadonlyArray<Freq>
}

/**
 * One symbol's columns as a strategy sees them. Row 0 is the first row of the scenario's own
 * window (its warm-up start), never an earlier row of a larger shared slice. For user strategies
 * the columns are history only: while `onBar(k, i)` runs they hold the rows up to the current
 * step and reading a later index gives `undefined` (see src/engine/window.ts). Built-in
 * strategies get the window's typed arrays (their causality is checked by a test that runs them
 * both ways).
 */
export interface StrategySeries {
  readonly symbol: string
  readonly freq: Freq
  readonly ts: ArrayLike<number>
  readonly close: ArrayLike<number>
  readonly open?: ArrayLike<number> | undefined
  readonly high?: ArrayLike<number> | undefined
  readonly low?: ArrayLike<number> | undefined
  readonly volume?: ArrayLike<number> | undefined
  readonly synthetic?: ArrayLike<number> | undefined
  /** first row that trades: rows before it are warm-up */
  readonly startIndex: number
}

/** Per-bar decision context handed to a strategy's step function. */
export interface StrategyContext {
  /** number of symbols in the universe; series[k] is symbol k */
  readonly series: ReadonlyArray<StrategySeries>
  /** the scenario's seed, for strategies that need randomness (use mulberry32 from the engine) */
  readonly seed: number
}

/**
 * A running strategy. `onBar(k, i)` is called for symbol k's row i (in global timestamp order,
 * warmup rows included) and returns the target position for symbol k as a fraction of NAV in
 * [-1, 1] (negative = short), or NaN to keep the current target. Must be deterministic.
 */
export interface StrategyInstance {
  onBar(k: number, i: number): number
}

/**
 * A strategy definition: everything is static so validation never instantiates it.
 * User strategies are modules exporting `default` (or `strategy`) of this shape.
 */
export interface StrategyDefinition<P extends Record<string, unknown> = Record<string, unknown>> {
  readonly name: string
  readonly description: string
  /** zod object schema of the parameters: types, bounds (min/max) and defaults */
  readonly params: z.ZodType<P>
  /** structural checks beyond single fields, for example fast < slow. Returns messages; empty = ok. */
  validateConfig(params: P): ReadonlyArray<string>
  calculateRequirements(params: P, freq: Freq): StrategyRequirements
  create(params: P, ctx: StrategyContext): StrategyInstance
}

export interface ParamValidation {
  readonly ok: boolean
  /** parameters after defaults (and, in non-strict mode, clamping) */
  readonly params: Record<string, unknown>
  /** each error names the parameter, the value and what is allowed */
  readonly errors: ReadonlyArray<string>
  readonly warnings: ReadonlyArray<string>
}

export interface EngineScenario {
  readonly strategy: StrategyDefinition<any>
  /** already validated parameters */
  readonly params: Record<string, unknown>
  readonly startCapital: number
  readonly costs: Costs
  /** deterministic seed for anything random */
  readonly seed: number
  /** inclusive start / exclusive end, epoch ms UTC: rows before start are warmup only */
  readonly startMs: number
  readonly endMs: number
  /**
   * Warm-up rows this scenario needs before startMs (its strategy's `calculateRequirements`).
   * When given, each series is cut to its own window before anything reads it: from
   * max(0, first row at or after startMs − warmupBars) to the last row before endMs. Rows
   * outside it are never seen by the strategy, its indicators or the metrics, so a scenario run
   * on a larger shared slice gives byte-identical results to the same scenario on exactly its
   * own rows, and `PriceSeries.startIndex` is ignored (the window is defined by the dates).
   * When omitted, every row before startMs (and before startIndex) is warm-up, as before.
   */
  readonly warmupBars?: number | undefined
  /** maximum points of the returned equity curve (it is sampled down evenly) */
  readonly maxEquityPoints?: number
  /** progress callback, called every `progressEvery` rows */
  readonly onProgress?: (done: number, total: number) => void
  readonly progressEvery?: number
  /**
   * Optional benchmark prices (for example SPY), any slice covering the run: when given, metrics
   * include LEAN's benchmark statistics (alpha, beta, information_ratio, tracking_error,
   * treynor_ratio), each null with a reason in `notes` when it cannot be computed.
   */
  readonly benchmark?: PriceSeries | undefined
}

/** Every metric is a number, or null with a reason in `notes` (never NaN silently). */
export interface Metrics {
  total_return: number | null
  cagr: number | null
  volatility: number | null
  sharpe: number | null
  sortino: number | null
  max_drawdown_pct: number | null
  profit_factor: number | null
  trades: number
  win_rate: number | null
  exposure: number | null
  final_equity: number
  /** true when NAV reached zero: positions were closed and trading stopped (see notes.ruin) */
  ruined?: boolean
  /**
   * Benchmark statistics (only when a benchmark was given), from daily returns on the days the
   * run and the benchmark share, risk-free rate 0, 252 days a year, as in LEAN:
   * annual performance = (1 + mean daily return)^252 − 1; beta = cov(r, b) / var(b) (sample);
   * alpha = annual(r) − beta × annual(b); tracking_error = std(r − b) × √252 (sample);
   * information_ratio = (annual(r) − annual(b)) / tracking_error; treynor_ratio = annual(r) / beta.
   */
  alpha?: number | null
  beta?: number | null
  information_ratio?: number | null
  tracking_error?: number | null
  treynor_ratio?: number | null
  notes: Record<string, string>
}

export interface BacktestResult {
  readonly metrics: Metrics
  /** sampled equity curve: parallel arrays */
  readonly equity: { readonly ts: number[]; readonly nav: number[] }
  readonly fills: number
  readonly missingMarks: number
  readonly missingMarkShare: number
  readonly rows: number
  readonly warnings: ReadonlyArray<string>
}
