/**
 * Engine throughput against its physical ceiling, measured in the same process on the same data.
 *
 * (a) raw loop: the EMA-cross strategy written directly over a Float64Array, with a minimal
 *     position / cash / equity update — what a hand-tuned single-purpose loop can do;
 * (b) tickflow: `runBacktest` with `trend_baseline` and non-zero costs on the same ticks as a
 *     PriceSeries — everything the engine adds (next-row execution, cost model, portfolio
 *     ledger, drawdown, exposure, per-day resampling, equity sampling, metrics);
 * (c) a parameter sweep of 10,000 daily scenarios of 5,000 bars each, in scenarios/s;
 * (d) the cost of the history guard: the same strategy run as a user strategy (its columns grow
 *     row by row, see src/engine/window.ts) against the built-in, on 1,000 sweep scenarios.
 * Each measurement: one warm-up, then the median of 5 runs. The engine validates a series once
 * (positive closes, ascending ts) and caches that per array, so the warm-up run pays for it; the
 * same holds for the other per-series caches a sweep shares (day ends, equity sample rows, and
 * trend_baseline's EMA per period on series of at most 100,000 rows — 10M ticks are not cached).
 * Measured separately: the sweep's very first pass, JIT warm-up and all cache fills included,
 * takes about 1.35x a warm pass.
 *
 * Run: npx tsx bench/engine.ts   (or npm run bench -- engine)
 */
import { getStrategy, mulberry32, runBacktest, validateParams } from "../src/engine/index.js"
import type { EngineScenario, PriceSeries } from "../src/engine/index.js"
import type { Costs } from "../src/schemas/common.js"

const TICKS = 10_000_000
const RUNS = 5
/** SWEEP=n shortens the sweep for quick local runs; the reported goal is for 10,000 */
const SWEEP_SCENARIOS = Number(process.env.SWEEP ?? 10_000)
const SWEEP_BARS = 5_000
const FAST = 20
const SLOW = 100
const START_CAPITAL = 1_000_000
// no impact: against single-tick volumes a full-NAV order would pay absurd square-root impact
const COSTS: Costs = { commission_bps: 1, spread_w: 1, impact_w: 0, slippage_bps: 0.5 }

/** Seeded random walk: log-price steps of ~1 bp, timestamps 0–100 ms apart (fractional ms). */
const makeTicks = (n: number, seed: number): PriceSeries => {
  const random = mulberry32(seed)
  const ts = new Float64Array(n)
  const close = new Float64Array(n)
  const volume = new Float64Array(n)
  let t = Date.UTC(2024, 0, 2, 14, 30)
  let logPrice = Math.log(100)
  for (let i = 0; i < n; i++) {
    t += random() * 100
    logPrice += (random() - 0.5) * 2e-4
    ts[i] = t
    close[i] = Math.exp(logPrice)
    volume[i] = 1 + Math.floor(random() * 500)
  }
  return { symbol: "SYNTH", freq: "tick", ts, close, volume, startIndex: 0 }
}

const makeDaily = (n: number, seed: number): PriceSeries => {
  const random = mulberry32(seed)
  const ts = new Float64Array(n)
  const open = new Float64Array(n)
  const high = new Float64Array(n)
  const low = new Float64Array(n)
  const close = new Float64Array(n)
  const volume = new Float64Array(n)
  let price = 100
  for (let i = 0; i < n; i++) {
    ts[i] = Date.UTC(2000, 0, 3) + i * 86_400_000
    const o = price
    price *= Math.exp((random() - 0.5) * 0.04)
    open[i] = o
    close[i] = price
    high[i] = Math.max(o, price) * (1 + random() * 0.01)
    low[i] = Math.min(o, price) * (1 - random() * 0.01)
    volume[i] = 1e6 * (0.5 + random())
  }
  return { symbol: "DAILY", freq: "1d", ts, open, high, low, close, volume, startIndex: 300 }
}

/** The physical ceiling: the same strategy hand-written over the array. */
const rawEmaCross = (close: Float64Array, fast: number, slow: number, costFraction: number): number => {
  const fastAlpha = 2 / (fast + 1)
  const slowAlpha = 2 / (slow + 1)
  let fastEma = close[0]
  let slowEma = close[0]
  let cash = START_CAPITAL
  let position = 0
  let held = 0
  let equity = cash
  let peak = cash
  for (let i = 0; i < close.length; i++) {
    const price = close[i]
    fastEma += fastAlpha * (price - fastEma)
    slowEma += slowAlpha * (price - slowEma)
    const wanted = fastEma > slowEma ? 1 : 0
    if (wanted !== held) {
      const units = (wanted * (cash + position * price)) / price
      const traded = units - position
      cash -= traded * price + Math.abs(traded) * price * costFraction
      position = units
      held = wanted
    }
    equity = cash + position * price
    if (equity > peak) peak = equity
  }
  return equity + peak * 0
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const measure = (label: string, fn: () => unknown): number => {
  fn() // warm-up: JIT and caches
  const times: number[] = []
  for (let r = 0; r < RUNS; r++) {
    ;(globalThis as { gc?: () => void }).gc?.()
    const started = performance.now()
    fn()
    times.push(performance.now() - started)
  }
  const ms = median(times)
  console.log(`${label}: median ${ms.toFixed(1)} ms of ${times.map((t) => t.toFixed(0)).join(", ")}`)
  return ms / 1000
}

const fmt = (x: number): string => x.toPrecision(2).replace("e+", "e")

const main = (): void => {
  const trend = getStrategy("trend_baseline")
  if (trend === undefined) throw new Error("trend_baseline missing")
  console.log(`generating ${TICKS.toLocaleString("en")} ticks...`)
  const ticks = makeTicks(TICKS, 42)

  let sink = 0
  const rawSeconds = measure("(a) raw EMA-cross loop", () => {
    sink += rawEmaCross(ticks.close, FAST, SLOW, 2e-4)
  })
  const tickParams = validateParams(trend, { fast: FAST, slow: SLOW }, { strict: true }).params
  const tickScenario: EngineScenario = {
    strategy: trend,
    params: tickParams,
    startCapital: START_CAPITAL,
    costs: COSTS,
    seed: 1,
    startMs: ticks.ts[0],
    endMs: ticks.ts[TICKS - 1] + 1,
    progressEvery: 1_000_000,
    onProgress: () => undefined
  }
  let fills = 0
  const engineSeconds = measure("(b) tickflow runBacktest(trend_baseline, costs)", () => {
    const result = runBacktest(tickScenario, [ticks])
    fills = result.fills
    sink += result.metrics.final_equity
  })
  const rawRate = TICKS / rawSeconds
  const engineRate = TICKS / engineSeconds
  console.log(`raw loop ${fmt(rawRate)} ticks/s, engine ${fmt(engineRate)} ticks/s (${fills.toLocaleString("en")} fills per run)`)

  // (c) a daily sweep: 10,000 parameter sets over one 5,000-bar series, as an executor runs a group
  const daily = makeDaily(SWEEP_BARS, 7)
  const sweep: EngineScenario[] = []
  for (let j = 0; j < SWEEP_SCENARIOS; j++) {
    const fast = 2 + (j % 100)
    const slow = fast + 1 + Math.floor(j / 100) * 2
    const params = validateParams(trend, { fast, slow, allow_short: j % 2 === 1 }, { strict: true })
    if (!params.ok) throw new Error(params.errors.join("; "))
    sweep.push({
      strategy: trend,
      params: params.params,
      startCapital: START_CAPITAL,
      costs: COSTS,
      seed: j,
      startMs: daily.ts[daily.startIndex],
      endMs: daily.ts[SWEEP_BARS - 1] + 1
    })
  }
  const sweepSeconds = measure(`(c) ${SWEEP_SCENARIOS.toLocaleString("en")} daily scenarios x ${SWEEP_BARS} bars`, () => {
    for (const scn of sweep) sink += runBacktest(scn, [daily]).metrics.final_equity
  })
  const scenariosPerSecond = SWEEP_SCENARIOS / sweepSeconds
  console.log(`sweep ${fmt(scenariosPerSecond)} scenarios/s (${((sweepSeconds / SWEEP_SCENARIOS) * 1e6).toFixed(1)} µs each)`)

  // (d) the history guard: the same strategy as a user module (not a built-in, so its columns grow
  // row by row and reading ahead gives undefined) against the built-in, on 1,000 sweep scenarios
  const userTrend = { ...trend }
  const guardedCount = Math.min(1_000, sweep.length)
  const builtInSeconds = measure(`(d) ${guardedCount} daily scenarios, built-in trend_baseline`, () => {
    for (let j = 0; j < guardedCount; j++) sink += runBacktest(sweep[j], [daily]).metrics.final_equity
  })
  const guardedSeconds = measure(`(d) ${guardedCount} daily scenarios, the same as a user strategy (guarded history)`, () => {
    for (let j = 0; j < guardedCount; j++) sink += runBacktest({ ...sweep[j], strategy: userTrend }, [daily]).metrics.final_equity
  })
  console.log(`guarded user strategy: ${((guardedSeconds / guardedCount) * 1e6).toFixed(1)} µs per scenario vs ${((builtInSeconds / guardedCount) * 1e6).toFixed(1)} µs built-in`)
  if (!Number.isFinite(sink)) console.log("(sink)", sink)

  console.log(`RESULT engine_vs_raw_loop ${(engineRate / rawRate).toFixed(2)} goal 0.25`)
  console.log(`RESULT engine_ticks_per_s ${fmt(engineRate)} goal 7.5e7`)
  console.log(`RESULT engine_daily_scenarios_per_s ${Math.round(scenariosPerSecond)} goal 20000`)
  // a user strategy pays for its guarded history (a copy per row and column) and its own EMAs
  console.log(`RESULT engine_guarded_user_vs_builtin ${(guardedSeconds / builtInSeconds).toFixed(2)} goal 5`)
}

main()
