/**
 * The engine's public surface. The pipeline codes against `types.ts` and these exports only.
 * Plain TypeScript on typed arrays: no I/O (except importing user strategy modules), no Effect.
 */
export * from "./types.js"
export { EngineRunError, StrategyNotFoundError } from "./errors.js"
export { fnv1a32, mulberry32, scenarioSeed } from "./random.js"
export { validateParams } from "./params.js"
export { getStrategy, isBuiltInStrategy, listStrategies, loadStrategy } from "./strategies/index.js"
export { trendBaseline } from "./strategies/trend_baseline.js"
export { meanReversion } from "./strategies/mean_reversion.js"
export { breakout } from "./strategies/breakout.js"
export {
  runBacktest,
  sampleSteps,
  MAX_CARRY_TRADING_DAYS,
  MAX_MISSING_MARK_SHARE,
  type BacktestDebug
} from "./backtest.js"
export { Broker } from "./broker.js"
export { Portfolio, type TradeStats } from "./portfolio.js"
export { benchmarkStats, dailyLast } from "./benchmark.js"
export { benchmarkStatsOfPeriods, type BenchmarkStats } from "./metrics.js"
export { computeMetrics, roundMetric, TRADING_DAYS_PER_YEAR, MIN_RETURNS_FOR_RATIOS, type MetricsInput } from "./metrics.js"
export * as indicators from "./indicators.js"
export {
  FormulaParseError,
  parseFormula,
  evaluateFormula,
  scanSeries,
  scanWithValues,
  formulaTerms,
  formulaText,
  processBatch,
  type Formula,
  type ScanJob,
  type ScanMatch,
  type SymbolScanResult,
  type ScanSummary,
  type ScanBatchResult,
  type ScanValues
} from "./scanner.js"
export { SCAN_STRATEGY, formulaProblem } from "./strategies/scan.js"

/** Bumped whenever a change can alter metrics for the same scenario and data. */
export const ENGINE_VERSION = "2.0.0"
