/**
 * scan: the requirements side of a scanner job's scenarios (one per symbol). It is not a trading
 * strategy: its only parameter is the formula, `validateConfig` parses and type-checks it (so a
 * bad formula is named with its column by the requirements phase, like any bad parameter) and
 * `calculateRequirements` gives the formula's lookback as the warm-up, so the loader fetches
 * enough history. Executors run `strategy: scan` through the scanner (src/engine/scanner.ts),
 * never through the backtest loop; `create` says so if anything tries.
 */
import { z } from "zod"
import type { Freq } from "../../schemas/common.js"
import { FormulaParseError, parseFormula } from "../scanner.js"
import type { StrategyDefinition } from "../types.js"

const ScanParams = z.object({
  formula: z.string().min(1).max(4_000)
})
export type ScanParams = z.infer<typeof ScanParams>

export const SCAN_STRATEGY = "scan"

/** The formula's problem as a parameter error, or undefined when it parses. */
export const formulaProblem = (formula: string): string | undefined => {
  try {
    parseFormula(formula)
    return undefined
  } catch (e) {
    return `params.formula: ${e instanceof FormulaParseError ? e.message : String((e as Error)?.message ?? e)}`
  }
}

export const scanDefinition: StrategyDefinition<ScanParams> = {
  name: SCAN_STRATEGY,
  description: "scanner formula over candles (scan jobs: one scenario per symbol, run by the scanner, not the backtest loop)",
  params: ScanParams,
  validateConfig: (p) => {
    const problem = formulaProblem(p.formula)
    return problem === undefined ? [] : [problem]
  },
  calculateRequirements: (p, freq: Freq) => ({ warmupBars: parseFormula(p.formula).lookback, indicators: [], intervals: [freq] }),
  create: () => {
    throw new Error("strategy scan runs through the scanner (scanWithValues), not the backtest loop")
  }
}
