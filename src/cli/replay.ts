/**
 * Replays one finished run locally for its files: the full equity curve (every step, not the
 * result's sampled points) and every fill. The engine is deterministic, so the replay of the
 * same scenario on the same slice gives the pipeline's numbers; `run` compares them and says
 * so in the run's manifest. No engine change: the public `runBacktest` debug hook (`onStep`)
 * sees the portfolio after every step; a fill is a change of a position, priced again by the
 * engine's own `Broker` at the execution bar's reference price (its open, else its close).
 */
import { Effect } from "effect"
import { Broker, runBacktest, scenarioSeed, type Metrics, type PriceSeries } from "../engine/index.js"
import { loadSlice, type SliceRequirement } from "../data/index.js"
import { dayEndMs, dayStartMs } from "../schemas/common.js"
import type { Scenario } from "../schemas/batch.js"
import { checkRequirements, resolveStrategy } from "../actors/checks.js"
import { lowerBound } from "../engine/loop-common.js"

export interface Fill {
  /** epoch ms of the execution bar */
  readonly ts: number
  readonly symbol: string
  readonly side: "buy" | "sell"
  /** units, always positive */
  readonly quantity: number
  /** fill price incl. spread, slippage and impact */
  readonly price: number
  /** the bar's open (else close): the price before costs */
  readonly reference_price: number
  readonly commission: number
  /** (fill − reference) × units, signed so a cost is positive: spread + slippage + impact paid */
  readonly slippage: number
}

export interface RunDetail {
  readonly metrics: Metrics
  readonly equity: { readonly ts: Float64Array; readonly nav: Float64Array; readonly length: number }
  readonly fills: ReadonlyArray<Fill>
  readonly warnings: ReadonlyArray<string>
  readonly execMs: number
  /** warm-up bars the run read before its start */
  readonly warmupBars: number
  /** the commissions the portfolio booked, to check the reconstructed fills against */
  readonly commissionPaid: number
}

/** Loaded series by requirement, shared by the replays of one batch (a sweep shares slices). */
export type SliceCache = Map<string, PriceSeries>

export const loadSeries = (root: string, symbols: ReadonlyArray<string>, s: Scenario, warmupBars: number, cache: SliceCache) =>
  Effect.forEach(symbols, (symbol) => {
    const req: SliceRequirement = { symbol, freq: s.freq, start: s.start_date, end: s.end_date, warmupBars }
    const key = JSON.stringify([root, req])
    const hit = cache.get(key)
    if (hit) return Effect.succeed(hit)
    return loadSlice(root, req).pipe(Effect.map((l) => (cache.set(key, l.series), l.series)))
  })

/**
 * Re-runs `s` on its own warm-up and dates (as the executor does: the result depends on the
 * scenario only, not on the slice it shared) and records every step and fill.
 */
export const replayScenario = (s: Scenario, opts: { dataRoot: string; baseDir: string; cache: SliceCache }) =>
  Effect.gen(function* () {
    const def = yield* Effect.promise(() => resolveStrategy(s.strategy, opts.baseDir))
    if (!def.ok) return yield* Effect.fail(new Error(def.reason))
    const check = checkRequirements(def.def, s)
    if (!check.ok) return yield* Effect.fail(new Error(check.reason))
    const root = s.data_root ?? opts.dataRoot
    const series = yield* loadSeries(root, s.universe, s, check.warmupBars, opts.cache)
    const benchmark = s.benchmark !== undefined ? (yield* loadSeries(root, [s.benchmark], s, check.warmupBars, opts.cache))[0] : undefined
    const n = series.length
    let ts = new Float64Array(1024)
    let nav = new Float64Array(1024)
    let length = 0
    const fills: Fill[] = []
    const previous = new Float64Array(n)
    let commissionPaid = 0
    const broker = new Broker(s.costs)
    const t0 = performance.now()
    const result = runBacktest(
      {
        strategy: def.def,
        params: check.params,
        startCapital: s.start_capital,
        costs: s.costs,
        seed: scenarioSeed(s.batch_seed, s.scenario_id),
        startMs: dayStartMs(s.start_date),
        endMs: dayEndMs(s.end_date),
        warmupBars: check.warmupBars,
        ...(benchmark !== undefined ? { benchmark } : {}),
        maxEquityPoints: 2
      },
      series,
      {
        onStep: (t, v, pf) => {
          if (length === ts.length) {
            const grownTs = new Float64Array(length * 2)
            const grownNav = new Float64Array(length * 2)
            grownTs.set(ts)
            grownNav.set(nav)
            ts = grownTs
            nav = grownNav
          }
          ts[length] = t
          nav[length] = v
          length++
          for (let k = 0; k < n; k++) {
            const units = pf.position[k] - previous[k]
            if (units === 0) continue
            previous[k] = pf.position[k]
            const x = series[k]
            const i = lowerBound(x.ts, t)
            const open = x.open?.[i]
            const reference = open !== undefined && open > 0 ? open : x.close[i]
            broker.quote(units, reference, x.volume?.[i] ?? Number.NaN)
            fills.push({
              ts: t,
              symbol: x.symbol,
              side: units > 0 ? "buy" : "sell",
              quantity: Math.abs(units),
              price: broker.fillPrice,
              reference_price: reference,
              commission: broker.commission,
              slippage: (broker.fillPrice - reference) * units
            })
          }
          commissionPaid = pf.commissionPaid
        }
      }
    )
    return {
      metrics: result.metrics,
      equity: { ts, nav, length },
      fills,
      warnings: result.warnings,
      execMs: performance.now() - t0,
      warmupBars: check.warmupBars,
      commissionPaid
    } satisfies RunDetail
  })
