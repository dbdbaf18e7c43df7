/**
 * The backtest loop. One scenario = one strategy instance walking the rows of its universe in
 * timestamp order; a target (fraction of NAV) decided on row i is executed at row i + 1's open
 * (else its close), so no decision ever sees the price it trades at.
 *
 * Two loops share the same rules:
 * - single symbol: a tight loop over the typed arrays with cash and position in locals (this is
 *   the hot path of tick backtests and of parameter sweeps);
 * - several symbols: a k-way merge by timestamp (ties by symbol index); one "step" is one distinct
 *   timestamp, after which NAV is marked, missing marks are counted and equity is recorded.
 *
 * Each series is first cut to the scenario's own window (src/engine/window.ts): with
 * `warmupBars`, exactly that many rows before `startMs`; without, every row before `startMs`
 * (and before `startIndex`). Warm-up rows feed the strategy (its indicators) but their targets
 * are discarded and they are not in the equity curve. Rows at or after `endMs` are cut off.
 *
 * Files: loop-single.ts and loop-multi.ts (the two loops), execution.ts (orders, ruin),
 * recorders.ts (day closes, equity samples), series-cache.ts (per-array caches, scratch),
 * result.ts (metrics, warnings), window.ts (the window and the user-strategy history guard).
 */
import type { Freq } from "../schemas/common.js"
import { Broker } from "./broker.js"
import { EngineRunError } from "./errors.js"
import { Execution } from "./execution.js"
import {
  DEFAULT_MAX_EQUITY_POINTS,
  DEFAULT_PROGRESS_EVERY,
  iso,
  MAX_CARRY_TRADING_DAYS,
  MAX_MISSING_MARK_SHARE,
  type BacktestDebug
} from "./loop-common.js"
import { Portfolio } from "./portfolio.js"
import { sampleSteps } from "./recorders.js"
import { finishRun } from "./result.js"
import { releaseScratch, takeScratch } from "./series-cache.js"
import { isBuiltInStrategy } from "./strategies/index.js"
import { HistoryGuard, scenarioWindow } from "./window.js"
import type { BacktestResult, EngineScenario, PriceSeries } from "./types.js"

export { MAX_CARRY_TRADING_DAYS, MAX_MISSING_MARK_SHARE, sampleSteps, type BacktestDebug }

const checkShapes = (scn: EngineScenario, series: ReadonlyArray<PriceSeries>): Freq => {
  if (series.length === 0) throw new EngineRunError("no price series given")
  if (!(scn.startCapital > 0)) throw new EngineRunError(`start capital ${scn.startCapital} must be positive`)
  if (!(scn.endMs > scn.startMs)) throw new EngineRunError(`empty date range: end ${iso(scn.endMs)} is not after start ${iso(scn.startMs)}`)
  const freq = series[0].freq
  for (const s of series) {
    const n = s.ts.length
    if (s.freq !== freq) throw new EngineRunError(`${s.symbol}: frequency ${s.freq} differs from ${series[0].symbol}'s ${freq}`)
    if (s.close.length !== n) throw new EngineRunError(`${s.symbol}: close has ${s.close.length} rows, ts has ${n}`)
    for (const [name, column] of [
      ["open", s.open],
      ["high", s.high],
      ["low", s.low],
      ["volume", s.volume]
    ] as const) {
      if (column !== undefined && column.length !== n) {
        throw new EngineRunError(`${s.symbol}: ${name} has ${column.length} rows, ts has ${n}`)
      }
    }
    if (!Number.isInteger(s.startIndex) || s.startIndex < 0 || s.startIndex > n) {
      throw new EngineRunError(`${s.symbol}: startIndex ${s.startIndex} is outside 0..${n}`)
    }
  }
  return freq
}

/**
 * Runs one scenario over its price series (series[k] is symbol k). Throws EngineRunError for
 * engine-level failures (bad or empty data, too many missing marks); an exception thrown by the
 * strategy propagates unchanged. `debug` is a test hook and costs nothing when absent.
 */
export const runBacktest = (
  scn: EngineScenario,
  series: ReadonlyArray<PriceSeries>,
  debug?: BacktestDebug
): BacktestResult => {
  const freq = checkShapes(scn, series)
  const window = scenarioWindow(scn, series)
  const symbolCount = series.length
  const portfolio = new Portfolio(scn.startCapital, symbolCount)
  const guarded = debug?.guardHistory === true || !isBuiltInStrategy(scn.strategy)
  const guard = guarded ? new HistoryGuard(window.series) : undefined
  const created = scn.strategy.create(scn.params, { series: guard?.views ?? window.series, seed: scn.seed })
  const instance = guard !== undefined ? guard.guard(created) : created
  const progressEvery = Math.max(1, Math.floor(scn.progressEvery ?? DEFAULT_PROGRESS_EVERY))
  const scratch = takeScratch()
  try {
    return finishRun(scn, window.series, freq, {
      scn,
      series: window.series,
      freq,
      firstTrade: window.firstTrade,
      endRow: window.endRow,
      portfolio,
      execution: new Execution(window.series, portfolio, new Broker(scn.costs)),
      instance,
      guard,
      progressEvery,
      maxEquityPoints: Math.max(2, Math.floor(scn.maxEquityPoints ?? DEFAULT_MAX_EQUITY_POINTS)),
      debug,
      scratch
    })
  } finally {
    releaseScratch(scratch)
  }
}
