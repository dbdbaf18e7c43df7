/**
 * The broker turns an order (signed quantity, executed at a reference price: the open of the bar
 * after the decision, else its close) into a fill price and a commission.
 *
 * Cost model, per unit traded, all adverse to the trader (buys pay more, sells receive less):
 * - slippage:   price × slippage_bps / 1e4
 * - half-spread: spread_w × (high − low) / 2 when the bar has high and low, else price × spread_w / 1e4
 * - impact:     price × impact_w × sqrt(|order value| / (volume × price)) — square-root impact as
 *               a fraction of price; skipped without volume; capped at 100% of the price
 * The per-unit total is capped at the price itself, so a sell can never fill below zero.
 * Commission: commission_bps / 1e4 of the traded value at the fill price, paid in cash.
 */
import type { Costs } from "../schemas/common.js"

export class Broker {
  private readonly slippageFraction: number
  private readonly spreadWeight: number
  private readonly impactWeight: number
  private readonly commissionFraction: number
  /** results of the last `quote` call (fields, not an object, so the hot path allocates nothing) */
  fillPrice = 0
  commission = 0

  constructor(costs: Costs) {
    this.slippageFraction = costs.slippage_bps / 1e4
    this.spreadWeight = costs.spread_w
    this.impactWeight = costs.impact_w
    this.commissionFraction = costs.commission_bps / 1e4
  }

  /**
   * Prices an order of `quantity` units (negative = sell) at `price`. `high`, `low` and `volume`
   * are those of the execution bar, NaN when the series has no such column.
   */
  quote(quantity: number, price: number, high: number, low: number, volume: number): void {
    const units = quantity < 0 ? -quantity : quantity
    let perUnit = price * this.slippageFraction
    if (this.spreadWeight !== 0) {
      perUnit += high === high && low === low ? (this.spreadWeight * (high - low)) / 2 : (price * this.spreadWeight) / 1e4
    }
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
