/**
 * A fixed set of scenarios whose full results (metrics, equity curve, warnings, progress calls,
 * errors) are pinned in golden-results.json: any engine change that alters a single bit of a
 * result fails golden.test.ts. Regenerate only for an intended change of results (and bump
 * ENGINE_VERSION): UPDATE_GOLDEN=1 npx vitest run test/engine/golden.test.ts
 *
 * Many scenarios share the same PriceSeries objects (as a parameter sweep does), and some use
 * copies or slices of the same data with other startIndex / date ranges, so per-series caches
 * in the engine are exercised both ways.
 */
import { createHash } from "node:crypto"
import { getStrategy, mulberry32, runBacktest, validateParams } from "../../src/engine/index.js"
import type { EngineScenario, PriceSeries, StrategyDefinition } from "../../src/engine/index.js"
import type { Costs, Freq } from "../../src/schemas/common.js"
import { DAY, NO_COSTS, randomSeries, randomTargets, scripted, T0 } from "./helpers.js"

const COSTS: Costs = { commission_bps: 1, spread_w: 1, impact_w: 0.1, slippage_bps: 0.5 }

/** Irregular timestamps: `perDay` rows at random times of the day, some days skipped. */
const irregularSeries = (
  symbol: string,
  days: number,
  perDay: number,
  seed: number,
  freq: Freq,
  skipProb: number,
  startIndex = 0
): PriceSeries => {
  const random = mulberry32(seed)
  const ts: number[] = []
  const close: number[] = []
  let price = 50
  for (let d = 0; d < days; d++) {
    if (random() < skipProb) continue
    const offsets = Array.from({ length: perDay }, () => random() * DAY).sort((a, b) => a - b)
    for (const o of offsets) {
      ts.push(T0 + d * DAY + (freq === "tick" ? o : Math.floor(o / 60_000) * 60_000))
      price *= Math.exp((random() - 0.5) * 0.03)
      close.push(price)
    }
  }
  // equal timestamps can happen for bars: keep them strictly ascending by dropping duplicates
  const keepTs: number[] = []
  const keepClose: number[] = []
  for (let i = 0; i < ts.length; i++) {
    if (keepTs.length > 0 && ts[i] <= keepTs[keepTs.length - 1]) continue
    keepTs.push(ts[i])
    keepClose.push(close[i])
  }
  return {
    symbol,
    freq,
    ts: Float64Array.from(keepTs),
    close: Float64Array.from(keepClose),
    volume: Float64Array.from(keepClose, (_, i) => 1 + ((i * 7919) % 500)),
    startIndex: Math.min(startIndex, keepTs.length)
  }
}

/** Daily bars on weekdays only (weekend gaps), at 21:00 UTC. */
const weekdaySeries = (n: number, seed: number, startIndex: number): PriceSeries => {
  const base = randomSeries({ n, seed, startIndex, symbol: "WKD" })
  const ts = new Float64Array(n)
  let day = 0
  for (let i = 0; i < n; i++) {
    while ((day + 3) % 7 >= 5) day++ // T0 (2020-01-01) is a Wednesday
    ts[i] = T0 + day * DAY + 21 * 3_600_000
    day++
  }
  return { ...base, ts }
}

export interface GoldenCase {
  readonly name: string
  readonly run: () => unknown
}

const strategy = (name: string): StrategyDefinition<any> => {
  const s = getStrategy(name)
  if (s === undefined) throw new Error(`${name} missing`)
  return s
}

const scn = (
  def: StrategyDefinition<any>,
  params: Record<string, unknown>,
  series: ReadonlyArray<PriceSeries>,
  extra: Partial<EngineScenario> = {}
): EngineScenario => {
  const v = validateParams(def, params, { strict: true })
  if (!v.ok) throw new Error(v.errors.join("; "))
  const s0 = series[0]
  return {
    strategy: def,
    params: v.params,
    startCapital: 100_000,
    costs: COSTS,
    seed: 3,
    startMs: s0.ts[0],
    endMs: s0.ts[s0.ts.length - 1] + 1,
    ...extra
  }
}

/** Runs a scenario; the outcome (result, or error message) plus the progress calls. */
const outcome = (scenario: EngineScenario, series: ReadonlyArray<PriceSeries>): unknown => {
  const progress: number[] = []
  const withProgress: EngineScenario =
    scenario.progressEvery !== undefined ? { ...scenario, onProgress: (done, total) => progress.push(done, total) } : scenario
  try {
    const r = runBacktest(withProgress, series)
    return progress.length > 0 ? { result: r, progress } : { result: r }
  } catch (e) {
    return { error: `${(e as Error).name}: ${(e as Error).message}`, progress }
  }
}

export const goldenCases = (): GoldenCase[] => {
  const trend = strategy("trend_baseline")
  const meanReversion = strategy("mean_reversion")
  const breakout = strategy("breakout")
  const cases: GoldenCase[] = []
  const add = (name: string, scenario: () => EngineScenario, series: ReadonlyArray<PriceSeries>): void => {
    cases.push({ name, run: () => outcome(scenario(), series) })
  }

  // a daily sweep over one series object
  const daily = randomSeries({ n: 1500, seed: 11, startIndex: 200, symbol: "DLY" })
  for (let j = 0; j < 24; j++) {
    const fast = 2 + ((j * 7) % 40)
    const slow = fast + 1 + ((j * 13) % 90)
    add(`daily trend ${fast}/${slow} short=${j % 2}`, () => scn(trend, { fast, slow, allow_short: j % 2 === 1 }, [daily], { seed: j }), [daily])
  }
  // the same data, other start/end and startIndex (same arrays, other PriceSeries objects)
  const dailyLate = { ...daily, startIndex: 600 }
  add("daily trend startIndex 600", () => scn(trend, { fast: 5, slow: 20 }, [dailyLate]), [dailyLate])
  add("daily trend mid range", () => scn(trend, { fast: 5, slow: 20 }, [daily], { startMs: daily.ts[900], endMs: daily.ts[1200] + 1 }), [daily])
  add("daily trend end between rows", () => scn(trend, { fast: 3, slow: 9, allow_short: true }, [daily], { endMs: daily.ts[1000] - 5 }), [daily])
  add("daily trend 3 equity points", () => scn(trend, { fast: 5, slow: 20 }, [daily], { maxEquityPoints: 3 }), [daily])
  add("daily trend 5000 equity points", () => scn(trend, { fast: 5, slow: 20 }, [daily], { maxEquityPoints: 5000 }), [daily])
  add("daily trend progress", () => scn(trend, { fast: 4, slow: 30 }, [daily], { progressEvery: 97 }), [daily])
  add("daily trend no costs", () => scn(trend, { fast: 4, slow: 30 }, [daily], { costs: NO_COSTS }), [daily])
  const copy: PriceSeries = { ...daily, ts: daily.ts.slice(), close: daily.close.slice() }
  add("daily trend on a copy", () => scn(trend, { fast: 4, slow: 30 }, [copy]), [copy])
  const short = randomSeries({ n: 8, seed: 5, symbol: "SHORT" })
  add("daily 8 rows", () => scn(trend, { fast: 2, slow: 3, allow_short: true }, [short]), [short])
  const single = randomSeries({ n: 1, seed: 5, symbol: "ONE" })
  add("daily 1 row", () => scn(trend, { fast: 2, slow: 3 }, [single]), [single])
  add("daily empty range", () => scn(trend, { fast: 2, slow: 3 }, [daily], { startMs: daily.ts[1499] + 10, endMs: daily.ts[1499] + 20 }), [daily])
  for (const [mode, extra] of [
    ["bollinger", {}],
    ["rsi", { rsi_period: 7 }]
  ] as const) {
    for (const allow_short of [false, true]) {
      add(`daily mean_reversion ${mode} short=${allow_short}`, () => scn(meanReversion, { mode, allow_short, ...extra }, [daily]), [daily])
    }
  }
  add("daily breakout", () => scn(breakout, { entry_window: 20, exit_window: 10 }, [daily]), [daily])
  add("daily breakout short", () => scn(breakout, { entry_window: 15, exit_window: 5, allow_short: true }, [daily]), [daily])
  add("daily random targets", () => scn(randomTargets, { change_prob: 0.3 }, [daily], { seed: 99 }), [daily])
  const bench = randomSeries({ n: 1500, seed: 12, symbol: "BNCH" })
  add("daily trend with benchmark", () => scn(trend, { fast: 5, slow: 20 }, [daily], { benchmark: bench }), [daily])
  const clamp = scripted([[0, 2, 2, -3, 0.5, Number.NaN, 0, 1.5, 0.25]])
  const fromZero = randomSeries({ n: 300, seed: 13, symbol: "ZERO" })
  add("daily scripted clamped", () => scn(clamp, {}, [fromZero]), [fromZero])
  const ruin = scripted([Array.from({ length: 1500 }, (_, i) => (i % 2 === 0 ? 1 : -1))])
  add("daily ruin by costs", () => scn(ruin, {}, [daily], { costs: { commission_bps: 5000, spread_w: 2, impact_w: 0, slippage_bps: 2000 } }), [daily])

  // weekday daily bars (gaps), with warmup
  const weekdays = weekdaySeries(1200, 21, 150)
  for (const [fast, slow] of [
    [3, 10],
    [10, 50],
    [20, 21]
  ]) {
    add(`weekday trend ${fast}/${slow}`, () => scn(trend, { fast, slow, allow_short: fast === 3 }, [weekdays]), [weekdays])
  }
  add("weekday trend with benchmark", () => scn(trend, { fast: 5, slow: 20 }, [weekdays], { benchmark: bench }), [weekdays])

  // intraday bars and ticks: several rows per day, skipped days
  const hourly = irregularSeries("HRL", 200, 7, 31, "1h", 0.2, 50)
  const minutes = irregularSeries("MIN", 60, 300, 32, "5min", 0.1, 100)
  const ticks = irregularSeries("TCK", 40, 2000, 33, "tick", 0.15, 500)
  for (const [label, s] of [
    ["hourly", hourly],
    ["5min", minutes],
    ["tick", ticks]
  ] as const) {
    for (const [fast, slow] of [
      [2, 5],
      [8, 40]
    ]) {
      add(`${label} trend ${fast}/${slow}`, () => scn(trend, { fast, slow, allow_short: slow === 5 }, [s]), [s])
    }
    add(`${label} mean_reversion`, () => scn(meanReversion, { window: 15 }, [s]), [s])
    add(`${label} random targets`, () => scn(randomTargets, { change_prob: 0.05 }, [s], { seed: 5 }), [s])
    add(`${label} with benchmark`, () => scn(trend, { fast: 3, slow: 11 }, [s], { benchmark: bench }), [s])
    add(`${label} progress`, () => scn(trend, { fast: 3, slow: 11 }, [s], { progressEvery: 1000 }), [s])
    add(`${label} mid range`, () => {
      const n = s.ts.length
      return scn(trend, { fast: 3, slow: 11 }, [s], { startMs: s.ts[Math.floor(n / 3)] + 0.5, endMs: s.ts[Math.floor((2 * n) / 3)] })
    }, [s])
  }

  // timestamps that make day numbers inexact or odd: within float rounding below midnight,
  // infinite, before 1970, and huge; several rows per day and gaps of exactly one day
  const odd = (label: string, stamps: number[], freq: Freq = "1h"): void => {
    const base = randomSeries({ n: stamps.length, seed: 77, symbol: label })
    const s: PriceSeries = { ...base, freq, ts: Float64Array.from(stamps) }
    add(`odd ts ${label} trend`, () => scn(trend, { fast: 2, slow: 3, allow_short: true }, [s], { startMs: -Infinity, endMs: Infinity }), [s])
    add(`odd ts ${label} random`, () => scn(randomTargets, { change_prob: 0.5 }, [s], { startMs: -Infinity, endMs: Infinity, seed: 4 }), [s])
  }
  const hoursFrom = (t0: number, n: number, step = 3_600_000): number[] => Array.from({ length: n }, (_, i) => t0 + i * step)
  const midnight = T0 + 30 * DAY
  const nearMidnight = hoursFrom(T0, 40, 7 * 3_600_000)
  for (const tiny of [1e-4, 2.5e-4, 5e-4, 1e-3]) nearMidnight.push(midnight - tiny)
  nearMidnight.push(...hoursFrom(midnight, 40, 5 * 3_600_000))
  odd("near midnight", nearMidnight.sort((x, y) => x - y), "tick")
  odd("below zero", [...hoursFrom(-3 * DAY, 50, 3_600_000), -1e-20, 0, ...hoursFrom(5_000, 30, 3_600_000 * 5)].sort((x, y) => x - y), "tick")
  odd("infinite tail", [...hoursFrom(T0, 60, 2 * 3_600_000), Infinity, Infinity], "tick")
  odd("huge", hoursFrom(2 ** 51, 60, 6 * 3_600_000), "tick")
  odd("exact days", hoursFrom(T0, 60, DAY), "1d")
  odd("day minus 1ms", hoursFrom(T0, 60, DAY - 1), "1d")

  // several symbols: aligned, misaligned (missing marks), and one with too many missing marks
  const a = randomSeries({ n: 600, seed: 41, symbol: "AAA", startIndex: 50 })
  const b = randomSeries({ n: 600, seed: 42, symbol: "BBB", startIndex: 50 })
  const sparseIdx = Array.from({ length: 600 }, (_, i) => i).filter((i) => i % 37 !== 5)
  const c: PriceSeries = {
    symbol: "CCC",
    freq: "1d",
    ts: Float64Array.from(sparseIdx, (i) => a.ts[i]),
    close: Float64Array.from(sparseIdx, (i) => a.close[i] * 0.5 + 10),
    startIndex: 40
  }
  add("multi trend aligned", () => scn(trend, { fast: 5, slow: 20, allow_short: true }, [a, b]), [a, b])
  add("multi trend sparse", () => scn(trend, { fast: 5, slow: 20 }, [a, b, c]), [a, b, c])
  add("multi random targets", () => scn(randomTargets, { change_prob: 0.3 }, [a, b, c], { seed: 8 }), [a, b, c])
  add("multi with benchmark", () => scn(trend, { fast: 5, slow: 20 }, [a, c], { benchmark: bench }), [a, c])
  const veryUneven: PriceSeries = { ...c, ts: c.ts.filter((_, i) => i % 3 === 0), close: c.close.filter((_, i) => i % 3 === 0), startIndex: 0 }
  add("multi too many missing marks", () => scn(trend, { fast: 5, slow: 20 }, [a, veryUneven]), [a, veryUneven])
  const ticks2 = irregularSeries("TK2", 40, 500, 34, "tick", 0.3)
  add("multi ticks too many missing marks", () => scn(randomTargets, { change_prob: 0.02 }, [ticks, ticks2], { seed: 2 }), [ticks, ticks2])
  const ticks3 = irregularSeries("TK3", 30, 300, 35, "tick", 0)
  const ticks4 = irregularSeries("TK4", 30, 400, 36, "tick", 0, 1000)
  add("multi ticks", () => scn(randomTargets, { change_prob: 0.02 }, [ticks3, ticks4], { seed: 2 }), [ticks3, ticks4])
  return cases
}

export const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex")

/** name → { metrics (readable) and a hash of the whole outcome } */
export const goldenOutcomes = (): Record<string, { metrics?: unknown; error?: string; sha256: string }> => {
  const out: Record<string, { metrics?: unknown; error?: string; sha256: string }> = {}
  for (const c of goldenCases()) {
    const o = c.run() as { result?: { metrics: unknown }; error?: string }
    const json = JSON.stringify(o)
    if (c.name in out) throw new Error(`duplicate golden case ${c.name}`)
    out[c.name] = { ...(o.result !== undefined ? { metrics: o.result.metrics } : { error: o.error }), sha256: sha256(json) }
  }
  return out
}
