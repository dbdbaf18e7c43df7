/**
 * The multi-symbol loop: a k-way merge of the symbols' rows by timestamp (ties by symbol index);
 * one "step" is one distinct timestamp, after which NAV is marked, missing marks are counted and
 * equity is recorded.
 */
import { badRow, DAY_MS, iso, MAX_CARRY_TRADING_DAYS, type LoopOutcome, type RunSetup } from "./loop-common.js"
import { PeriodRecorder, sampleSteps } from "./recorders.js"

export const runMultiSymbol = (setup: RunSetup): LoopOutcome => {
  const { scn, series, portfolio: pf, execution: exec, instance, debug, firstTrade, endRow } = setup
  const symbolCount = series.length
  const isTick = setup.freq === "tick"
  const cursor = new Int32Array(symbolCount)
  const target = new Float64Array(symbolCount)
  const pending = new Float64Array(symbolCount).fill(Number.NaN)
  const prevTs = new Float64Array(symbolCount).fill(Number.NEGATIVE_INFINITY)
  const hasMark = new Uint8Array(symbolCount)
  /** step number and trading-day number of each symbol's latest row */
  const lastRowStep = new Float64Array(symbolCount).fill(-1)
  const lastRowDay = new Float64Array(symbolCount).fill(Number.NaN)
  const missingBySymbol = new Float64Array(symbolCount)
  const staleWarned = new Uint8Array(symbolCount)
  const warnings: string[] = []
  const periods = new PeriodRecorder()
  const allTs: number[] = []
  const allNav: number[] = []
  const onStep = debug?.onStep
  const onProgress = scn.onProgress
  const guard = setup.guard
  const opens = series.map((s) => s.open)

  /** cash + positions marked at their open at `stepTs` where they have one, else their mark */
  const navAtOpen = (stepTs: number): number => {
    let value = pf.cash
    for (let k = 0; k < symbolCount; k++) {
      const units = pf.position[k]
      if (units === 0) continue
      let price = pf.mark[k]
      const open = opens[k]
      const c = cursor[k]
      if (open !== undefined && c < endRow[k] && series[k].ts[c] === stepTs && open[c] > 0) price = open[c]
      value += units * price
    }
    return value
  }

  // trading starts at the earliest first trading row of any symbol
  let tradingStartTs = Number.POSITIVE_INFINITY
  let totalRows = 0
  for (let k = 0; k < symbolCount; k++) {
    totalRows += endRow[k]
    if (firstTrade[k] < endRow[k]) tradingStartTs = Math.min(tradingStartTs, series[k].ts[firstTrade[k]])
  }

  let rows = 0
  let nextProgress = setup.progressEvery
  let stepNumber = 0
  let tradingSteps = 0
  let tradingDay = -1
  let currentDayKey = Number.NaN
  let missingMarks = 0
  let peak = scn.startCapital
  let maxDrawdown = 0
  let exposedSteps = 0
  let prevNav = scn.startCapital
  let dayKey = Number.NaN

  for (;;) {
    let stepTs = Number.POSITIVE_INFINITY
    for (let k = 0; k < symbolCount; k++) {
      const c = cursor[k]
      if (c < endRow[k]) {
        const t = series[k].ts[c]
        if (t < stepTs) stepTs = t
        else if (!(t === t)) throw badRow(series[k], c, prevTs[k])
      }
    }
    if (stepTs === Number.POSITIVE_INFINITY) break
    if (guard !== undefined) {
      // a user strategy sees every symbol's rows at this timestamp, whatever the symbol order
      for (let k = 0; k < symbolCount; k++) {
        const ts = series[k].ts
        let j = cursor[k]
        while (j < endRow[k] && ts[j] === stepTs) j++
        guard.reveal(k, j)
      }
    }
    // Orders of this step are all sized from one NAV known at the open: positions as they were
    // after the previous step, each marked at its open of this step if it has one, else at its
    // last close. Never from a fill or a same-bar close of another symbol, so the result does
    // not depend on the order of the universe (apart from the rounding of summing costs).
    let sizingNav = Number.NaN
    for (let k = 0; k < symbolCount; k++) {
      if (pending[k] === pending[k] && cursor[k] < endRow[k] && series[k].ts[cursor[k]] === stepTs) {
        sizingNav = navAtOpen(stepTs)
        break
      }
    }
    const stepDayKey = Math.floor(stepTs / DAY_MS)
    if (stepDayKey !== currentDayKey) {
      currentDayKey = stepDayKey
      tradingDay++
    }
    for (let k = 0; k < symbolCount; k++) {
      const s = series[k]
      const ts = s.ts
      const close = s.close
      let i = cursor[k]
      const end = endRow[k]
      while (i < end && ts[i] === stepTs) {
        const price = close[i]
        if (!(price > 0 && ts[i] >= prevTs[k])) throw badRow(s, i, prevTs[k])
        prevTs[k] = ts[i]
        if (i >= firstTrade[k]) {
          if (pending[k] === pending[k]) {
            if (!exec.ruined) exec.execute(k, i, pending[k], sizingNav)
            target[k] = exec.ruined ? 0 : pending[k]
            pending[k] = Number.NaN
          }
          pf.mark[k] = price
          hasMark[k] = 1
          if (!exec.ruined) {
            const wanted = instance.onBar(k, i)
            if (wanted !== target[k] && wanted === wanted) {
              const next = exec.clampTarget(wanted)
              if (next !== target[k]) pending[k] = next
            }
          }
        } else {
          pf.mark[k] = price
          hasMark[k] = 1
          instance.onBar(k, i)
        }
        i++
        rows++
      }
      // rows can also sort before the step when a series is out of order: caught above via prevTs
      if (i < end && ts[i] < stepTs) throw badRow(s, i, prevTs[k])
      if (i !== cursor[k]) {
        lastRowStep[k] = stepNumber
        lastRowDay[k] = tradingDay
      }
      cursor[k] = i
    }
    if (stepTs >= tradingStartTs) {
      // count missing marks: bars must be at this very timestamp, ticks on this trading day
      for (let k = 0; k < symbolCount; k++) {
        const fresh = isTick ? lastRowDay[k] === tradingDay : lastRowStep[k] === stepNumber
        if (fresh) continue
        missingMarks++
        missingBySymbol[k]++
        if (
          hasMark[k] === 1 &&
          staleWarned[k] === 0 &&
          pf.position[k] !== 0 &&
          tradingDay - lastRowDay[k] > MAX_CARRY_TRADING_DAYS
        ) {
          staleWarned[k] = 1
          warnings.push(
            `${series[k].symbol}: no price for more than ${MAX_CARRY_TRADING_DAYS} trading days before ${iso(stepTs)}; its position is valued at the last price`
          )
        }
      }
      let nav = pf.nav()
      if (!(nav > 0) && !exec.ruined) {
        // equity is gone at this close: close out, stop trading (the strategy is not asked again)
        exec.ruin(stepTs)
        nav = pf.nav()
        maxDrawdown = 1
      }
      if (nav > peak) peak = nav
      else if (peak > 0 && 1 - nav / peak > maxDrawdown) maxDrawdown = 1 - nav / peak
      for (let k = 0; k < symbolCount; k++) {
        if (pf.position[k] !== 0) {
          exposedSteps++
          break
        }
      }
      if (tradingSteps > 0 && stepDayKey !== dayKey) periods.push(dayKey, prevNav)
      dayKey = stepDayKey
      allTs.push(stepTs)
      allNav.push(nav)
      if (onStep !== undefined) onStep(stepTs, nav, pf)
      prevNav = nav
      tradingSteps++
    }
    stepNumber++
    if (rows >= nextProgress) {
      if (onProgress !== undefined) onProgress(rows, totalRows)
      nextProgress = (Math.floor(rows / setup.progressEvery) + 1) * setup.progressEvery
    }
  }
  if (onProgress !== undefined && rows % setup.progressEvery !== 0) onProgress(rows, totalRows)
  if (tradingSteps > 0) periods.push(dayKey, prevNav)

  const equityTs: number[] = []
  const equityNav: number[] = []
  for (const step of sampleSteps(tradingSteps, setup.maxEquityPoints)) {
    if (tradingSteps === 0) break
    equityTs.push(allTs[step])
    equityNav.push(allNav[step])
  }
  return {
    rows,
    steps: tradingSteps,
    exposedSteps,
    maxDrawdown,
    finalNav: prevNav,
    firstTs: tradingSteps > 0 ? allTs[0] : Number.NaN,
    lastTs: tradingSteps > 0 ? allTs[tradingSteps - 1] : Number.NaN,
    periods,
    equityTs,
    equityNav,
    missingMarks,
    missingBySymbol,
    warnings
  }
}

