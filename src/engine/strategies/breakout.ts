/**
 * breakout: Donchian channel breakout (the turtle rule). Long when the close breaks above the
 * highest high of the previous `entry_window` bars, out when it falls below the lowest low of the
 * previous `exit_window` bars; the mirror image for shorts with `allow_short`. Bars without
 * high/low (ticks) use the close. With several symbols each gets an equal share of NAV.
 */
import { z } from "zod"
import type { Freq } from "../../schemas/common.js"
import { Donchian } from "../indicators.js"
import type { StrategyDefinition, StrategyInstance, StrategyContext } from "../types.js"

const BreakoutParams = z.object({
  entry_window: z.number().int().min(2).max(1000).default(20),
  exit_window: z.number().int().min(1).max(1000).default(10),
  allow_short: z.boolean().default(false)
})
export type BreakoutParams = z.infer<typeof BreakoutParams>

class DonchianBreakout implements StrategyInstance {
  private readonly entry: Donchian[]
  private readonly exit: Donchian[]
  private readonly closes: Array<ArrayLike<number>>
  private readonly highs: Array<ArrayLike<number>>
  private readonly lows: Array<ArrayLike<number>>
  private readonly side: Int8Array
  private readonly weight: number
  private readonly allowShort: boolean
  constructor(ctx: StrategyContext, p: BreakoutParams) {
    this.entry = ctx.series.map(() => new Donchian(p.entry_window))
    this.exit = ctx.series.map(() => new Donchian(p.exit_window))
    this.closes = ctx.series.map((s) => s.close)
    this.highs = ctx.series.map((s) => s.high ?? s.close)
    this.lows = ctx.series.map((s) => s.low ?? s.close)
    this.side = new Int8Array(ctx.series.length)
    this.weight = 1 / ctx.series.length
    this.allowShort = p.allow_short
  }
  onBar(k: number, i: number): number {
    const price = this.closes[k][i]
    const entry = this.entry[k]
    const exit = this.exit[k]
    let side = this.side[k]
    // compare against the channels of the previous bars, then add this bar
    if (entry.ready) {
      if (side === 1 && exit.ready && price < exit.lower) side = 0
      else if (side === -1 && exit.ready && price > exit.upper) side = 0
      if (side === 0) {
        if (price > entry.upper) side = 1
        else if (this.allowShort && price < entry.lower) side = -1
      }
    }
    entry.update(this.highs[k][i], this.lows[k][i])
    exit.update(this.highs[k][i], this.lows[k][i])
    this.side[k] = side
    return side * this.weight
  }
}

export const breakout: StrategyDefinition<BreakoutParams> = {
  name: "breakout",
  description: "Donchian channel breakout: long above the entry-window high, out below the exit-window low",
  params: BreakoutParams,
  validateConfig: (p) =>
    p.exit_window <= p.entry_window
      ? []
      : [`params.exit_window (${p.exit_window}) must not be larger than params.entry_window (${p.entry_window})`],
  calculateRequirements: (p, freq: Freq) => ({
    warmupBars: p.entry_window + 1,
    indicators: [`donchian(${p.entry_window})`, `donchian(${p.exit_window})`],
    intervals: [freq]
  }),
  create: (p, ctx) => new DonchianBreakout(ctx, p)
}
