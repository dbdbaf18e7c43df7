/**
 * Scenario metrics from the engine's running accumulators.
 *
 * Choices (documented here because they change numbers):
 * - Returns for volatility, Sharpe, Sortino and the benchmark statistics are per trading day: for daily bars the
 *   bar-to-bar NAV return; for intraday frequencies (tick, 1min, 5min, 1h) the equity is first
 *   resampled to its last NAV of each UTC day, and the start capital is the close of the day
 *   before the first. Days without any row (weekends, holidays) are not in the series.
 * - Annualization: 252 trading days; volatility = sample std × √252; Sharpe = mean / std × √252
 *   with a zero risk-free rate; Sortino = mean / downside deviation × √252, where the downside
 *   deviation is √(mean of min(r, 0)²) over all returns.
 * - CAGR uses calendar time between the first and last equity point (365.25-day years); runs
 *   shorter than a year get null (with the reason) instead of an annualised figure.
 * - max_drawdown_pct is in percent (23.5 means the NAV fell 23.5% below its running peak).
 * - total_return, cagr, volatility, win_rate and exposure are fractions (0.12 = 12%).
 * - profit_factor and win_rate are over closed round trips, commissions included.
 * Every metric that cannot be computed is null with the reason in `notes`; never NaN or Infinity.
 * Values are rounded to 12 significant digits so JSON output is stable across platforms.
 */
import type { Metrics } from "./types.js"
import type { TradeStats } from "./portfolio.js"

export const TRADING_DAYS_PER_YEAR = 252
export const MIN_RETURNS_FOR_RATIOS = 5
const MS_PER_YEAR = 365.25 * 86_400_000
/** shortest span (years) whose return is annualised into a CAGR */
export const MIN_YEARS_FOR_CAGR = 1

/** Rounds to 12 significant digits; keeps -0 out of the output. */
export const roundMetric = (x: number): number => {
  if (x === 0) return 0
  const rounded = Number(x.toPrecision(12))
  return rounded === 0 ? 0 : rounded
}

/** NAV at the close of each period (trading day), with the period's day number (floor(ts / day)). */
export interface PeriodSeries {
  readonly keys: Float64Array
  readonly closes: Float64Array
  readonly length: number
}

export interface MetricsInput {
  readonly startCapital: number
  readonly finalEquity: number
  /** epoch ms of the first and last equity point */
  readonly firstTs: number
  readonly lastTs: number
  /** per-day closes used for returns; `baseline` (if not null) is the NAV before the first one */
  readonly periods: PeriodSeries
  readonly baseline: number | null
  /** largest peak-to-trough fall as a fraction of the peak */
  readonly maxDrawdown: number
  readonly steps: number
  readonly exposedSteps: number
  readonly trades: TradeStats
  /** benchmark closes per day; omitted → no benchmark statistics keys in the output */
  readonly benchmark?: PeriodSeries | undefined
  /** when equity reached zero (the run was stopped), epoch ms */
  readonly ruinedAtTs?: number | undefined
}

interface ReturnStats {
  readonly count: number
  readonly mean: number
  readonly sampleStdDev: number
  /** √(mean of min(r, 0)²) over all returns; > 0 only if some return is negative */
  readonly downsideDeviation: number
}

/**
 * Statistics of period-to-period returns (after an optional baseline) in one pass, without
 * materializing the returns; null once equity is not positive. Sums are shifted by the first
 * return so the variance does not cancel catastrophically.
 *
 * The downside sum adds min(r, 0)² as ((r − |r|) / 2)², which is exactly r² for r < 0 and +0
 * otherwise, without a branch: the sign of daily returns is unpredictable and mispredictions
 * used to cost more than the rest of the loop. That identity fails only for r = NaN or +∞, which
 * also make `sum` non-finite: then the returns are summed again the plain way.
 */
const returnStats = (closes: Float64Array, length: number, baseline: number | null): ReturnStats | null => {
  const offset = baseline === null ? 0 : 1
  const count = Math.max(0, length + offset - 1)
  let previous = baseline === null ? closes[0] : baseline
  let shift = 0
  let sum = 0
  let sumSquares = 0
  let downside = 0
  for (let j = 0; j < count; j++) {
    const current = closes[j + 1 - offset]
    if (!(previous > 0)) return null
    const r = current / previous - 1
    if (j === 0) shift = r
    const d = r - shift
    sum += d
    sumSquares += d * d
    const negative = (r - Math.abs(r)) * 0.5
    downside += negative * negative
    previous = current
  }
  if (!Number.isFinite(sum)) {
    downside = 0
    previous = baseline === null ? closes[0] : baseline
    for (let j = 0; j < count; j++) {
      const current = closes[j + 1 - offset]
      const r = current / previous - 1
      if (r < 0) downside += r * r
      previous = current
    }
  }
  const meanShifted = count > 0 ? sum / count : 0
  const variance = count > 1 ? Math.max(0, (sumSquares - sum * meanShifted) / (count - 1)) : 0
  return {
    count,
    mean: shift + meanShifted,
    sampleStdDev: Math.sqrt(variance),
    downsideDeviation: count > 0 ? Math.sqrt(downside / count) : 0
  }
}

const mean = (xs: ArrayLike<number>): number => {
  let sum = 0
  for (let i = 0; i < xs.length; i++) sum += xs[i]
  return sum / xs.length
}

/** Returns of the strategy and of the benchmark over the days both have, paired. */
const pairedReturns = (strategy: PeriodSeries, benchmark: PeriodSeries): { s: number[]; b: number[] } => {
  const benchmarkByDay = new Map<number, number>()
  for (let i = 0; i < benchmark.length; i++) benchmarkByDay.set(benchmark.keys[i], benchmark.closes[i])
  const s: number[] = []
  const b: number[] = []
  for (let i = 1; i < strategy.length; i++) {
    const prevBench = benchmarkByDay.get(strategy.keys[i - 1])
    const bench = benchmarkByDay.get(strategy.keys[i])
    const prevNav = strategy.closes[i - 1]
    if (prevBench === undefined || bench === undefined || !(prevBench > 0) || !(prevNav > 0)) continue
    s.push(strategy.closes[i] / prevNav - 1)
    b.push(bench / prevBench - 1)
  }
  return { s, b }
}

/** LEAN's annual performance of daily returns: compounded mean daily return. */
const annualPerformance = (meanDailyReturn: number): number => Math.pow(1 + meanDailyReturn, TRADING_DAYS_PER_YEAR) - 1

export interface BenchmarkStats {
  alpha: number | null
  beta: number | null
  information_ratio: number | null
  tracking_error: number | null
  treynor_ratio: number | null
  /** reason per null statistic */
  notes: Record<string, string>
}

/**
 * LEAN's benchmark statistics (QuantConnect PortfolioStatistics) of a run's day closes against a
 * benchmark's, risk-free rate 0: daily returns are paired on consecutive run days both series
 * have; beta = sample cov(r, b) / sample var(b); alpha = annual(r) − beta × annual(b);
 * tracking_error = sample std(r − b) × √252; information_ratio = (annual(r) − annual(b)) /
 * tracking_error; treynor_ratio = annual(r) / beta, with annual(x) = (1 + mean(x))^252 − 1.
 * Where LEAN reports 0 for an undefined ratio (zero variance, zero beta) this reports null and why.
 */
export const benchmarkStatsOfPeriods = (strategy: PeriodSeries, benchmark: PeriodSeries): BenchmarkStats => {
  const notes: Record<string, string> = {}
  const out: BenchmarkStats = { alpha: null, beta: null, information_ratio: null, tracking_error: null, treynor_ratio: null, notes }
  const finite = (name: string, value: number): number | null => {
    if (Number.isFinite(value)) return roundMetric(value)
    notes[name] = "not finite"
    return null
  }
  const { s, b } = pairedReturns(strategy, benchmark)
  if (s.length < MIN_RETURNS_FOR_RATIOS) {
    const reason = `insufficient data: ${s.length} returns on days shared with the benchmark (need ${MIN_RETURNS_FOR_RATIOS})`
    for (const name of ["alpha", "beta", "information_ratio", "tracking_error", "treynor_ratio"]) notes[name] = reason
    return out
  }
  const ms = mean(s)
  const mb = mean(b)
  let cov = 0
  let varB = 0
  let sumDiff = 0
  for (let i = 0; i < s.length; i++) {
    cov += (s[i] - ms) * (b[i] - mb)
    varB += (b[i] - mb) * (b[i] - mb)
    sumDiff += s[i] - b[i]
  }
  const meanDiff = sumDiff / s.length
  let varDiff = 0
  for (let i = 0; i < s.length; i++) varDiff += (s[i] - b[i] - meanDiff) ** 2
  varDiff /= s.length - 1
  const annualStrategy = annualPerformance(ms)
  const annualBenchmark = annualPerformance(mb)
  const beta = varB > 0 ? cov / varB : Number.NaN
  if (varB > 0) {
    out.beta = finite("beta", beta)
    out.alpha = finite("alpha", annualStrategy - beta * annualBenchmark)
    if (beta !== 0) out.treynor_ratio = finite("treynor_ratio", annualStrategy / beta)
    else notes.treynor_ratio = "beta is zero"
  } else {
    notes.beta = "benchmark has zero variance"
    notes.alpha = "no beta: benchmark has zero variance"
    notes.treynor_ratio = "no beta: benchmark has zero variance"
  }
  const trackingError = Math.sqrt(varDiff * TRADING_DAYS_PER_YEAR)
  out.tracking_error = finite("tracking_error", trackingError)
  if (trackingError > 0) out.information_ratio = finite("information_ratio", (annualStrategy - annualBenchmark) / trackingError)
  else notes.information_ratio = "zero tracking error: returns equal the benchmark's"
  return out
}

export const computeMetrics = (input: MetricsInput): Metrics => {
  const notes: Record<string, string> = {}
  const finite = (name: string, value: number, reason: string): number | null => {
    if (Number.isFinite(value)) return roundMetric(value)
    notes[name] = reason
    return null
  }
  const nullWith = (name: string, reason: string): null => {
    notes[name] = reason
    return null
  }

  const { startCapital, finalEquity } = input
  const total_return = finite("total_return", finalEquity / startCapital - 1, "start capital is zero")

  let cagr: number | null
  const years = (input.lastTs - input.firstTs) / MS_PER_YEAR
  if (!(years > 0)) cagr = nullWith("cagr", `insufficient data: equity spans ${input.lastTs - input.firstTs} ms`)
  // Annualising a run of days or weeks turns a 2% move into ±100% or 10^10% a year: a CAGR
  // is only reported for runs of at least a year; total_return is the number to read instead.
  else if (years < MIN_YEARS_FOR_CAGR)
    cagr = nullWith("cagr", `run spans ${((input.lastTs - input.firstTs) / 86_400_000).toFixed(1)} days, less than a year: not annualised (see total_return)`)
  else if (!(finalEquity > 0)) cagr = nullWith("cagr", `final equity ${roundMetric(finalEquity)} is not positive`)
  else cagr = finite("cagr", Math.pow(finalEquity / startCapital, 1 / years) - 1, "overflow: span too short")

  let volatility: number | null = null
  let sharpe: number | null = null
  let sortino: number | null = null
  const stats = returnStats(input.periods.closes, input.periods.length, input.baseline)
  const annualization = Math.sqrt(TRADING_DAYS_PER_YEAR)
  if (stats === null) {
    for (const name of ["volatility", "sharpe", "sortino"]) nullWith(name, "equity reached zero")
  } else if (stats.count < MIN_RETURNS_FOR_RATIOS) {
    for (const name of ["volatility", "sharpe", "sortino"]) {
      nullWith(name, `insufficient data: ${stats.count} returns (need ${MIN_RETURNS_FOR_RATIOS})`)
    }
  } else {
    const { mean: m, sampleStdDev: sd, downsideDeviation } = stats
    volatility = finite("volatility", sd * annualization, "not finite")
    sharpe = sd > 0 ? finite("sharpe", (m / sd) * annualization, "not finite") : nullWith("sharpe", "zero volatility")
    sortino =
      downsideDeviation > 0
        ? finite("sortino", (m / downsideDeviation) * annualization, "not finite")
        : nullWith("sortino", "no negative returns")
  }

  const max_drawdown_pct = finite("max_drawdown_pct", input.maxDrawdown * 100, "not finite")

  const { closed, wins, grossProfit, grossLoss } = input.trades
  let profit_factor: number | null
  if (closed === 0) profit_factor = nullWith("profit_factor", "no closed trades")
  else if (!(grossLoss > 0)) profit_factor = nullWith("profit_factor", "no losing trades")
  else profit_factor = finite("profit_factor", grossProfit / grossLoss, "not finite")
  const win_rate = closed === 0 ? nullWith("win_rate", "no closed trades") : roundMetric(wins / closed)
  const exposure = input.steps === 0 ? nullWith("exposure", "no steps") : roundMetric(input.exposedSteps / input.steps)

  const metrics: Metrics = {
    total_return,
    cagr,
    volatility,
    sharpe,
    sortino,
    max_drawdown_pct,
    profit_factor,
    trades: closed,
    win_rate,
    exposure,
    final_equity: Number.isFinite(finalEquity) ? roundMetric(finalEquity) : 0,
    notes
  }

  if (input.ruinedAtTs !== undefined) {
    metrics.ruined = true
    notes.ruin = `equity reached zero at ${new Date(input.ruinedAtTs).toISOString()}: positions were closed at their last price, any deficit written off, and trading stopped`
  }
  if (input.benchmark !== undefined) {
    const stats = benchmarkStatsOfPeriods(input.periods, input.benchmark)
    metrics.alpha = stats.alpha
    metrics.beta = stats.beta
    metrics.information_ratio = stats.information_ratio
    metrics.tracking_error = stats.tracking_error
    metrics.treynor_ratio = stats.treynor_ratio
    Object.assign(notes, stats.notes)
  }
  return metrics
}
