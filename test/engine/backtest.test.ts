import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { z } from "zod"
import { EngineRunError, getStrategy, roundMetric, runBacktest, scenarioSeed } from "../../src/engine/index.js"
import type { PriceSeries, StrategyDefinition } from "../../src/engine/index.js"
import { closesSeries, DAY, NO_COSTS, randomSeries, randomTargets, scenario, scripted, T0 } from "./helpers.js"

const trend = getStrategy("trend_baseline")!

describe("NAV invariant", () => {
  it("holds at every step for random target streams and random prices (one and several symbols)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 31 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 2, max: 200 }),
        fc.boolean(),
        fc.record({
          commission_bps: fc.double({ min: 0, max: 50, noNaN: true }),
          spread_w: fc.double({ min: 0, max: 2, noNaN: true }),
          impact_w: fc.double({ min: 0, max: 1, noNaN: true }),
          slippage_bps: fc.double({ min: 0, max: 50, noNaN: true })
        }),
        (seed, symbols, n, ohlcv, costs) => {
          const series = Array.from({ length: symbols }, (_, k) =>
            randomSeries({ n, seed: seed + k, symbol: `S${k}`, ohlcv, volatility: 0.05 })
          )
          let steps = 0
          const r = runBacktest(scenario(randomTargets, { change_prob: 0.4 }, { seed, costs }), series, {
            onStep: (_ts, nav, pf) => {
              steps++
              pf.checkInvariants(nav, 1e-6)
            }
          })
          expect(steps).toBe(n)
          expect(r.rows).toBe(n * symbols)
        }
      ),
      { numRuns: 150 }
    )
  })

  it("the checker itself catches a broken book", () => {
    const series = randomSeries({ n: 20 })
    expect(() =>
      runBacktest(scenario(scripted([[1]]), {}), [series], {
        onStep: (_ts, nav, pf) => {
          if (pf.position[0] !== 0) pf.cash += 1
          pf.checkInvariants(nav)
        }
      })
    ).toThrow(/invariant broken/)
  })
})

describe("execution", () => {
  it("fills at the next row's open (no look-ahead), else its close", () => {
    const base = closesSeries([100, 100, 110, 121, 121])
    // decide on row 0 (warmup? no: startIndex 0) → fill on row 1
    const withOpen: PriceSeries = { ...base, open: Float64Array.from([100, 105, 110, 121, 121]) }
    const long = scripted([[1]])
    const r1 = runBacktest(scenario(long, {}), [base])
    // filled at close[1] = 100, then 110, 121, 121 → +21%
    expect(r1.metrics.total_return).toBeCloseTo(0.21, 12)
    const r2 = runBacktest(scenario(long, {}), [withOpen])
    // filled at open[1] = 105: units = 100000/105
    expect(r2.metrics.final_equity).toBeCloseTo((100_000 / 105) * 121, 6)
    expect(r2.fills).toBe(1)
  })

  it("warmup rows feed the strategy but never trade and are not in the equity curve", () => {
    const s = closesSeries([100, 50, 100, 100, 200], "AAA", 2)
    const seen: number[] = []
    const def: StrategyDefinition<Record<string, never>> = {
      ...scripted([]),
      create: () => ({
        onBar: (_k, i) => {
          seen.push(i)
          return 1
        }
      })
    }
    const r = runBacktest(scenario(def, {}), [s])
    expect(seen).toEqual([0, 1, 2, 3, 4])
    expect(r.equity.ts).toEqual([T0 + 2 * DAY, T0 + 3 * DAY, T0 + 4 * DAY])
    // decision on row 2 fills on row 3 at 100, marked 200 on row 4
    expect(r.metrics.final_equity).toBe(200_000)
    expect(r.fills).toBe(1)
  })

  it("rows at or after endMs are ignored; startMs starts trading", () => {
    const s = closesSeries([100, 100, 100, 200, 400])
    const r = runBacktest(scenario(scripted([[1, 1, 1, 1, 1]]), {}, { startMs: T0 + DAY, endMs: T0 + 4 * DAY }), [s])
    expect(r.rows).toBe(4)
    expect(r.equity.nav.length).toBe(3)
    expect(r.metrics.final_equity).toBe(200_000)
  })

  it("shorts gain when the price falls", () => {
    const s = closesSeries([100, 100, 80])
    const r = runBacktest(scenario(scripted([[-1]]), {}), [s])
    expect(r.metrics.final_equity).toBeCloseTo(120_000, 6)
  })

  it("commission, spread and slippage are charged as specified", () => {
    const s: PriceSeries = {
      ...closesSeries([100, 100, 100]),
      high: Float64Array.from([101, 102, 101]),
      low: Float64Array.from([99, 98, 99])
    }
    const costs = { commission_bps: 10, spread_w: 20, impact_w: 0, slippage_bps: 5 }
    const r = runBacktest(scenario(scripted([[1]]), {}, { costs }), [s])
    // row 1 at 100: half-spread 20 bp = 0.2, slippage 5 bp = 0.05 → fill 100.25
    const fill = 100.25
    const units = 100_000 / 100
    const commission = units * fill * 0.001
    const expected = 100_000 - units * fill - commission + units * 100
    expect(r.metrics.final_equity).toBeCloseTo(expected, 6)
  })

  it("spread_w means the same with and without high/low: half-spread in bps of price", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 30 }), fc.double({ min: 0, max: 10, noNaN: true }), (seed, spread) => {
        const ohlc = randomSeries({ n: 60, seed })
        const closeOnly: PriceSeries = { symbol: ohlc.symbol, freq: ohlc.freq, ts: ohlc.ts, close: ohlc.close, open: ohlc.open, startIndex: 0 }
        const costs = { ...NO_COSTS, spread_w: spread }
        const scn = scenario(randomTargets, { change_prob: 0.5 }, { seed, costs })
        const a = runBacktest(scn, [ohlc])
        const b = runBacktest(scn, [closeOnly])
        expect(JSON.stringify(a.metrics)).toBe(JSON.stringify(b.metrics))
        // and it is a cost: never better than no spread
        const free = runBacktest({ ...scn, costs: NO_COSTS }, [ohlc])
        expect(a.metrics.final_equity).toBeLessThanOrEqual(free.metrics.final_equity)
      }),
      { numRuns: 60 }
    )
  })

  it("square-root impact uses the bar's volume, and none without volume", () => {
    const s: PriceSeries = { ...closesSeries([100, 100, 100]), volume: Float64Array.from([1000, 4000, 1000]) }
    const costs = { ...NO_COSTS, impact_w: 0.1 }
    const r = runBacktest(scenario(scripted([[1]]), {}, { costs }), [s])
    // 1000 units vs 4000 volume: impact 0.1 × sqrt(0.25) = 5% of price
    expect(r.metrics.final_equity).toBeCloseTo(100_000 - 1000 * 5, 6)
    const without = runBacktest(scenario(scripted([[1]]), {}, { costs }), [closesSeries([100, 100, 100])])
    expect(without.metrics.final_equity).toBe(100_000)
  })

  it("costs are monotone: more commission or slippage never raises final equity", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10_000 }),
        fc.double({ min: 0, max: 100, noNaN: true }),
        fc.double({ min: 0, max: 100, noNaN: true }),
        fc.constantFrom<"commission_bps" | "slippage_bps">("commission_bps", "slippage_bps"),
        (seed, low, extra, which) => {
          const series = randomSeries({ n: 300, seed })
          const scn = (bps: number) => scenario(trend, { fast: 3, slow: 12, allow_short: seed % 2 === 0 }, {
            costs: { ...NO_COSTS, [which]: bps }
          })
          const cheap = runBacktest(scn(low), [series]).metrics.final_equity
          const dear = runBacktest(scn(low + extra), [series]).metrics.final_equity
          expect(dear).toBeLessThanOrEqual(cheap * (1 + 1e-12))
        }
      ),
      { numRuns: 60 }
    )
  })

  it("multi-symbol: rows merged by timestamp, ties by symbol index", () => {
    const a = closesSeries([10, 10, 10], "AAA")
    const b = closesSeries([20, 20, 20], "BBB")
    const order: string[] = []
    const def: StrategyDefinition<Record<string, never>> = {
      ...scripted([]),
      create: () => ({
        onBar: (k, i) => {
          order.push(`${k}:${i}`)
          return Number.NaN
        }
      })
    }
    runBacktest(scenario(def, {}), [b, a])
    expect(order).toEqual(["0:0", "1:0", "0:1", "1:1", "0:2", "1:2"])
  })

  it("equity is sampled evenly to maxEquityPoints, first and last included", () => {
    const s = randomSeries({ n: 1000 })
    const r = runBacktest(scenario(trend, {}, { maxEquityPoints: 7 }), [s])
    expect(r.equity.ts.length).toBe(7)
    expect(r.equity.ts[0]).toBe(s.ts[0])
    expect(r.equity.ts[6]).toBe(s.ts[999])
    expect(roundMetric(r.equity.nav[6])).toBe(r.metrics.final_equity)
    const multi = runBacktest(scenario(trend, {}, { maxEquityPoints: 7 }), [s, { ...s, symbol: "BBB" }])
    expect(multi.equity.ts).toEqual(r.equity.ts)
  })

  it("progress is reported every progressEvery rows and at the end", () => {
    const s = randomSeries({ n: 250, startIndex: 30 })
    const calls: Array<[number, number]> = []
    runBacktest(scenario(trend, {}, { progressEvery: 100, onProgress: (d, t) => calls.push([d, t]) }), [s])
    expect(calls).toEqual([
      [100, 250],
      [200, 250],
      [250, 250]
    ])
  })

  it("a strategy's exception propagates unchanged", () => {
    class Boom extends Error {}
    const def: StrategyDefinition<Record<string, never>> = {
      ...scripted([]),
      create: () => ({
        onBar: (_k, i) => {
          if (i === 5) throw new Boom("strategy exploded")
          return 0
        }
      })
    }
    expect(() => runBacktest(scenario(def, {}), [randomSeries({ n: 10 })])).toThrow(Boom)
  })

  it("engine-level failures are EngineRunError with a reason", () => {
    const bad = closesSeries([100, -1, 100])
    const err = (() => {
      try {
        runBacktest(scenario(trend, {}), [bad])
      } catch (e) {
        return e
      }
    })()
    expect(err).toBeInstanceOf(EngineRunError)
    expect((err as EngineRunError).reason).toBe("AAA: bad close -1 at row 1 (2020-01-02T00:00:00.000Z); prices must be positive")
    const unsorted = closesSeries([1, 2, 3], "AAA", 0, (i) => T0 + (2 - i) * DAY)
    expect(() => runBacktest(scenario(trend, {}), [unsorted])).toThrow(/timestamps not in order at row 1/)
    expect(() => runBacktest(scenario(trend, {}, { startMs: T0 + 10 * DAY }), [closesSeries([1, 2])])).toThrow(
      /^no rows between 2020-01-11/
    )
  })

  it("equity that goes to zero stops trading and is reported", () => {
    const s = closesSeries([100, 100, 250, 250, 250])
    const r = runBacktest(scenario(scripted([[-1, 1, 1, -1]]), {}), [s])
    expect(r.metrics.final_equity).toBeLessThanOrEqual(0)
    expect(r.warnings.some((w) => w.startsWith("equity reached zero"))).toBe(true)
    expect(r.metrics.cagr).toBeNull()
    expect(Object.values(r.metrics).every((v) => typeof v !== "number" || Number.isFinite(v))).toBe(true)
  })
})

describe("missing marks", () => {
  const withGaps = (n: number, missing: number[]): PriceSeries => {
    const keep = Array.from({ length: n }, (_, i) => i).filter((i) => !missing.includes(i))
    return {
      symbol: "BBB",
      freq: "1d",
      ts: Float64Array.from(keep.map((i) => T0 + i * DAY)),
      close: Float64Array.from(keep.map((i) => 50 + i)),
      startIndex: 0
    }
  }

  it("are carried forward at the last price and counted", () => {
    const a = closesSeries(Array(100).fill(100))
    const b = withGaps(100, [40, 41, 42])
    const marks: number[] = []
    const r = runBacktest(scenario(scripted([[], [0.5]]), {}), [a, b], {
      onStep: (ts, _nav, pf) => {
        if (ts >= T0 + 39 * DAY && ts <= T0 + 43 * DAY) marks.push(pf.mark[1])
      }
    })
    expect(marks).toEqual([89, 89, 89, 89, 93])
    expect(r.missingMarks).toBe(3)
    expect(r.missingMarkShare).toBeCloseTo(3 / 200, 15)
    expect(r.warnings).toContain("3 missing marks (1.5% of symbol-steps) carried forward from the last price")
  })

  it("fail the scenario past 5% of symbol-steps", () => {
    const a = closesSeries(Array(100).fill(100), "AAA")
    const b = withGaps(100, Array.from({ length: 11 }, (_, j) => 10 + j * 5))
    expect(() => runBacktest(scenario(trend, {}), [a, b])).toThrow(
      new EngineRunError("missing marks 5.5% exceed the 5% limit (BBB: 11 of 100 steps)")
    )
  })

  it("warn when a held symbol has no price for more than 5 trading days", () => {
    const a = closesSeries(Array(200).fill(100))
    const b = withGaps(200, [100, 101, 102, 103, 104, 105, 106])
    const r = runBacktest(scenario(scripted([[], [1]]), {}), [a, b])
    expect(r.warnings[0]).toMatch(/^BBB: no price for more than 5 trading days before 2020-04-1/)
  })
})

describe("determinism", () => {
  it("same inputs give byte-identical metrics", () => {
    const s = randomSeries({ n: 2000, seed: 9 })
    const t = randomSeries({ n: 2000, seed: 10, symbol: "BBB" })
    const scn = scenario(randomTargets, {}, { seed: scenarioSeed(7, "scn-1"), costs: { ...NO_COSTS, commission_bps: 3, spread_w: 0.5 } })
    const first = JSON.stringify(runBacktest(scn, [s, t]))
    const second = JSON.stringify(runBacktest(scn, [s, t]))
    expect(second).toBe(first)
    const otherSeed = JSON.stringify(runBacktest({ ...scn, seed: scenarioSeed(8, "scn-1") }, [s, t]).metrics)
    expect(otherSeed).not.toBe(JSON.stringify(JSON.parse(first).metrics))
  })

  it("scenarioSeed is a stable 32-bit hash of batch seed and id", () => {
    expect(scenarioSeed(42, "a")).toBe(scenarioSeed(42, "a"))
    expect(scenarioSeed(42, "a")).not.toBe(scenarioSeed(43, "a"))
    expect(scenarioSeed(42, "a")).not.toBe(scenarioSeed(42, "b"))
    // FNV-1a of "42:a", computed independently
    let h = 0x811c9dc5
    for (const c of Buffer.from("42:a")) h = Math.imul(h ^ c, 0x01000193)
    expect(scenarioSeed(42, "a")).toBe(h >>> 0)
    fc.assert(
      fc.property(fc.integer(), fc.string(), (seed, id) => {
        const v = scenarioSeed(seed, id)
        expect(Number.isInteger(v) && v >= 0 && v < 2 ** 32).toBe(true)
      })
    )
  })

  it("the strategy context carries the scenario seed", () => {
    let seen = -1
    const def: StrategyDefinition<Record<string, never>> = {
      ...scripted([]),
      params: z.object({}),
      create: (_p, ctx) => {
        seen = ctx.seed
        return { onBar: () => 0 }
      }
    }
    runBacktest(scenario(def, {}, { seed: 1234 }), [randomSeries({ n: 5 })])
    expect(seen).toBe(1234)
  })
})
