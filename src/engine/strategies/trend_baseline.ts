/**
 * trend_baseline: exponential moving average cross. Long while EMA(fast) > EMA(slow); otherwise
 * flat, or short when `allow_short`. With several symbols each gets an equal share of NAV.
 *
 * The EMAs are updated incrementally inside onBar (two multiply-adds per row) rather than
 * precomputed in create(): measured on 10M ticks, precomputing two Float64Arrays costs more in
 * allocation and memory traffic than it saves in the loop.
 */
import { z } from "zod"
import type { Freq } from "../../schemas/common.js"
import type { StrategyDefinition, StrategyInstance, StrategySeries } from "../types.js"

const TrendParams = z.object({
  fast: z.number().int().min(2).max(200).default(10),
  slow: z.number().int().min(3).max(1000).default(30),
  allow_short: z.boolean().default(false)
})
export type TrendParams = z.infer<typeof TrendParams>

/**
 * The single-symbol instance: the hot path of tick backtests, kept as small as possible. All
 * doubles live in one Float64Array: V8 boxes double-valued object fields, and the extra
 * indirection per row doubled the cost of the whole engine loop (measured: 21 → 11 ns/tick).
 */
class TrendSingle implements StrategyInstance {
  /** [fast EMA, slow EMA, fast alpha, slow alpha] */
  private readonly state = new Float64Array(4)
  constructor(
    private readonly close: ArrayLike<number>,
    fastAlpha: number,
    slowAlpha: number,
    /** target when not long: 0 (flat) or -1 (short); a small integer, so not boxed */
    private readonly otherwise: number
  ) {
    // seeded with the first value, as indicators.Ema
    const seed = close.length > 0 ? close[0] : 0
    this.state[0] = seed
    this.state[1] = seed
    this.state[2] = fastAlpha
    this.state[3] = slowAlpha
  }
  /** continue from these EMA values (after some rows were seen elsewhere) */
  resume(fast: number, slow: number): void {
    this.state[0] = fast
    this.state[1] = slow
  }
  onBar(_k: number, i: number): number {
    const state = this.state
    const price = this.close[i]
    const fast = state[0] + state[2] * (price - state[0])
    const slow = state[1] + state[3] * (price - state[1])
    state[0] = fast
    state[1] = slow
    return fast > slow ? 1 : this.otherwise
  }
}

/**
 * EMA series of small close arrays, cached per (close array, period) once a period is asked for
 * a second time: a parameter sweep runs thousands of scenarios over one series, and reading a
 * precomputed EMA costs a fraction of updating one (each update waits for the previous one) when
 * many runs share it. A period asked for once (in a fast × slow sweep, each fast period of each
 * warm-up window) runs incrementally (TrendSingle) instead: caching it cost a 44 KB array per
 * daily scenario that nothing read again in that sweep (~450 MB per executor for a 10,000-run
 * sweep, and the major collections that much new memory brings). Asked again (the same sweep run
 * again on the same slices), it is computed and kept. The values are computed exactly as
 * TrendSingle computes them, row by row from close[0], so results are bit-identical either way
 * (test: the same run first, second and third time). Long series (ticks) are never cached: there
 * the incremental update wins (see the file comment). The memo is keyed by the close array
 * itself (a WeakMap: it lives exactly as long as the series does) and holds at most
 * EMA_ROWS_PER_SERIES doubles per series (32 MB; then that series' periods start over), so it
 * is bounded without any counter.
 */
export const EMA_CACHE_MAX_ROWS = 100_000
const EMA_ROWS_PER_SERIES = 4_000_000
interface EmaMemo {
  readonly emas: Map<number, Float64Array>
  /** periods asked for once, not computed */
  readonly askedOnce: Set<number>
}
const emaCache = new WeakMap<ArrayLike<number>, EmaMemo>()
const NO_ROWS = new Float64Array(0)

/** The cached EMA of `close` for `period`, computed on its second request; undefined on its first. */
const reusedEma = (close: ArrayLike<number>, period: number): Float64Array | undefined => {
  let memo = emaCache.get(close)
  const cached = memo?.emas.get(period)
  if (cached !== undefined) return cached
  const n = close.length
  if (memo === undefined || (memo.emas.size + 1) * n > EMA_ROWS_PER_SERIES) {
    memo = { emas: new Map(), askedOnce: memo?.askedOnce ?? new Set() }
    emaCache.set(close, memo)
  }
  if (!memo.askedOnce.has(period)) {
    memo.askedOnce.add(period)
    return undefined
  }
  const alpha = 2 / (period + 1)
  const ema = new Float64Array(n)
  let value = n > 0 ? close[0] : 0
  for (let i = 0; i < n; i++) {
    value = value + alpha * (close[i] - value)
    ema[i] = value
  }
  memo.emas.set(period, ema)
  return ema
}

/**
 * TrendSingle over cached EMAs. Valid while rows come in order from 0 (as the engine calls
 * onBar); on any other call it continues as a TrendSingle from the state after the rows seen so
 * far, so it is equivalent to TrendSingle for every call sequence.
 */
class TrendCached implements StrategyInstance {
  /** the row expected next; `length` once detoured to `incremental` */
  private next = 0
  private incremental: TrendSingle | undefined
  private readonly length: number
  constructor(
    private readonly close: ArrayLike<number>,
    private readonly fastEma: Float64Array,
    private readonly slowEma: Float64Array,
    private readonly fastAlpha: number,
    private readonly slowAlpha: number,
    private readonly otherwise: number
  ) {
    this.length = close.length
  }
  onBar(k: number, i: number): number {
    if (i === this.next && i < this.length) {
      this.next = i + 1
      return this.fastEma[i] > this.slowEma[i] ? 1 : this.otherwise
    }
    return this.detour(k, i)
  }
  private detour(k: number, i: number): number {
    if (this.incremental === undefined) {
      const seen = this.next
      this.incremental = new TrendSingle(this.close, this.fastAlpha, this.slowAlpha, this.otherwise)
      if (seen > 0) this.incremental.resume(this.fastEma[seen - 1], this.slowEma[seen - 1])
      this.next = this.length
    }
    return this.incremental.onBar(k, i)
  }
}

class TrendMulti implements StrategyInstance {
  /** per symbol; NaN until its first row, which seeds both EMAs (as TrendSingle's close[0]) */
  private readonly fastEma: Float64Array
  private readonly slowEma: Float64Array
  private readonly closes: ReadonlyArray<ArrayLike<number>>
  private readonly weight: number
  constructor(
    series: ReadonlyArray<StrategySeries>,
    private readonly fastAlpha: number,
    private readonly slowAlpha: number,
    private readonly allowShort: boolean
  ) {
    this.closes = series.map((s) => s.close)
    this.fastEma = new Float64Array(series.length).fill(Number.NaN)
    this.slowEma = new Float64Array(series.length).fill(Number.NaN)
    this.weight = 1 / series.length
  }
  onBar(k: number, i: number): number {
    const price = this.closes[k][i]
    if (this.fastEma[k] !== this.fastEma[k]) {
      this.fastEma[k] = price
      this.slowEma[k] = price
    }
    const fast = this.fastEma[k] + this.fastAlpha * (price - this.fastEma[k])
    const slow = this.slowEma[k] + this.slowAlpha * (price - this.slowEma[k])
    this.fastEma[k] = fast
    this.slowEma[k] = slow
    return fast > slow ? this.weight : this.allowShort ? -this.weight : 0
  }
}

export const trendBaseline: StrategyDefinition<TrendParams> = {
  name: "trend_baseline",
  description: "EMA cross: long while EMA(fast) > EMA(slow), else flat (or short with allow_short)",
  params: TrendParams,
  validateConfig: (p) =>
    p.fast < p.slow ? [] : [`params.fast (${p.fast}) must be smaller than params.slow (${p.slow})`],
  calculateRequirements: (p, freq: Freq) => ({
    // an EMA forgets its seed to e^-6 (0.25%) after 3 × its span
    warmupBars: 3 * p.slow,
    indicators: [`ema(${p.fast})`, `ema(${p.slow})`],
    intervals: [freq]
  }),
  create: (p, ctx) => {
    const fastAlpha = 2 / (p.fast + 1)
    const slowAlpha = 2 / (p.slow + 1)
    if (ctx.series.length !== 1) return new TrendMulti(ctx.series, fastAlpha, slowAlpha, p.allow_short)
    const close = ctx.series[0].close
    const otherwise = p.allow_short ? -1 : 0
    // Under a history guard no row is visible yet: a TrendCached holding no rows starts its
    // TrendSingle at the first row, seeded from it (a TrendSingle made now would seed from 0).
    if (close.length === 0) return new TrendCached(close, NO_ROWS, NO_ROWS, fastAlpha, slowAlpha, otherwise)
    if (close.length > EMA_CACHE_MAX_ROWS) return new TrendSingle(close, fastAlpha, slowAlpha, otherwise)
    // both asked for (the slow one marks its first request even when the fast one is new)
    const fastEma = reusedEma(close, p.fast)
    const slowEma = reusedEma(close, p.slow)
    return fastEma !== undefined && slowEma !== undefined
      ? new TrendCached(close, fastEma, slowEma, fastAlpha, slowAlpha, otherwise)
      : new TrendSingle(close, fastAlpha, slowAlpha, otherwise)
  }
}
