/**
 * mean_reversion: buy weakness, sell strength, exit at the mean.
 * - mode "bollinger": long when the close falls below the lower band (SMA(window) − num_std × σ),
 *   out when it is back at the middle; short above the upper band when `allow_short`.
 * - mode "rsi": long when RSI(rsi_period) < rsi_oversold, out when RSI ≥ rsi_exit; short when
 *   RSI > rsi_overbought (with `allow_short`), out when RSI ≤ rsi_exit.
 * With several symbols each gets an equal share of NAV.
 */
import { z } from "zod"
import type { Freq } from "../../schemas/common.js"
import { Bollinger, Rsi } from "../indicators.js"
import type { StrategyDefinition, StrategyInstance, StrategyContext } from "../types.js"

const MeanReversionParams = z.object({
  mode: z.enum(["bollinger", "rsi"]).default("bollinger"),
  window: z.number().int().min(2).max(1000).default(20),
  num_std: z.number().min(0.1).max(10).default(2),
  rsi_period: z.number().int().min(2).max(500).default(14),
  rsi_oversold: z.number().min(1).max(99).default(30),
  rsi_overbought: z.number().min(1).max(99).default(70),
  rsi_exit: z.number().min(1).max(99).default(50),
  allow_short: z.boolean().default(false)
})
export type MeanReversionParams = z.infer<typeof MeanReversionParams>

class BollingerReversion implements StrategyInstance {
  private readonly bands: Bollinger[]
  private readonly closes: Array<ArrayLike<number>>
  /** -1, 0 or 1 per symbol */
  private readonly side: Int8Array
  private readonly weight: number
  private readonly allowShort: boolean
  constructor(ctx: StrategyContext, p: MeanReversionParams) {
    this.bands = ctx.series.map(() => new Bollinger(p.window, p.num_std))
    this.closes = ctx.series.map((s) => s.close)
    this.side = new Int8Array(ctx.series.length)
    this.weight = 1 / ctx.series.length
    this.allowShort = p.allow_short
  }
  onBar(k: number, i: number): number {
    const price = this.closes[k][i]
    const band = this.bands[k]
    band.update(price)
    if (!band.ready) return 0
    let side = this.side[k]
    if (side === 1 && price >= band.middle) side = 0
    else if (side === -1 && price <= band.middle) side = 0
    if (side === 0) {
      if (price < band.lower) side = 1
      else if (this.allowShort && price > band.upper) side = -1
    }
    this.side[k] = side
    return side * this.weight
  }
}

class RsiReversion implements StrategyInstance {
  private readonly oscillators: Rsi[]
  private readonly closes: Array<ArrayLike<number>>
  private readonly side: Int8Array
  private readonly weight: number
  constructor(
    ctx: StrategyContext,
    private readonly p: MeanReversionParams
  ) {
    this.oscillators = ctx.series.map(() => new Rsi(p.rsi_period))
    this.closes = ctx.series.map((s) => s.close)
    this.side = new Int8Array(ctx.series.length)
    this.weight = 1 / ctx.series.length
  }
  onBar(k: number, i: number): number {
    const oscillator = this.oscillators[k]
    const value = oscillator.update(this.closes[k][i])
    if (!oscillator.ready) return 0
    const p = this.p
    let side = this.side[k]
    if (side === 1 && value >= p.rsi_exit) side = 0
    else if (side === -1 && value <= p.rsi_exit) side = 0
    if (side === 0) {
      if (value < p.rsi_oversold) side = 1
      else if (p.allow_short && value > p.rsi_overbought) side = -1
    }
    this.side[k] = side
    return side * this.weight
  }
}

export const meanReversion: StrategyDefinition<MeanReversionParams> = {
  name: "mean_reversion",
  description: "Bollinger-band or RSI mean reversion: enter at the extremes, exit at the mean",
  params: MeanReversionParams,
  validateConfig: (p) => {
    const errors: string[] = []
    if (p.mode === "rsi") {
      if (!(p.rsi_oversold < p.rsi_exit)) {
        errors.push(`params.rsi_oversold (${p.rsi_oversold}) must be smaller than params.rsi_exit (${p.rsi_exit})`)
      }
      if (!(p.rsi_exit < p.rsi_overbought)) {
        errors.push(`params.rsi_exit (${p.rsi_exit}) must be smaller than params.rsi_overbought (${p.rsi_overbought})`)
      }
    }
    return errors
  },
  calculateRequirements: (p, freq: Freq) =>
    p.mode === "bollinger"
      ? { warmupBars: p.window, indicators: [`bollinger(${p.window}, ${p.num_std})`], intervals: [freq] }
      : {
          // Wilder smoothing (alpha = 1/n) forgets its seed to e^-3 after 3n changes
          warmupBars: 3 * p.rsi_period + 1,
          indicators: [`rsi(${p.rsi_period})`],
          intervals: [freq]
        },
  create: (p, ctx) => (p.mode === "bollinger" ? new BollingerReversion(ctx, p) : new RsiReversion(ctx, p))
}
