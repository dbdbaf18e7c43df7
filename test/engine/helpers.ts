/** Shared fixtures for the engine tests: seeded synthetic series and scenario builders. */
import { mulberry32, validateParams } from "../../src/engine/index.js"
import type { EngineScenario, PriceSeries, StrategyDefinition } from "../../src/engine/index.js"
import type { Costs, Freq } from "../../src/schemas/common.js"
import { z } from "zod"
import { readFileSync } from "node:fs"
import { vegaDataFile } from "../../src/data/sample.js"

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

/**
 * The real S&P 500 daily bars of the sample catalog (vega-datasets sp500-2000.csv, 2000-01-03 →
 * 2020-04-17: opens, highs, lows, closes, volumes), read straight from the installed package.
 */
export const loadSpx = (): PriceSeries => {
  const text = readFileSync(vegaDataFile("sp500-2000.csv"), "utf8")
  const lines = text.trim().split("\n")
  const header = lines[0].split(",")
  const col = (name: string) => header.indexOf(name)
  const rows = lines.slice(1).map((line) => line.split(","))
  const column = (name: string) => Float64Array.from(rows, (r) => Number(r[col(name)]))
  return {
    symbol: "SPX",
    freq: "1d",
    ts: Float64Array.from(rows, (r) => Date.parse(`${r[col("date")]}T00:00:00Z`)),
    open: column("open"),
    high: column("high"),
    low: column("low"),
    close: column("close"),
    volume: column("volume"),
    startIndex: 0
  }
}

/** A seeded random walk with OHLCV on the timestamps of `like` (so a universe has no missing marks). */
export const walkOn = (like: PriceSeries, symbol: string, seed: number, vol = 0.015): PriceSeries => {
  const random = mulberry32(seed)
  const n = like.ts.length
  const open = new Float64Array(n)
  const close = new Float64Array(n)
  const high = new Float64Array(n)
  const low = new Float64Array(n)
  const volume = new Float64Array(n)
  let price = 50
  for (let i = 0; i < n; i++) {
    open[i] = price * (1 + (random() - 0.5) * vol * 0.5)
    price = open[i] * Math.exp((random() - 0.5) * 2 * vol)
    close[i] = price
    high[i] = Math.max(open[i], price) * (1 + random() * 0.005)
    low[i] = Math.min(open[i], price) * (1 - random() * 0.005)
    volume[i] = 1e6 * (0.5 + random())
  }
  return { symbol, freq: like.freq, ts: like.ts.slice(), open, high, low, close, volume, startIndex: 0 }
}

/** Rows [from, to) of a series as fresh arrays (a slice as the loader would hand it over). */
export const rowsOf = (s: PriceSeries, from: number, to: number, startIndex: number): PriceSeries => ({
  symbol: s.symbol,
  freq: s.freq,
  ts: s.ts.slice(from, to),
  close: s.close.slice(from, to),
  ...(s.open ? { open: s.open.slice(from, to) } : {}),
  ...(s.high ? { high: s.high.slice(from, to) } : {}),
  ...(s.low ? { low: s.low.slice(from, to) } : {}),
  ...(s.volume ? { volume: s.volume.slice(from, to) } : {}),
  startIndex
})

/** First index whose ts is >= bound. */
export const firstAtOrAfter = (ts: Float64Array, bound: number): number => {
  let i = 0
  while (i < ts.length && ts[i] < bound) i++
  return i
}
