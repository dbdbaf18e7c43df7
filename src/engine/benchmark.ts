/**
 * Benchmark statistics for callers that hold an equity curve and a benchmark series (the engine
 * itself computes them from its own day closes when `EngineScenario.benchmark` is given, which is
 * exact; a result's `equity` is sampled down, so prefer passing the benchmark to runBacktest).
 */
import { DAY_MS } from "./loop-common.js"
import { benchmarkStatsOfPeriods, type BenchmarkStats, type PeriodSeries } from "./metrics.js"
import { PeriodRecorder } from "./recorders.js"
import type { PriceSeries } from "./types.js"

/** Last value of each UTC day among rows with ts < endMs (ts ascending). */
export const dailyLast = (ts: ArrayLike<number>, values: ArrayLike<number>, endMs = Number.POSITIVE_INFINITY): PeriodSeries => {
  const out = new PeriodRecorder()
  for (let i = 0; i < ts.length && ts[i] < endMs; i++) {
    const key = Math.floor(ts[i] / DAY_MS)
    if (out.length > 0 && out.keys[out.length - 1] === key) out.closes[out.length - 1] = values[i]
    else out.push(key, values[i])
  }
  return out
}

/**
 * Alpha, beta, information ratio, tracking error and Treynor ratio (LEAN's definitions, see
 * benchmarkStatsOfPeriods) of an equity curve against a benchmark's closes, both taken as the
 * last value of each UTC day and paired on the curve's consecutive days the benchmark also has.
 */
export const benchmarkStats = (
  equity: { readonly ts: ArrayLike<number>; readonly nav: ArrayLike<number> },
  benchmark: PriceSeries
): BenchmarkStats => benchmarkStatsOfPeriods(dailyLast(equity.ts, equity.nav), dailyLast(benchmark.ts, benchmark.close))
