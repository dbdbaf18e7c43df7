/**
 * The engine's sweep speed-ups (cached EMAs, per-series day index, pooled buffers, branch-free
 * downside sum) must not change a single bit of any result: checked here against plain reference
 * implementations, for inputs the golden scenarios do not reach.
 */
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { z } from "zod"
import { computeMetrics, getStrategy, runBacktest, TRADING_DAYS_PER_YEAR } from "../../src/engine/index.js"
import type { StrategyDefinition } from "../../src/engine/index.js"
import { randomSeries, randomTargets, scenario } from "./helpers.js"

const trend = getStrategy("trend_baseline")!

/** trend_baseline's single-symbol rule, updated row by row as onBar is called. */
const referenceTrend = (close: Float64Array, fast: number, slow: number, allowShort: boolean) => {
  const fa = 2 / (fast + 1)
  const sa = 2 / (slow + 1)
  let f = close.length > 0 ? close[0] : 0
  let s = f
  return (i: number): number => {
    const price = close[i]
    f = f + fa * (price - f)
    s = s + sa * (price - s)
    return f > s ? 1 : allowShort ? -1 : 0
  }
}

describe("trend_baseline over cached EMAs", () => {
  it("answers exactly like the incremental rule for any order of calls", () => {
    const series = randomSeries({ n: 300, seed: 5 })
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 30 }),
        fc.integer({ min: 1, max: 60 }),
        fc.boolean(),
        fc.array(fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 305 })), { maxLength: 40 }),
        fc.integer({ min: 0, max: 299 }),
        (fast, extra, allowShort, jumps, sequentialPrefix) => {
          const params = { fast, slow: fast + extra, allow_short: allowShort }
          const calls = [...Array.from({ length: sequentialPrefix }, (_, i) => i), ...jumps]
          // twice: a period's first request runs incrementally, the next one reads the cached EMA
          for (let round = 0; round < 2; round++) {
            const instance = trend.create(params, { series: [series], seed: 1 })
            const reference = referenceTrend(series.close, fast, fast + extra, allowShort)
            for (const i of calls) expect(Object.is(instance.onBar(0, i), reference(i))).toBe(true)
          }
        }
      ),
      { numRuns: 200 }
    )
  })

  it("caches a period's EMA on its second request only; the run's results are the same bit for bit either way", () => {
    const series = randomSeries({ n: 400, seed: 9 })
    const kinds: string[] = []
    const metrics: string[] = []
    for (let run = 0; run < 3; run++) {
      kinds.push(trend.create({ fast: 4, slow: 17, allow_short: true }, { series: [series], seed: 1 }).constructor.name)
      metrics.push(JSON.stringify(runBacktest(scenario(trend, { fast: 5, slow: 19, allow_short: true }), [series]).metrics))
    }
    // first request of 4 and 17: incremental; then both are cached
    expect(kinds).toEqual(["TrendSingle", "TrendCached", "TrendCached"])
    expect(new Set(metrics).size).toBe(1)
    // the same scenario on a fresh copy of the series (nothing cached for it) agrees too
    const copy = { ...series, ts: series.ts.slice(), close: series.close.slice() }
    expect(JSON.stringify(runBacktest(scenario(trend, { fast: 5, slow: 19, allow_short: true }), [copy]).metrics)).toBe(metrics[0])
  })
})

/** The original two-pass-free return statistics, with a branch on the sign of each return. */
const referenceRatios = (closes: number[], baseline: number | null) => {
  const offset = baseline === null ? 0 : 1
  const count = Math.max(0, closes.length + offset - 1)
  let previous = baseline === null ? closes[0] : baseline
  let shift = 0
  let sum = 0
  let sumSquares = 0
  let downside = 0
  let negatives = 0
  for (let j = 0; j < count; j++) {
    const current = closes[j + 1 - offset]
    if (!(previous > 0)) return null
    const r = current / previous - 1
    if (j === 0) shift = r
    const d = r - shift
    sum += d
    sumSquares += d * d
    if (r < 0) {
      downside += r * r
      negatives++
    }
    previous = current
  }
  const meanShifted = count > 0 ? sum / count : 0
  const variance = count > 1 ? Math.max(0, (sumSquares - sum * meanShifted) / (count - 1)) : 0
  const sd = Math.sqrt(variance)
  const dd = count > 0 ? Math.sqrt(downside / count) : 0
  const mean = shift + meanShifted
  const a = Math.sqrt(TRADING_DAYS_PER_YEAR)
  const notes: Record<string, string> = {}
  const finite = (name: string, x: number): number | null => {
    if (Number.isFinite(x)) return Number(x.toPrecision(12)) || 0
    notes[name] = "not finite"
    return null
  }
  const volatility = finite("volatility", sd * a)
  let sharpe: number | null = null
  if (sd > 0) sharpe = finite("sharpe", (mean / sd) * a)
  else notes.sharpe = "zero volatility"
  let sortino: number | null = null
  if (negatives > 0 && dd > 0) sortino = finite("sortino", (mean / dd) * a)
  else notes.sortino = "no negative returns"
  return { count, volatility, sharpe, sortino, notes }
}

describe("return statistics", () => {
  const value = fc.oneof(
    { weight: 8, arbitrary: fc.double({ min: 1, max: 1e6, noNaN: true }) },
    fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0, -0, -5, 1e-300, 5e-324, 1e300)
  )
  it("volatility, sharpe and sortino equal the branchy reference bit for bit", () => {
    fc.assert(
      fc.property(fc.array(value, { minLength: 0, maxLength: 30 }), fc.option(value, { nil: null }), (closes, baseline) => {
        const m = computeMetrics({
          startCapital: 100,
          finalEquity: 100,
          firstTs: 0,
          lastTs: 86_400_000 * 30,
          periods: { keys: new Float64Array(closes.length), closes: Float64Array.from(closes), length: closes.length },
          baseline,
          maxDrawdown: 0,
          steps: 1,
          exposedSteps: 0,
          trades: { closed: 0, wins: 0, grossProfit: 0, grossLoss: 0 }
        })
        const ref = referenceRatios(closes, baseline)
        if (ref === null || ref.count < 5) {
          expect([m.volatility, m.sharpe, m.sortino]).toEqual([null, null, null])
        } else {
          const got = JSON.stringify({ v: m.volatility, sh: m.sharpe, so: m.sortino, n: [m.notes.volatility, m.notes.sharpe, m.notes.sortino] })
          const want = JSON.stringify({ v: ref.volatility, sh: ref.sharpe, so: ref.sortino, n: [ref.notes.volatility, ref.notes.sharpe, ref.notes.sortino] })
          expect(got).toBe(want)
        }
      }),
      { numRuns: 2000 }
    )
  })
})

describe("pooled buffers", () => {
  it("a result does not change when later runs reuse the engine's buffers", () => {
    const series = randomSeries({ n: 400, seed: 9, startIndex: 20 })
    const first = runBacktest(scenario(trend, { fast: 3, slow: 8 }), [series])
    const json = JSON.stringify(first)
    for (let j = 0; j < 5; j++) runBacktest(scenario(randomTargets, { change_prob: 0.5 }, { seed: j }), [series])
    expect(JSON.stringify(first)).toBe(json)
  })

  it("a backtest run from inside a strategy gives the same results as run on its own", () => {
    const series = randomSeries({ n: 300, seed: 10 })
    const inner = scenario(trend, { fast: 4, slow: 12, allow_short: true })
    const alone = JSON.stringify(runBacktest(inner, [series]))
    const nestedResults: string[] = []
    const nesting: StrategyDefinition<{ nest: boolean }> = {
      name: "nesting",
      description: "test: runs a backtest every 50 rows",
      params: z.object({ nest: z.boolean() }),
      validateConfig: () => [],
      calculateRequirements: (_p, freq) => ({ warmupBars: 0, indicators: [], intervals: [freq] }),
      create: (p) => ({
        onBar: (_k, i) => {
          if (p.nest && i % 50 === 0) nestedResults.push(JSON.stringify(runBacktest(inner, [series])))
          return i % 7 === 0 ? (i % 14 === 0 ? 1 : -0.5) : Number.NaN
        }
      })
    }
    const outer = runBacktest(scenario(nesting, { nest: true }), [series])
    const plain = runBacktest(scenario(nesting, { nest: false }), [series])
    expect(nestedResults.length).toBe(6)
    for (const r of nestedResults) expect(r).toBe(alone)
    expect(outer.fills).toBeGreaterThan(20)
    expect(JSON.stringify(outer)).toBe(JSON.stringify(plain))
  })
})
