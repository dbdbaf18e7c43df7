import { describe, expect, it } from "vitest"
import { computeMetrics, runBacktest, roundMetric } from "../../src/engine/index.js"
import type { MetricsInput } from "../../src/engine/index.js"
import { closesSeries, DAY, randomSeries, scenario, scripted, T0 } from "./helpers.js"

const periods = (closes: number[]) => ({
  keys: Float64Array.from(closes.map((_, i) => i)),
  closes: Float64Array.from(closes),
  length: closes.length
})

const base: MetricsInput = {
  startCapital: 100,
  finalEquity: 110,
  firstTs: T0,
  lastTs: T0 + 365.25 * DAY,
  periods: periods([100, 101, 99, 102, 104, 103, 110]),
  baseline: null,
  maxDrawdown: 0.0196,
  steps: 7,
  exposedSteps: 5,
  trades: { closed: 4, wins: 3, grossProfit: 15, grossLoss: 5 }
}

describe("metrics", () => {
  it("computes the documented formulas", () => {
    const m = computeMetrics(base)
    const closes = [100, 101, 99, 102, 104, 103, 110]
    const r = closes.slice(1).map((c, i) => c / closes[i] - 1)
    const mean = r.reduce((a, b) => a + b) / r.length
    const sd = Math.sqrt(r.reduce((a, b) => a + (b - mean) ** 2, 0) / (r.length - 1))
    const dd = Math.sqrt(r.reduce((a, b) => a + Math.min(b, 0) ** 2, 0) / r.length)
    expect(m.total_return).toBeCloseTo(0.1, 12)
    expect(m.cagr).toBeCloseTo(0.1, 10)
    expect(m.volatility).toBeCloseTo(sd * Math.sqrt(252), 10)
    expect(m.sharpe).toBeCloseTo((mean / sd) * Math.sqrt(252), 9)
    expect(m.sortino).toBeCloseTo((mean / dd) * Math.sqrt(252), 9)
    expect(m.max_drawdown_pct).toBeCloseTo(1.96, 12)
    expect(m.profit_factor).toBe(3)
    expect(m.win_rate).toBe(0.75)
    expect(m.exposure).toBe(roundMetric(5 / 7))
    expect(m.trades).toBe(4)
    expect(m.notes).toEqual({})
    expect("beta" in m).toBe(false)
  })

  it("metrics that cannot be computed are null with a reason", () => {
    const m = computeMetrics({
      ...base,
      periods: periods([100, 101, 102, 103]),
      lastTs: T0,
      trades: { closed: 2, wins: 2, grossProfit: 5, grossLoss: 0 }
    })
    expect(m.sharpe).toBeNull()
    expect(m.notes).toEqual({
      cagr: "insufficient data: equity spans 0 ms",
      volatility: "insufficient data: 3 returns (need 5)",
      sharpe: "insufficient data: 3 returns (need 5)",
      sortino: "insufficient data: 3 returns (need 5)",
      profit_factor: "no losing trades"
    })
    const none = computeMetrics({ ...base, trades: { closed: 0, wins: 0, grossProfit: 0, grossLoss: 0 } })
    expect(none.profit_factor).toBeNull()
    expect(none.win_rate).toBeNull()
    expect(none.notes.win_rate).toBe("no closed trades")
    const flat = computeMetrics({ ...base, periods: periods([100, 100, 100, 100, 100, 100]) })
    expect(flat.sharpe).toBeNull()
    expect(flat.notes.sharpe).toBe("zero volatility")
    expect(flat.notes.sortino).toBe("no negative returns")
    expect(flat.volatility).toBe(0)
  })

  it("beta against a benchmark on shared days", () => {
    const bench = periods([50, 51, 49.5, 51, 52, 51.5, 55])
    const strategyCloses = [100, 102, 99, 102, 104, 103, 110]
    const m = computeMetrics({ ...base, periods: periods(strategyCloses), benchmark: bench })
    const rs = strategyCloses.slice(1).map((c, i) => c / strategyCloses[i] - 1)
    const rb = [...bench.closes].slice(1).map((c, i) => c / bench.closes[i] - 1)
    const ms = rs.reduce((a, b) => a + b) / rs.length
    const mb = rb.reduce((a, b) => a + b) / rb.length
    const cov = rs.reduce((a, r, i) => a + (r - ms) * (rb[i] - mb), 0)
    const varB = rb.reduce((a, r) => a + (r - mb) ** 2, 0)
    expect(m.beta).toBeCloseTo(cov / varB, 10)
  })

  it("beta through runBacktest: a fully invested strategy has beta 1 against its own prices", () => {
    const s = randomSeries({ n: 300, seed: 5 })
    const r = runBacktest(scenario(scripted([[1]]), {}, { benchmark: s }), [s])
    expect(r.metrics.beta).toBeCloseTo(1, 6)
  })

  it("intraday equity is resampled per UTC day before annualizing", () => {
    // 3 hourly bars per day for 10 days, always long: daily returns = daily price changes
    const hours = Array.from({ length: 30 }, (_, i) => T0 + Math.floor(i / 3) * DAY + (i % 3) * 3_600_000)
    const prices = hours.map((_, i) => 100 * 1.01 ** Math.floor(i / 3) * (i % 3 === 1 ? 1.02 : 1))
    const s = { ...closesSeries(prices, "AAA", 0, (i) => hours[i]), freq: "1h" as const }
    const r = runBacktest(scenario(scripted([[1]]), {}), [s])
    expect(r.metrics.notes.volatility).toBeUndefined()
    expect(r.metrics.volatility).not.toBeNull()
  })

  it("values are rounded to 12 significant digits and never NaN or Infinity", () => {
    expect(roundMetric(1 / 3)).toBe(0.333333333333)
    expect(roundMetric(-0)).toBe(0)
    const r = runBacktest(scenario(scripted([[1]]), {}), [closesSeries([100, 100])])
    const json = JSON.stringify(r.metrics)
    expect(json).not.toMatch(/NaN|Infinity/)
    expect(r.metrics.notes.sharpe).toBe("insufficient data: 1 returns (need 5)")
  })
})

describe("CAGR of short runs", () => {
  it("is null with its reason below a year, annualised from a year on", () => {
    const month = computeMetrics({ ...base, lastTs: T0 + 30 * DAY })
    expect(month.cagr).toBeNull()
    expect(month.notes.cagr).toBe("run spans 30.0 days, less than a year: not annualised (see total_return)")
    expect(month.total_return).toBeCloseTo(0.1, 12)
    const twoYears = computeMetrics({ ...base, lastTs: T0 + 2 * 365.25 * DAY })
    // independent: (1 + 10%) over two years
    expect(twoYears.cagr).toBeCloseTo(Math.sqrt(1.1) - 1, 10)
  })
})
