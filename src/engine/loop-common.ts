/**
 * What the backtest loops share: constants, the set-up a run hands to a loop and the outcome a
 * loop hands back, row errors and the searches over ascending timestamps.
 */
import type { Freq } from "../schemas/common.js"
import { EngineRunError } from "./errors.js"
import type { Execution } from "./execution.js"
import type { PeriodSeries } from "./metrics.js"
import type { Portfolio } from "./portfolio.js"
import type { Scratch } from "./series-cache.js"
import type { HistoryGuard } from "./window.js"
import type { EngineScenario, PriceSeries, StrategyInstance } from "./types.js"

export const DAY_MS = 86_400_000
/** a missing mark is carried forward for at most this many trading days */
export const MAX_CARRY_TRADING_DAYS = 5
/** past this share of missing symbol-steps the scenario fails */
export const MAX_MISSING_MARK_SHARE = 0.05
export const DEFAULT_PROGRESS_EVERY = 100_000
export const DEFAULT_MAX_EQUITY_POINTS = 500

/** Test hooks; they cost nothing when absent. */
export interface BacktestDebug {
  /** called after every trading step with the NAV the loop computed */
  readonly onStep?: (ts: number, nav: number, portfolio: Portfolio) => void
  /** give even a built-in strategy guarded history columns (proves built-ins never read ahead) */
  readonly guardHistory?: boolean
}

/** First index whose ts is >= bound (ts ascending). */
export const lowerBound = (ts: Float64Array, bound: number): number => {
  let lo = 0
  let hi = ts.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (ts[mid] < bound) lo = mid + 1
    else hi = mid
  }
  return lo
}

export const iso = (ms: number): string => (Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms))

export const badRow = (s: PriceSeries, i: number, prevTs: number): EngineRunError => {
  const t = s.ts[i]
  if (!(t >= prevTs)) {
    return new EngineRunError(
      `${s.symbol}: timestamps not in order at row ${i} (${iso(t)} after ${iso(prevTs)}); sort the series first`
    )
  }
  return new EngineRunError(`${s.symbol}: bad close ${s.close[i]} at row ${i} (${iso(t)}); prices must be positive`)
}


/** What either loop hands to the metrics. */
export interface LoopOutcome {
  readonly rows: number
  readonly steps: number
  readonly exposedSteps: number
  readonly maxDrawdown: number
  readonly finalNav: number
  readonly firstTs: number
  readonly lastTs: number
  readonly periods: PeriodSeries
  readonly equityTs: number[]
  readonly equityNav: number[]
  readonly missingMarks: number
  readonly missingBySymbol: Float64Array
  readonly warnings: string[]
}

export interface RunSetup {
  readonly scn: EngineScenario
  readonly series: ReadonlyArray<PriceSeries>
  readonly freq: Freq
  /** first row that trades, per symbol (rows before it are warmup) */
  readonly firstTrade: Int32Array
  /** first row at or after endMs, per symbol (not read) */
  readonly endRow: Int32Array
  readonly portfolio: Portfolio
  readonly execution: Execution
  readonly instance: StrategyInstance
  /** the history guard of a user strategy (the multi-symbol loop reveals a step's rows at once) */
  readonly guard: HistoryGuard | undefined
  readonly progressEvery: number
  readonly maxEquityPoints: number
  readonly debug: BacktestDebug | undefined
  readonly scratch: Scratch
}

/**
 * First index in [from, to) whose ts is >= bound (ts ascending), else `to`. Galloping: daily bars
 * find the next day one row on, ticks in O(log rows-per-day).
 */
export const nextRowAtOrAfter = (ts: Float64Array, bound: number, from: number, to: number): number => {
  let lo = from
  let step = 1
  let hi = from
  while (hi < to && ts[hi] < bound) {
    lo = hi + 1
    hi = from + step
    step *= 2
  }
  if (hi > to) hi = to
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (ts[mid] < bound) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** First index in [lo, hi) whose value is >= bound (values ascending), else hi. */
export const lowerBoundInt = (values: Int32Array, bound: number, lo: number, hi: number): number => {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (values[mid] < bound) lo = mid + 1
    else hi = mid
  }
  return lo
}

