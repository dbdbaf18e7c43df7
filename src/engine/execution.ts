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

  /**
   * Trades symbol k to `target` × NAV at row i's reference price (open, else close). NAV is
   * `sizingNav` when given (the multi-symbol loop's NAV at the step's opens, so no symbol's order
   * depends on another's fill or same-bar close), else cash + positions at the current marks
   * with symbol k marked at its reference price (single symbol: NAV at the open being traded).
   */
  execute(k: number, i: number, target: number, sizingNav = Number.NaN): void {
    const s = this.series[k]
    const pf = this.portfolio
    let price = s.close[i]
    if (s.open !== undefined) {
      const open = s.open[i]
      if (open > 0) price = open
    }
    pf.mark[k] = price
    const nav = sizingNav === sizingNav ? sizingNav : pf.nav()
    if (!(nav > 0)) {
      this.ruin(s.ts[i])
      return
    }
    const quantity = (target * nav) / price - pf.position[k]
    if (target !== 0 && Math.abs(quantity * price) <= 1e-9 * Math.abs(nav)) return
    if (quantity === 0) return
    const volume = s.volume !== undefined ? s.volume[i] : Number.NaN
    this.broker.quote(quantity, price, volume)
    pf.applyFill(k, quantity, this.broker.fillPrice, this.broker.commission)
  }

  /**
   * Equity is gone (NAV at or below zero at `ts`): every position is closed at its current mark,
   * without costs, and a deficit is written off so NAV is exactly zero — an account cannot owe
   * more than it holds here, so total return never goes below −100%. Trading stops for good.
   */
  ruin(ts: number): void {
    if (this.ruined) return
    this.ruined = true
    this.ruinedAtTs = ts
    const pf = this.portfolio
    for (let k = 0; k < pf.symbolCount; k++) {
      const units = pf.position[k]
      if (units !== 0) pf.applyFill(k, -units, pf.mark[k], 0)
    }
    if (pf.cash < 0) pf.writeOff(-pf.cash)
  }
}
