/**
 * A result is a pure function of the scenario and its own rows: each scenario is cut to its own
 * window (warm-up + date range) whatever larger slice it is handed, and a strategy's context
 * holds no row after the current step.
 */
import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { z } from "zod"
import { getStrategy, listStrategies, runBacktest, validateParams } from "../../src/engine/index.js"
import type { EngineScenario, PriceSeries, StrategyDefinition, StrategySeries } from "../../src/engine/index.js"
import { DAY, firstAtOrAfter, loadSpx, NO_COSTS, randomSeries, rowsOf, scenario, walkOn } from "./helpers.js"

const spx = loadSpx()
const syn = walkOn(spx, "SYNA", 11)
const hourly = randomSeries({ symbol: "HOURLY", n: 4000, seed: 5, stepMs: 3_600_000, freq: "1h" })
const UNIVERSES: ReadonlyArray<ReadonlyArray<PriceSeries>> = [[spx], [syn], [hourly], [spx, syn]]
const trend = getStrategy("trend_baseline")!

interface Template {
  readonly strategy: string
  readonly params: Record<string, unknown>
  readonly universe: number
  /** row numbers in the first series of the universe */
  readonly startRow: number
  readonly rows: number
  /** startMs a little after the row's timestamp (still before the next row) */
  readonly startShiftMs: number
}

const params = fc.oneof(
  fc
    .record({ fast: fc.integer({ min: 2, max: 40 }), gap: fc.integer({ min: 1, max: 300 }), allow_short: fc.boolean() })
    .map(({ fast, gap, allow_short }) => ({ strategy: "trend_baseline", params: { fast, slow: Math.min(1000, fast + gap), allow_short } })),
  fc
    .record({ window: fc.integer({ min: 2, max: 150 }), num_std: fc.double({ min: 0.5, max: 3, noNaN: true }) })
    .map((p) => ({ strategy: "mean_reversion", params: { mode: "bollinger", ...p } })),
  fc.integer({ min: 2, max: 60 }).map((rsi_period) => ({ strategy: "mean_reversion", params: { mode: "rsi", rsi_period, allow_short: true } })),
  fc
    .record({ entry_window: fc.integer({ min: 2, max: 200 }), exit: fc.integer({ min: 1, max: 200 }) })
    .map(({ entry_window, exit }) => ({ strategy: "breakout", params: { entry_window, exit_window: Math.min(exit, entry_window) } }))
)

const template: fc.Arbitrary<Template> = fc
  .record({
    strategy: params,
    universe: fc.integer({ min: 0, max: UNIVERSES.length - 1 }),
    startFraction: fc.double({ min: 0, max: 0.9, noNaN: true }),
    rows: fc.integer({ min: 30, max: 1500 }),
    startShiftMs: fc.constantFrom(0, 1, 3_600_000 - 1)
  })
  .map(({ strategy, universe, startFraction, rows, startShiftMs }) => {
    const n = UNIVERSES[universe][0].ts.length
    return { ...strategy, universe, startRow: Math.floor(startFraction * n), rows, startShiftMs: universe === 2 ? 0 : startShiftMs }
  })

const engineScenario = (t: Template, seed: number): EngineScenario => {
  const def = getStrategy(t.strategy)!
  const v = validateParams(def, t.params, { strict: true })
  if (!v.ok) throw new Error(v.errors.join("; "))
  const lead = UNIVERSES[t.universe][0]
  const n = lead.ts.length
  const startMs = lead.ts[Math.min(t.startRow, n - 1)] + t.startShiftMs
  const endRow = Math.min(n, t.startRow + t.rows)
  const endMs = endRow < n ? lead.ts[endRow] : lead.ts[n - 1] + 1
  return {
    strategy: def,
    params: v.params,
    startCapital: 100_000,
    costs: { commission_bps: 1, spread_w: 0.5, impact_w: 0.05, slippage_bps: 1 },
    seed,
    startMs,
    endMs,
    warmupBars: def.calculateRequirements(v.params, lead.freq).warmupBars,
    maxEquityPoints: 50
  }
}

/** Each series cut to exactly the scenario's rows, as fresh arrays (what its own slice would be). */
const ownRows = (scn: EngineScenario, universe: ReadonlyArray<PriceSeries>): PriceSeries[] =>
  universe.map((s) => {
    const start = firstAtOrAfter(s.ts, scn.startMs)
    const end = firstAtOrAfter(s.ts, scn.endMs)
    const from = Math.max(0, start - scn.warmupBars!)
    return rowsOf(s, from, end, Math.min(start, end) - from)
  })

/** What the result is compared on: everything the executor publishes. */
const published = (r: ReturnType<typeof runBacktest>) => JSON.stringify({ metrics: r.metrics, equity: r.equity, fills: r.fills, warnings: r.warnings, rows: r.rows })

/** results that were not errors, so the property tests are known not to compare errors only */
const outcomes = { ok: 0, failed: 0 }
const attempt = (f: () => ReturnType<typeof runBacktest>): string => {
  try {
    const out = published(f())
    outcomes.ok++
    return out
  } catch (e) {
    outcomes.failed++
    return `error: ${(e as Error).message}`
  }
}

describe("per-scenario window", () => {
  it("random batches: every scenario's result on its group's superset slice is byte-identical to the result on its own rows", () => {
    fc.assert(
      fc.property(
        fc.array(template, { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 0, max: 200 }),
        fc.integer({ min: 0, max: 200 }),
        (batch, extraBefore, extraAfter) => {
          const scenarios = batch.map((t, j) => ({ t, scn: engineScenario(t, j + 1) }))
          for (const { t, scn } of scenarios) {
            // the group's slice: the union of its scenarios' windows, plus some rows on both sides,
            // its startIndex at the group's earliest start (as the loader hands it over)
            const group = scenarios.filter((x) => x.t.universe === t.universe)
            const superset = UNIVERSES[t.universe].map((s) => {
              let from = s.ts.length
              let to = 0
              let firstStart = s.ts.length
              for (const { scn: other } of group) {
                const start = firstAtOrAfter(s.ts, other.startMs)
                from = Math.min(from, Math.max(0, start - other.warmupBars!))
                to = Math.max(to, firstAtOrAfter(s.ts, other.endMs))
                firstStart = Math.min(firstStart, start)
              }
              from = Math.max(0, from - extraBefore)
              to = Math.min(s.ts.length, to + extraAfter)
              return rowsOf(s, from, to, Math.max(0, firstStart - from))
            })
            const alone = attempt(() => runBacktest(scn, ownRows(scn, UNIVERSES[t.universe])))
            const inGroup = attempt(() => runBacktest(scn, superset))
            expect(inGroup).toBe(alone)
            // and on the whole series as loaded, shared by reference
            expect(attempt(() => runBacktest(scn, UNIVERSES[t.universe]))).toBe(alone)
          }
        }
      ),
      { numRuns: 40 }
    )
    expect(outcomes.ok).toBeGreaterThan(10 * outcomes.failed)
  })

  it("SPX trend_baseline 10/100 2005-01-03..2019-12-31 (1 bp commission, 1 bp slippage): alone and with a slow-1000 scenario's warm-up, byte-identical", () => {
    const scn: EngineScenario = {
      strategy: trend,
      params: validateParams(trend, { fast: 10, slow: 100 }, { strict: true }).params,
      startCapital: 100_000,
      costs: { commission_bps: 1, spread_w: 0, impact_w: 0, slippage_bps: 1 },
      seed: 1,
      startMs: Date.UTC(2005, 0, 3),
      endMs: Date.UTC(2019, 11, 31) + DAY,
      warmupBars: 300
    }
    const start = firstAtOrAfter(spx.ts, scn.startMs)
    const end = firstAtOrAfter(spx.ts, scn.endMs)
    const alone = runBacktest(scn, [rowsOf(spx, start - 300, end, 300)])
    // the group slice of fast 50 / slow 1000 beside it: 3,000 warm-up rows (all SPX has: 1,256)
    const from = Math.max(0, start - 3000)
    const grouped = runBacktest(scn, [rowsOf(spx, from, end, start - from)])
    expect(published(grouped)).toBe(published(alone))
    // the figures for the scenario alone (tickflow run, before this change)
    expect(alone.metrics.total_return).toBe(1.13994203876)
    expect(alone.metrics.trades).toBe(31)
    // without warmupBars the old rule holds (every loaded row is warm-up): the figure drifts
    const { warmupBars: _, ...legacy } = scn
    expect(runBacktest(legacy, [rowsOf(spx, from, end, start - from)]).metrics.total_return).not.toBe(1.13994203876)
  })

  it("rejects a bad warmupBars with the field, the value and the fix", () => {
    const scn: EngineScenario = { ...engineScenario({ strategy: "trend_baseline", params: {}, universe: 0, startRow: 400, rows: 100, startShiftMs: 0 }, 1), warmupBars: -3 }
    expect(() => runBacktest(scn, [spx])).toThrow(/warmupBars -3 must be a non-negative integer/)
  })
})

/** A user strategy that tries to read ahead, recording what it saw. */
const peeking = (log: Array<{ k: number; i: number; length: number; ahead: unknown; lastTs: number[] }>, atCreate: number[]): StrategyDefinition<Record<string, never>> => ({
  name: "peeking",
  description: "test: reads the row after the current one",
  params: z.object({}),
  validateConfig: () => [],
  calculateRequirements: (_p, freq) => ({ warmupBars: 0, indicators: [], intervals: [freq] }),
  create: (_p, ctx) => {
    atCreate.push(...ctx.series.map((s) => s.close.length))
    return {
      onBar: (k, i) => {
        const own = ctx.series[k]
        log.push({ k, i, length: own.close.length, ahead: own.close[i + 1], lastTs: ctx.series.map((s) => s.ts[s.ts.length - 1] ?? Number.NaN) })
        return 1 / ctx.series.length
      }
    }
  }
})

describe("history guard", () => {
  it("a user strategy sees no row after the current one: reading ahead gives undefined", () => {
    const log: Parameters<typeof peeking>[0] = []
    const atCreate: number[] = []
    const s = randomSeries({ n: 50, startIndex: 10 })
    const scn: EngineScenario = { strategy: peeking(log, atCreate), params: {}, startCapital: 1e5, costs: NO_COSTS, seed: 1, startMs: s.ts[10], endMs: s.ts[40] }
    runBacktest(scn, [s])
    expect(atCreate).toEqual([0])
    expect(log).toHaveLength(40) // rows 0..39: rows at or after endMs are not in the window
    for (const row of log) {
      expect(row.length).toBe(row.i + 1)
      expect(row.ahead).toBeUndefined()
    }
  })

  it("with several symbols: every symbol's rows up to the current timestamp, none after, whatever the order", () => {
    const a = randomSeries({ symbol: "A", n: 40, seed: 1 })
    // B trades every other day: its rows interleave with A's
    const b0 = randomSeries({ symbol: "B", n: 20, seed: 2 })
    const b: PriceSeries = { ...b0, ts: Float64Array.from(b0.ts, (_, i) => a.ts[2 * i + 1]) }
    for (const universe of [
      [a, b],
      [b, a]
    ]) {
      const log: Parameters<typeof peeking>[0] = []
      const scn: EngineScenario = { strategy: peeking(log, []), params: {}, startCapital: 1e5, costs: NO_COSTS, seed: 1, startMs: a.ts[0], endMs: a.ts[39] + 1 }
      try {
        runBacktest(scn, universe)
      } catch {
        // B misses half the steps (missing marks fail the run): the log is what matters here
      }
      expect(log.length).toBeGreaterThan(0)
      for (const row of log) {
        const now = universe[row.k].ts[row.i]
        expect(row.ahead).toBeUndefined()
        for (let j = 0; j < universe.length; j++) {
          const seen = row.lastTs[j]
          if (Number.isNaN(seen)) continue
          expect(seen).toBeLessThanOrEqual(now)
          // rows at this very timestamp are the present, visible to every symbol's call
          const latest = universe[j].ts.filter((t) => t <= now)
          expect(seen).toBe(latest[latest.length - 1])
        }
      }
    }
  })

  it("every built-in gives identical results with guarded history: none of them reads ahead", () => {
    fc.assert(
      fc.property(template, fc.boolean(), (t, multi) => {
        const scn = engineScenario({ ...t, universe: multi ? 3 : t.universe }, 3)
        const universe = UNIVERSES[multi ? 3 : t.universe]
        const plain = attempt(() => runBacktest(scn, universe))
        const guarded = attempt(() => runBacktest(scn, universe, { guardHistory: true }))
        expect(guarded).toBe(plain)
      }),
      { numRuns: 40 }
    )
    expect(listStrategies().map((s) => s.name).sort()).toEqual(["breakout", "mean_reversion", "trend_baseline"])
  })

  it("trend_baseline over a long series (more rows than its EMA cache takes) gives identical results with guarded history", () => {
    // the guard shows no row at create time: EMAs seeded then would start from 0, not close[0]
    const ticks = randomSeries({ symbol: "TICKS", n: 100_500, seed: 8, stepMs: 1_000, freq: "tick", volatility: 0.0005 })
    const scn = scenario(trend, { fast: 20, slow: 90 }, { startMs: ticks.ts[0], endMs: ticks.ts[ticks.ts.length - 1] + 1 })
    const plain = published(runBacktest(scn, [ticks]))
    expect(published(runBacktest(scn, [ticks], { guardHistory: true }))).toBe(plain)
  })
})
