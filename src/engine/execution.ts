/**
 * Order execution: turns a strategy's target (fraction of NAV) into a fill through the broker's
 * cost model and books it in the portfolio. The rare path of the loops, kept out of them.
 */
import type { Broker } from "./broker.js"
import type { Portfolio } from "./portfolio.js"
import type { PriceSeries } from "./types.js"

/** Executes orders against the portfolio; the rare path of the loops, kept out of them. */
export class Execution {
  ruined = false
  ruinedAtTs = Number.NaN
  clampedTargets = 0
  constructor(
    private readonly series: ReadonlyArray<PriceSeries>,
    private readonly portfolio: Portfolio,
    private readonly broker: Broker
  ) {}

  /** A strategy's wish as an executable target: within [-1, 1], and 0 once equity is gone. */
  clampTarget(wanted: number): number {
    if (this.ruined) return 0
    if (wanted > 1) {
      this.clampedTargets++
      return 1
    }
    if (wanted < -1) {
      this.clampedTargets++
      return -1
    }
    return wanted
  }

  /** Trades symbol k to `target` × NAV at row i's reference price (open, else close). */
  execute(k: number, i: number, target: number): void {
    const s = this.series[k]
    const pf = this.portfolio
    let price = s.close[i]
    if (s.open !== undefined) {
      const open = s.open[i]
      if (open > 0) price = open
    }
    pf.mark[k] = price
    const nav = pf.nav()
    if (!(nav > 0)) {
      // equity is gone: close out, and no new positions from now on
      if (!this.ruined) {
        this.ruined = true
        this.ruinedAtTs = s.ts[i]
      }
      target = 0
    }
    const quantity = (target * nav) / price - pf.position[k]
    if (target !== 0 && Math.abs(quantity * price) <= 1e-9 * Math.abs(nav)) return
    if (quantity === 0) return
    const high = s.high !== undefined ? s.high[i] : Number.NaN
    const low = s.low !== undefined ? s.low[i] : Number.NaN
    const volume = s.volume !== undefined ? s.volume[i] : Number.NaN
    this.broker.quote(quantity, price, high, low, volume)
    pf.applyFill(k, quantity, this.broker.fillPrice, this.broker.commission)
  }
}

