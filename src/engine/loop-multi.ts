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
            exec.execute(k, i, pending[k])
            target[k] = exec.ruined ? 0 : pending[k]
            pending[k] = Number.NaN
          }
          pf.mark[k] = price
          hasMark[k] = 1
          const wanted = instance.onBar(k, i)
          if (wanted !== target[k] && wanted === wanted) {
            const next = exec.clampTarget(wanted)
            if (next !== target[k]) pending[k] = next
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
      const nav = pf.nav()
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

