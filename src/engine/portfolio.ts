/**
 * Portfolio accounting: cash, positions (units, signed), last marks, average-cost basis,
 * realized P&L and round-trip trade statistics.
 *
 * Invariants (checked by `checkInvariants`, which the tests call at every step):
 *   NAV = cash + Σ position × mark
 *   NAV = startCapital + realized P&L + unrealized P&L − commissions (+ a deficit written off at ruin)
 * The second is an independent ledger (average-cost realized P&L), so together they prove that
 * realized and unrealized P&L flow through equity and no fill leaks or creates money.
 */

/** A closed round trip: from flat (or a sign flip) to flat (or the next flip). */
export interface TradeStats {
  readonly closed: number
  readonly wins: number
  readonly grossProfit: number
  readonly grossLoss: number
}

export class Portfolio {
  cash: number
  readonly position: Float64Array
  readonly mark: Float64Array
  /** average entry price (fill price incl. spread/slippage/impact) of the open position */
  readonly averagePrice: Float64Array
  /** P&L of the open round trip so far: realized part plus the commissions it paid */
  readonly openTradePnl: Float64Array
  realizedPnl = 0
  commissionPaid = 0
  /** losses beyond zero equity written off at ruin (see Execution.ruin) */
  writtenOff = 0
  fills = 0
  closedTrades = 0
  winningTrades = 0
  grossProfit = 0
  grossLoss = 0

  constructor(
    readonly startCapital: number,
    readonly symbolCount: number
  ) {
    this.cash = startCapital
    this.position = new Float64Array(symbolCount)
    this.mark = new Float64Array(symbolCount)
    this.averagePrice = new Float64Array(symbolCount)
    this.openTradePnl = new Float64Array(symbolCount)
  }

  nav(): number {
    let value = this.cash
    for (let k = 0; k < this.symbolCount; k++) {
      const units = this.position[k]
      if (units !== 0) value += units * this.mark[k]
    }
    return value
  }

  unrealizedPnl(): number {
    let pnl = 0
    for (let k = 0; k < this.symbolCount; k++) {
      const units = this.position[k]
      if (units !== 0) pnl += units * (this.mark[k] - this.averagePrice[k])
    }
    return pnl
  }

  /** Books a fill of `quantity` units of symbol k at `price`, paying `commission`. */
  applyFill(k: number, quantity: number, price: number, commission: number): void {
    const before = this.position[k]
    let after = before + quantity
    // a target of exactly zero must leave exactly zero, not 1e-17 of rounding residue
    if (Math.abs(after) <= 1e-12 * Math.abs(before)) {
      quantity = -before
      after = 0
    }
    this.cash -= quantity * price + commission
    this.commissionPaid += commission
    this.fills++

    if (before === 0 || (before > 0) === (quantity > 0)) {
      // opening or adding: new average price, nothing realized
      this.averagePrice[k] = (before * this.averagePrice[k] + quantity * price) / after
      this.openTradePnl[k] -= commission
    } else if (after === 0 || (after > 0) === (before > 0)) {
      // reducing or closing: realize against the average price
      const realized = (price - this.averagePrice[k]) * -quantity
      this.realizedPnl += realized
      this.openTradePnl[k] += realized - commission
      if (after === 0) {
        this.closeTrade(k)
        this.averagePrice[k] = 0
      }
    } else {
      // flip: close the whole position, open the rest on the other side; the commission is
      // split between the two round trips in proportion to the units of each
      const realized = (price - this.averagePrice[k]) * before
      const closingShare = Math.abs(before) / Math.abs(quantity)
      this.realizedPnl += realized
      this.openTradePnl[k] += realized - commission * closingShare
      this.closeTrade(k)
      this.openTradePnl[k] = -commission * (1 - closingShare)
      this.averagePrice[k] = price
    }
    this.position[k] = after
  }

  /** Adds `amount` of cash that is not P&L: the deficit written off when equity is gone. */
  writeOff(amount: number): void {
    this.cash += amount
    this.writtenOff += amount
  }

  private closeTrade(k: number): void {
    const pnl = this.openTradePnl[k]
    this.closedTrades++
    if (pnl > 0) {
      this.winningTrades++
      this.grossProfit += pnl
    } else {
      this.grossLoss -= pnl
    }
    this.openTradePnl[k] = 0
  }

  tradeStats(): TradeStats {
    return {
      closed: this.closedTrades,
      wins: this.winningTrades,
      grossProfit: this.grossProfit,
      grossLoss: this.grossLoss
    }
  }

  /**
   * Throws when the books do not balance within `relativeTolerance` of NAV. `reportedNav` is the
   * NAV the engine's loop computed on its own (it keeps cash and positions in locals).
   */
  checkInvariants(reportedNav: number, relativeTolerance = 1e-6): void {
    const nav = this.nav()
    const ledger = this.startCapital + this.realizedPnl + this.unrealizedPnl() - this.commissionPaid + this.writtenOff
    const scale = Math.max(Math.abs(nav), 1e-9 * this.startCapital)
    if (!(Math.abs(reportedNav - nav) <= relativeTolerance * scale)) {
      throw new Error(`NAV invariant broken: engine NAV ${reportedNav} != cash + Σ position × mark ${nav}`)
    }
    if (!(Math.abs(ledger - nav) <= relativeTolerance * scale)) {
      throw new Error(`P&L invariant broken: start + realized + unrealized − commissions ${ledger} != NAV ${nav}`)
    }
  }
}
