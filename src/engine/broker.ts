/**
 * The broker turns an order (signed quantity, executed at a reference price: the open of the bar
 * after the decision, else its close) into a fill price and a commission.
 *
 * Cost model, per unit traded, all adverse to the trader (buys pay more, sells receive less):
 * - slippage:   price × slippage_bps / 1e4
 * - half-spread: price × spread_w / 1e4 — spread_w is the half-spread in basis points of price,
 *                whether or not the bar has high and low. (It used to be a fraction of the bar's
 *                range when it had them: one setting then meant ~46× more cost on SPX daily bars
 *                than on bars without range. A range-based estimate also charges more on volatile
 *                days, which is a model choice, not a unit; quoted spreads are in bps of price.)
 * - impact:     price × impact_w × sqrt(|units| / volume) — square-root impact as a fraction of
 *               price (impact_w is dimensionless: 0.1 costs 10 bps when an order is 1% of the
 *               execution bar's volume); skipped without volume; capped at 100% of the price
 * The per-unit total is capped at the price itself, so a sell can never fill below zero.
 * Commission: commission_bps / 1e4 of the traded value at the fill price, paid in cash.
 */
import type { Costs } from "../schemas/common.js"

export class Broker {
  private readonly slippageFraction: number
  private readonly halfSpreadBps: number
  private readonly impactWeight: number
  private readonly commissionFraction: number
  /** results of the last `quote` call (fields, not an object, so the hot path allocates nothing) */
  fillPrice = 0
  commission = 0

  constructor(costs: Costs) {
    this.slippageFraction = costs.slippage_bps / 1e4
    this.halfSpreadBps = costs.spread_w
    this.impactWeight = costs.impact_w
    this.commissionFraction = costs.commission_bps / 1e4
  }

  /**
   * Prices an order of `quantity` units (negative = sell) at `price`. `volume` is the execution
   * bar's, NaN when the series has none.
   */
  quote(quantity: number, price: number, volume: number): void {
    const units = quantity < 0 ? -quantity : quantity
    let perUnit = price * this.slippageFraction
    if (this.halfSpreadBps !== 0) perUnit += (price * this.halfSpreadBps) / 1e4
    if (this.impactWeight !== 0 && volume > 0) {
      const impact = this.impactWeight * Math.sqrt(units / volume)
      perUnit += price * (impact < 1 ? impact : 1)
    }
    if (perUnit > price) perUnit = price
    const fill = quantity > 0 ? price + perUnit : price - perUnit
    this.fillPrice = fill
    this.commission = units * fill * this.commissionFraction
  }
}
