/**
 * Engine numbers against independent oracles written here in plain code: a reference
 * trend_baseline backtest on the real SPX series, LEAN's benchmark statistics, multi-symbol
 * order sizing, and ruin.
 */
import { describe, expect, it } from "vitest"
import { benchmarkStats, getStrategy, runBacktest, validateParams } from "../../src/engine/index.js"
import type { EngineScenario, PriceSeries } from "../../src/engine/index.js"
import type { Costs } from "../../src/schemas/common.js"
import { closesSeries, DAY, firstAtOrAfter, loadSpx, NO_COSTS, scenario, scripted, T0, walkOn } from "./helpers.js"

const spx = loadSpx()
const trend = getStrategy("trend_baseline")!
const START = Date.UTC(2005, 0, 3)
const END = Date.UTC(2019, 11, 31) + DAY

const trendScenario = (fast: number, slow: number, costs: Costs, extra: Partial<EngineScenario> = {}): EngineScenario => ({
  strategy: trend,
  params: validateParams(trend, { fast, slow }, { strict: true }).params,
  startCapital: 100_000,
  costs,
  seed: 1,
  startMs: START,
  endMs: END,
  warmupBars: 3 * slow,
  ...extra
})

const relClose = (a: number, b: number, tolerance: number): boolean => Math.abs(a - b) <= tolerance * Math.max(Math.abs(a), Math.abs(b), 1e-300)

/**
 * trend_baseline by hand: EMAs seeded on the window's first close, long (1) while fast > slow
 * else flat; a change decided at a bar's close is traded at the next bar's open (close if none)
 * for target × NAV at that open; per unit the fill pays slippage and the half-spread, both in bps
 * of the price; commission in bps of the traded value. Returns the NAV at each bar's close from
 * the first trading bar on.
 */
const referenceTrend = (s: PriceSeries, fast: number, slow: number, costs: Costs, capital: number, startMs: number, endMs: number, warmup: number): { ts: number[]; nav: number[] } => {
  const { ts, close, open } = s
  let start = 0
  while (start < ts.length && ts[start] < startMs) start++
  let end = start
  while (end < ts.length && ts[end] < endMs) end++
  const from = Math.max(0, start - warmup)
  const fastAlpha = 2 / (fast + 1)
  const slowAlpha = 2 / (slow + 1)
  let fastEma = close[from]
  let slowEma = close[from]
  let cash = capital
  let units = 0
  let held = 0
  let order: number | undefined
  const out = { ts: [] as number[], nav: [] as number[] }
  for (let r = from; r < end; r++) {
    if (order !== undefined) {
      const price = open !== undefined && open[r] > 0 ? open[r] : close[r]
      const nav = cash + units * price
      let quantity = (order * nav) / price - units
      const negligible = order !== 0 && Math.abs(quantity * price) <= 1e-9 * Math.abs(nav)
      if (!negligible && quantity !== 0) {
        const perUnit = (price * costs.slippage_bps) / 1e4 + (price * costs.spread_w) / 1e4
        const fill = quantity > 0 ? price + perUnit : price - perUnit
        const commission = Math.abs(quantity) * fill * (costs.commission_bps / 1e4)
        if (Math.abs(units + quantity) <= 1e-12 * Math.abs(units)) quantity = -units
        cash -= quantity * fill + commission
        units += quantity
      }
      held = order
      order = undefined
    }
    fastEma = fastEma + fastAlpha * (close[r] - fastEma)
    slowEma = slowEma + slowAlpha * (close[r] - slowEma)
    if (r < start) continue
    out.ts.push(ts[r])
    out.nav.push(cash + units * close[r])
    const wanted = fastEma > slowEma ? 1 : 0
    if (wanted !== held) order = wanted
  }
  return out
}

describe("reference backtest: trend_baseline on the real SPX series", () => {
  for (const [label, costs] of [
    ["without costs", NO_COSTS],
    ["with costs", { commission_bps: 1, spread_w: 2, impact_w: 0, slippage_bps: 1 }]
  ] as const) {
    it(`agrees with the engine's NAV at every step to 1e-9 relative, ${label}`, () => {
      for (const [fast, slow] of [
        [10, 100],
        [5, 20],
        [50, 200]
      ]) {
        const scn = trendScenario(fast, slow, costs)
        const engine = { ts: [] as number[], nav: [] as number[] }
        const result = runBacktest(scn, [spx], {
          onStep: (ts, nav) => {
            engine.ts.push(ts)
            engine.nav.push(nav)
          }
        })
        const reference = referenceTrend(spx, fast, slow, costs, scn.startCapital, START, END, 3 * slow)
        expect(engine.ts).toEqual(reference.ts)
        expect(engine.nav.length).toBeGreaterThan(3700)
        const worst = engine.nav.reduce((w, nav, j) => Math.max(w, Math.abs(nav - reference.nav[j]) / Math.abs(reference.nav[j])), 0)
        expect(worst).toBeLessThanOrEqual(1e-9)
        expect(relClose(result.metrics.final_equity, reference.nav[reference.nav.length - 1], 1e-11)).toBe(true)
        expect(result.fills).toBeGreaterThan(10)
      }
    })
  }
})

/** Returns paired on consecutive days of `nav` that the benchmark also has (plain code, two passes). */
const leanOracle = (navTs: number[], nav: number[], bench: PriceSeries) => {
  const benchByDay = new Map<number, number>()
  for (let i = 0; i < bench.ts.length; i++) benchByDay.set(Math.floor(bench.ts[i] / DAY), bench.close[i])
  const r: number[] = []
  const b: number[] = []
  for (let i = 1; i < nav.length; i++) {
    const b0 = benchByDay.get(Math.floor(navTs[i - 1] / DAY))
    const b1 = benchByDay.get(Math.floor(navTs[i] / DAY))
    if (b0 === undefined || b1 === undefined) continue
    r.push(nav[i] / nav[i - 1] - 1)
    b.push(b1 / b0 - 1)
  }
  const avg = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length
  const sampleCov = (xs: number[], ys: number[]) => {
    const mx = avg(xs)
    const my = avg(ys)
    return xs.reduce((a, x, i) => a + (x - mx) * (ys[i] - my), 0) / (xs.length - 1)
  }
  const annual = (xs: number[]) => (1 + avg(xs)) ** 252 - 1
  const beta = sampleCov(r, b) / sampleCov(b, b)
  const diff = r.map((x, i) => x - b[i])
  const trackingError = Math.sqrt(sampleCov(diff, diff) * 252)
  return {
    pairs: r.length,
    beta,
    alpha: annual(r) - beta * annual(b),
    tracking_error: trackingError,
    information_ratio: (annual(r) - annual(b)) / trackingError,
    treynor_ratio: annual(r) / beta
  }
}

describe("benchmark statistics (LEAN's)", () => {
  const syn = walkOn(spx, "SYN1", 3)
  const names = ["alpha", "beta", "information_ratio", "tracking_error", "treynor_ratio"] as const

  it("alpha, beta, information ratio, tracking error and Treynor match a plain oracle on daily returns aligned by date", () => {
    // the benchmark misses every 7th day: only consecutive run days it has are paired
    const keep = Array.from(spx.ts, (_, i) => i % 7 !== 3)
    const gappy: PriceSeries = { ...spx, ts: spx.ts.filter((_, i) => keep[i]), close: spx.close.filter((_, i) => keep[i]), open: undefined, high: undefined, low: undefined, volume: undefined }
    for (const [universe, benchmark] of [
      [[syn], spx],
      [[spx], gappy],
      [[spx, syn], spx]
    ] as const) {
      const steps = { ts: [] as number[], nav: [] as number[] }
      const r = runBacktest(trendScenario(10, 50, { ...NO_COSTS, commission_bps: 1 }, { benchmark }), [...universe], {
        onStep: (ts, nav) => {
          steps.ts.push(ts)
          steps.nav.push(nav)
        }
      })
      const oracle = leanOracle(steps.ts, steps.nav, benchmark)
      expect(oracle.pairs).toBeGreaterThan(2500)
      for (const name of names) {
        const value = r.metrics[name]
        expect(typeof value).toBe("number")
        expect(relClose(value as number, oracle[name], 1e-9)).toBe(true)
      }
      // the exported function gives the same from an equity curve and the benchmark series
      const separate = benchmarkStats(steps, benchmark)
      for (const name of names) expect(separate[name]).toBe(r.metrics[name])
    }
  })

  it("nulls carry a reason: constant benchmark, too few shared days; no benchmark, no keys", () => {
    const flat: PriceSeries = { ...spx, close: new Float64Array(spx.ts.length).fill(100), open: undefined }
    const r = runBacktest(trendScenario(10, 50, NO_COSTS, { benchmark: flat }), [syn])
    expect(r.metrics.beta).toBeNull()
    expect(r.metrics.notes.beta).toBe("benchmark has zero variance")
    expect(r.metrics.alpha).toBeNull()
    expect(r.metrics.treynor_ratio).toBeNull()
    expect(r.metrics.notes.alpha).toMatch(/no beta/)
    expect(typeof r.metrics.tracking_error).toBe("number")
    const elsewhere: PriceSeries = { ...spx, ts: Float64Array.from(spx.ts, (t) => t + 40 * 365 * DAY) }
    const none = runBacktest(trendScenario(10, 50, NO_COSTS, { benchmark: elsewhere }), [syn])
    for (const name of names) {
      expect(none.metrics[name]).toBeNull()
      expect(none.metrics.notes[name]).toMatch(/insufficient data: 0 returns on days shared with the benchmark/)
    }
    const plain = runBacktest(trendScenario(10, 50, NO_COSTS), [syn])
    for (const name of names) expect(name in plain.metrics).toBe(false)
  })
})

describe("multi-symbol orders", () => {
  const permutations = <T,>(xs: T[]): T[][] => (xs.length <= 1 ? [xs] : xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p])))

  it("every permutation of [SPX, SYN1, SYN2] gives final equity within 1e-6 relative (with and without opens)", () => {
    const universe = [spx, walkOn(spx, "SYN1", 21), walkOn(spx, "SYN2", 22)]
    const closesOnly = universe.map((s) => ({ symbol: s.symbol, freq: s.freq, ts: s.ts, close: s.close, startIndex: 0 }))
    for (const set of [universe, closesOnly]) {
      const finals = permutations(set).map((order) => runBacktest(trendScenario(10, 50, { commission_bps: 1, spread_w: 1, impact_w: 0, slippage_bps: 1 }), order).metrics.final_equity)
      expect(finals).toHaveLength(6)
      for (const f of finals) expect(relClose(f, finals[0], 1e-6)).toBe(true)
    }
  })

  it("are sized from the NAV at the step's opens, never from another symbol's same-bar close", () => {
    // A opens at 100 on day 2 and closes at 1000; B's order on day 2 is 0.5 × NAV at the opens
    const a: PriceSeries = { ...closesSeries([100, 100, 1000, 1000], "A"), open: Float64Array.from([100, 100, 100, 1000]) }
    const b: PriceSeries = { ...closesSeries([50, 50, 50, 50], "B"), open: Float64Array.from([50, 50, 50, 50]) }
    for (const order of [
      [a, b],
      [b, a]
    ]) {
      const ia = order.indexOf(a)
      const targets: number[][] = []
      targets[ia] = [0.5]
      targets[1 - ia] = [Number.NaN, 0.5]
      const positions: number[] = []
      runBacktest(scenario(scripted(targets), {}), order, { onStep: (_ts, _nav, pf) => positions.push(pf.position[1 - ia]) })
      // A: 500 units bought at 100 on day 1; day 2 NAV at the opens = 50,000 + 500 × 100
      expect(positions).toEqual([0, 0, 1000, 1000])
    }
  })
})

describe("ruin", () => {
  const ramp = Array.from({ length: 40 }, (_, i) => 100 + (220 * i) / 39) // 100 → 320

  it("a short held while the price goes 100 → 320: closed out at zero equity, total return −100%, and the metrics say so", () => {
    const navs: number[] = []
    const r = runBacktest(scenario(scripted([[-1]]), {}), [closesSeries(ramp)], {
      onStep: (_ts, nav, pf) => {
        navs.push(nav)
        pf.checkInvariants(nav)
      }
    })
    expect(navs).toHaveLength(40)
    expect(Math.min(...navs)).toBe(0)
    expect(navs[navs.length - 1]).toBe(0)
    expect(r.metrics.total_return).toBe(-1)
    expect(r.metrics.final_equity).toBe(0)
    expect(r.metrics.max_drawdown_pct).toBe(100)
    expect(r.metrics.ruined).toBe(true)
    expect(r.metrics.notes.ruin).toMatch(/^equity reached zero at \d{4}-.*trading stopped$/)
    expect(r.metrics.cagr).toBeNull()
    expect(r.warnings.some((w) => w.startsWith("equity reached zero"))).toBe(true)
    expect(r.equity.nav.every((x) => x >= 0)).toBe(true)
    // the short of 1,000 units at 100 + 220/39 is gone when the price doubles: row 20 (≈ 212.8)
    const ruinRow = navs.indexOf(0)
    expect(ramp[ruinRow]).toBeGreaterThanOrEqual(2 * ramp[1])
    expect(ramp[ruinRow - 1]).toBeLessThan(2 * ramp[1])
  })

  it("the strategy is not asked again after ruin, with one and with several symbols", () => {
    for (const symbols of [1, 2]) {
      const asked: number[] = []
      const def = {
        ...scripted([]),
        create: () => ({
          onBar: (_k: number, i: number) => {
            asked.push(i)
            return -1 / symbols
          }
        })
      }
      const series = Array.from({ length: symbols }, (_, k) => closesSeries(ramp, `S${k}`))
      let step = 0
      let ruinStep = -1
      const r = runBacktest(scenario(def, {}), series, {
        onStep: (_ts, nav) => {
          if (nav === 0 && ruinStep < 0) ruinStep = step
          step++
        }
      })
      expect(r.metrics.total_return).toBe(-1)
      expect(r.metrics.ruined).toBe(true)
      expect(ruinStep).toBeGreaterThan(0)
      // rows are steps here; the ruin step's own close may have been seen, nothing after it
      expect(Math.max(...asked)).toBeLessThanOrEqual(ruinStep)
      expect(step).toBe(ramp.length)
    }
  })

  it("a gap through zero at the open of a traded bar is ruin too (never below −100%)", () => {
    // long 1 at 100, then the price opens at 0.0001 (a 99.9999% gap) while flipping short
    const s: PriceSeries = { ...closesSeries([100, 100, 100, 50, 50], "G"), open: Float64Array.from([100, 100, 100, 0.0001, 50]) }
    const r = runBacktest(scenario(scripted([[1, Number.NaN, -1]]), {}, { costs: { commission_bps: 500, spread_w: 0, impact_w: 0, slippage_bps: 500 } }), [s])
    expect(r.metrics.total_return).toBeGreaterThanOrEqual(-1)
    expect(r.metrics.final_equity).toBeGreaterThanOrEqual(0)
  })
})

it("T0 is a UTC midnight (fixtures are daily)", () => {
  expect(T0 % DAY).toBe(0)
  expect(firstAtOrAfter(spx.ts, START)).toBeGreaterThan(1000)
})
