/** Shared fixtures for the engine tests: seeded synthetic series and scenario builders. */
import { mulberry32, validateParams } from "../../src/engine/index.js"
import type { EngineScenario, PriceSeries, StrategyDefinition } from "../../src/engine/index.js"
import type { Costs, Freq } from "../../src/schemas/common.js"
import { z } from "zod"

export const DAY = 86_400_000
export const T0 = Date.UTC(2020, 0, 1)
export const NO_COSTS: Costs = { commission_bps: 0, spread_w: 0, impact_w: 0, slippage_bps: 0 }

export interface SeriesOptions {
  readonly symbol?: string
  readonly n: number
  readonly seed?: number
  readonly stepMs?: number
  readonly startIndex?: number
  readonly freq?: Freq
  readonly ohlcv?: boolean
  readonly volatility?: number
}

/** Seeded geometric random walk, one row every `stepMs` (default one day). */
export const randomSeries = (o: SeriesOptions): PriceSeries => {
  const random = mulberry32(o.seed ?? 1)
  const step = o.stepMs ?? DAY
  const vol = o.volatility ?? 0.02
  const ts = new Float64Array(o.n)
  const close = new Float64Array(o.n)
  const open = new Float64Array(o.n)
  const high = new Float64Array(o.n)
  const low = new Float64Array(o.n)
  const volume = new Float64Array(o.n)
  let price = 100
  for (let i = 0; i < o.n; i++) {
    ts[i] = T0 + i * step
    open[i] = price
    price *= Math.exp((random() - 0.5) * 2 * vol)
    close[i] = price
    high[i] = Math.max(open[i], price) * (1 + random() * 0.01)
    low[i] = Math.min(open[i], price) * (1 - random() * 0.01)
    volume[i] = 1e5 * (0.5 + random())
  }
  const base = { symbol: o.symbol ?? "AAA", freq: o.freq ?? "1d", ts, close, startIndex: o.startIndex ?? 0 }
  return o.ohlcv === false ? base : { ...base, open, high, low, volume }
}

/** Builds a series from explicit closes (daily, no OHLV). */
export const closesSeries = (closes: number[], symbol = "AAA", startIndex = 0, tsOf = (i: number) => T0 + i * DAY): PriceSeries => ({
  symbol,
  freq: "1d",
  ts: Float64Array.from(closes.map((_, i) => tsOf(i))),
  close: Float64Array.from(closes),
  startIndex
})

export const scenario = (
  strategy: StrategyDefinition<any>,
  params: Record<string, unknown>,
  extra: Partial<EngineScenario> = {}
): EngineScenario => {
  const v = validateParams(strategy, params, { strict: true })
  if (!v.ok) throw new Error(v.errors.join("; "))
  return {
    strategy,
    params: v.params,
    startCapital: 100_000,
    costs: NO_COSTS,
    seed: 1,
    startMs: T0,
    endMs: T0 + 100_000 * DAY,
    ...extra
  }
}

/** A test strategy emitting random targets in [-1, 1] (or NaN = keep) from a seeded PRNG. */
export const randomTargets: StrategyDefinition<{ change_prob: number }> = {
  name: "random_targets",
  description: "test: random targets",
  params: z.object({ change_prob: z.number().min(0).max(1).default(0.3) }),
  validateConfig: () => [],
  calculateRequirements: (_p, freq) => ({ warmupBars: 0, indicators: [], intervals: [freq] }),
  create: (p, ctx) => {
    const random = mulberry32(ctx.seed)
    return {
      onBar: () => {
        if (random() > p.change_prob) return Number.NaN
        const r = random()
        return r < 0.2 ? 0 : Math.round((random() * 2 - 1) * 100) / 100
      }
    }
  }
}

/** A strategy whose targets are a fixed script: targets[k][i] (NaN = keep). */
export const scripted = (targets: number[][]): StrategyDefinition<Record<string, never>> => ({
  name: "scripted",
  description: "test: scripted targets",
  params: z.object({}),
  validateConfig: () => [],
  calculateRequirements: (_p, freq) => ({ warmupBars: 0, indicators: [], intervals: [freq] }),
  create: () => ({ onBar: (k, i) => targets[k]?.[i] ?? Number.NaN })
})
