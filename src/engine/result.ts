/**
 * Result assembly: runs the loop of a set-up scenario and turns its outcome into metrics,
 * warnings and the sampled equity curve.
 */
import { FREQ_MS, type Freq } from "../schemas/common.js"
import { EngineRunError } from "./errors.js"
import { DAY_MS, iso, MAX_MISSING_MARK_SHARE, type RunSetup } from "./loop-common.js"
import { runMultiSymbol } from "./loop-multi.js"
import { runSingleSymbol } from "./loop-single.js"
import { dailyLast } from "./benchmark.js"
import { computeMetrics } from "./metrics.js"
import type { BacktestResult, EngineScenario, PriceSeries } from "./types.js"

const percent = (x: number): string => `${(x * 100).toFixed(1)}%`

/** Runs the loop of a set-up scenario and turns its outcome into the result. */
export const finishRun = (scn: EngineScenario, series: ReadonlyArray<PriceSeries>, freq: Freq, setup: RunSetup): BacktestResult => {
  const symbolCount = series.length
  const portfolio = setup.portfolio
  const outcome = symbolCount === 1 ? runSingleSymbol(setup) : runMultiSymbol(setup)

  if (outcome.steps === 0) {
    throw new EngineRunError(
      `no rows between ${iso(scn.startMs)} and ${iso(scn.endMs)} for ${series.map((s) => s.symbol).join(", ")}`
    )
  }
  const symbolSteps = outcome.steps * symbolCount
  const missingMarkShare = outcome.missingMarks / symbolSteps
  if (missingMarkShare > MAX_MISSING_MARK_SHARE) {
    const worst = series
      .map((s, k) => ({ symbol: s.symbol, missing: outcome.missingBySymbol[k] }))
      .filter((x) => x.missing > 0)
      .sort((a, b) => b.missing - a.missing || (a.symbol < b.symbol ? -1 : 1))
      .slice(0, 3)
      .map((x) => `${x.symbol}: ${x.missing} of ${outcome.steps} steps`)
    throw new EngineRunError(
      `missing marks ${percent(missingMarkShare)} exceed the ${percent(MAX_MISSING_MARK_SHARE).replace(".0%", "%")} limit (${worst.join(", ")})`
    )
  }

  const warnings = [...outcome.warnings]
  const exec = setup.execution
  if (exec.ruined) warnings.push(`equity reached zero at ${iso(exec.ruinedAtTs)}: positions were closed and trading stopped (metrics.ruined)`)
  if (exec.clampedTargets > 0) warnings.push(`${exec.clampedTargets} strategy targets outside [-1, 1] were clamped`)
  if (outcome.missingMarks > 0) {
    warnings.push(
      `${outcome.missingMarks} missing marks (${percent(missingMarkShare)} of symbol-steps) carried forward from the last price`
    )
  }

  const metrics = computeMetrics({
    startCapital: scn.startCapital,
    finalEquity: outcome.finalNav,
    firstTs: outcome.firstTs,
    lastTs: outcome.lastTs,
    periods: outcome.periods,
    // for daily bars the first close is the start (no fill can happen on the first row);
    // intraday days start from the capital held before the first row
    baseline: FREQ_MS[freq] >= DAY_MS ? null : scn.startCapital,
    maxDrawdown: outcome.maxDrawdown,
    steps: outcome.steps,
    exposedSteps: outcome.exposedSteps,
    trades: portfolio.tradeStats(),
    ruinedAtTs: exec.ruined ? exec.ruinedAtTs : undefined,
    benchmark: scn.benchmark !== undefined ? dailyLast(scn.benchmark.ts, scn.benchmark.close, scn.endMs) : undefined
  })
  return {
    metrics,
    equity: { ts: outcome.equityTs, nav: outcome.equityNav },
    fills: portfolio.fills,
    missingMarks: outcome.missingMarks,
    missingMarkShare,
    rows: outcome.rows,
    warnings
  }
}

