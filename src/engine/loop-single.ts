/**
 * The single-symbol loop: the hot path of tick backtests and of parameter sweeps. Cash and
 * position live in locals; per row only NAV, drawdown and the strategy are touched.
 */
import type { Execution } from "./execution.js"
import { DAY_MS, lowerBoundInt, type LoopOutcome, type RunSetup } from "./loop-common.js"
import { DayEndRecorder, SegmentRecorder, sampleSteps } from "./recorders.js"
import { equitySampling, seriesIndex, validateRows } from "./series-cache.js"
import type { StrategyInstance } from "./types.js"

/** Slots of the state `scanRows` carries between calls (a typed array: unboxed doubles). */
const SCAN_PEAK = 0
const SCAN_FLOOR = 1
const SCAN_MAX_DRAWDOWN = 2
const SCAN_PENDING = 3
/** 1 when the scan stopped at a row whose NAV is zero or below (the returned row) */
const SCAN_RUIN = 4
const SCAN_STATE_SIZE = 5

/**
 * The hot loop of a single-symbol run, on its own so the optimizer compiles it small: marks NAV,
 * tracks drawdown and asks the strategy, for rows [from, stop) at constant cash and position.
 * Returns the row after the one whose new target must be executed (state[SCAN_PENDING], else
 * NaN), the row where NAV fell to zero or below (state[SCAN_RUIN] = 1), or `stop`.
 */
const scanRows = (
  instance: StrategyInstance,
  exec: Execution,
  close: Float64Array,
  from: number,
  stop: number,
  cash: number,
  position: number,
  target: number,
  state: Float64Array
): number => {
  let peak = state[SCAN_PEAK]
  let floor = state[SCAN_FLOOR]
  let maxDrawdown = state[SCAN_MAX_DRAWDOWN]
  let pending = Number.NaN
  let i = from
  let ruin = 0
  for (; i < stop; i++) {
    const nav = cash + position * close[i]
    if (!(nav > 0)) {
      ruin = 1
      break
    }
    if (nav > peak) {
      peak = nav
      floor = peak * (1 - maxDrawdown)
    } else if (nav < floor) {
      maxDrawdown = 1 - nav / peak
      floor = nav
    }
    const wanted = instance.onBar(0, i)
    if (wanted !== target && wanted === wanted) {
      const next = exec.clampTarget(wanted)
      if (next !== target) {
        pending = next
        i++
        break
      }
    }
  }
  state[SCAN_PEAK] = peak
  state[SCAN_FLOOR] = floor
  state[SCAN_MAX_DRAWDOWN] = maxDrawdown
  state[SCAN_PENDING] = pending
  state[SCAN_RUIN] = ruin
  return i
}

const flushSegments = (recorder: SegmentRecorder | DayEndRecorder, log: Float64Array, count: number): void => {
  // row numbers come back as int32 (a double loop index would make every array access convert it)
  for (let j = 0; j < count; j++) recorder.flush(log[j * 4] | 0, log[j * 4 + 1] | 0, log[j * 4 + 2], log[j * 4 + 3])
}

/**
 * The single-symbol loop: per row only NAV, drawdown and the strategy. Everything rarer —
 * executing an order, day closes, equity samples, exposure — is done per segment between fills
 * (see SegmentRecorder), and progress is reported between chunks of rows.
 */
export const runSingleSymbol = (setup: RunSetup): LoopOutcome => {
  const { scn, portfolio: pf, execution: exec, instance, debug } = setup
  const s = setup.series[0]
  const close = s.close
  const ts = s.ts
  const first = setup.firstTrade[0]
  const end = setup.endRow[0]
  validateRows(s, end)
  const steps = end - first
  const index = seriesIndex(ts, end)
  const scratch = setup.scratch
  let recorder: SegmentRecorder | DayEndRecorder
  if (index.exactDays && steps > 0) {
    const sampling = equitySampling(index, ts, first, steps, setup.maxEquityPoints)
    const dayStop = lowerBoundInt(index.dayEndRows, end - 1, 0, index.dayEndCount)
    const dayCapacity = dayStop - lowerBoundInt(index.dayEndRows, first, 0, dayStop) + 1
    if (scratch.dayCloses.length < dayCapacity) scratch.dayCloses = new Float64Array(Math.max(dayCapacity, scratch.dayCloses.length * 2))
    recorder = new DayEndRecorder(ts, close, end, index.dayEndRows, first, dayStop, sampling.rows, sampling.ts, scratch.dayCloses)
  } else {
    const sampleRows = sampleSteps(steps, setup.maxEquityPoints)
    for (let j = 0; j < sampleRows.length; j++) sampleRows[j] += first
    const dayCapacity = steps > 0 ? Math.min(steps, Math.floor((ts[end - 1] - ts[first]) / DAY_MS) + 2) : 1
    recorder = new SegmentRecorder(ts, close, end, sampleRows, dayCapacity)
  }
  const checking = debug?.onStep !== undefined
  const onStep = debug?.onStep ?? (() => undefined)
  const onProgress = scn.onProgress
  const every = setup.progressEvery

  // warmup: indicators only, targets discarded
  for (let chunkStart = 0; chunkStart < first; ) {
    const chunkEnd = Math.min(first, chunkStart + every)
    for (let i = chunkStart; i < chunkEnd; i++) instance.onBar(0, i)
    chunkStart = chunkEnd
    if (onProgress !== undefined && chunkEnd % every === 0) onProgress(chunkEnd, end)
  }

  let cash = pf.cash
  let position = 0
  let target = 0
  let pending = Number.NaN
  let peak = scn.startCapital
  let maxDrawdown = 0
  let drawdownFloor = peak
  let exposedSteps = 0
  let segmentStart = first
  let nextProgressRow = first - (first % every) + every

  // segments are logged here and recorded after the loop, which keeps the loop small
  let segmentLog = scratch.segmentLog
  let segmentCount = 0
  const scan = new Float64Array(SCAN_STATE_SIZE)
  scan[SCAN_PEAK] = peak
  scan[SCAN_FLOOR] = drawdownFloor
  scan[SCAN_MAX_DRAWDOWN] = 0
  /** rows [segmentStart, to) had the current cash and position */
  const logSegment = (to: number): void => {
    if (segmentCount * 4 === segmentLog.length) {
      const grown = new Float64Array(segmentLog.length * 2)
      grown.set(segmentLog)
      segmentLog = grown
      scratch.segmentLog = grown
    }
    segmentLog[segmentCount * 4] = segmentStart
    segmentLog[segmentCount * 4 + 1] = to
    segmentLog[segmentCount * 4 + 2] = cash
    segmentLog[segmentCount * 4 + 3] = position
    segmentCount++
  }
  let i = first
  while (i < end) {
    if (pending === pending) {
      // close the segment at the old holdings, then trade at row i's open
      logSegment(i)
      if (position !== 0) exposedSteps += i - segmentStart
      segmentStart = i
      exec.execute(0, i, pending)
      target = pending
      pending = Number.NaN
      cash = pf.cash
      position = pf.position[0]
      if (exec.ruined) break // NAV was gone at the open: everything is closed, trading stops
    }
    const stop = nextProgressRow < end ? nextProgressRow : end
    if (checking) {
      // one row at a time, so the hook sees every step (a ruined row is reported after the loop)
      pf.mark[0] = close[i]
      const nav = cash + position * close[i]
      if (nav > 0) onStep(ts[i], nav, pf)
      i = scanRows(instance, exec, close, i, i + 1, cash, position, target, scan)
    } else {
      i = scanRows(instance, exec, close, i, stop, cash, position, target, scan)
    }
    if (scan[SCAN_RUIN] === 1) {
      // NAV at row i's close is zero or below: close out at that close, stop trading
      logSegment(i)
      if (position !== 0) exposedSteps += i - segmentStart
      segmentStart = i
      pf.mark[0] = close[i]
      exec.ruin(ts[i])
      cash = pf.cash
      position = 0
      break
    }
    const wanted = scan[SCAN_PENDING]
    if (wanted === wanted) pending = wanted
    if (i >= nextProgressRow) {
      if (onProgress !== undefined) onProgress(i, end)
      nextProgressRow += every
    }
  }
  if (exec.ruined) {
    // NAV is zero from the ruin to the end: a 100% drawdown, and the hook sees every step
    scan[SCAN_MAX_DRAWDOWN] = 1
    if (checking) {
      for (let r = segmentStart; r < end; r++) {
        pf.mark[0] = close[r]
        onStep(ts[r], cash + position * close[r], pf)
      }
    }
  }
  peak = scan[SCAN_PEAK]
  maxDrawdown = scan[SCAN_MAX_DRAWDOWN]
  flushSegments(recorder, segmentLog, segmentCount)
  recorder.flush(segmentStart, end, cash, position)
  if (position !== 0) exposedSteps += end - segmentStart
  const finalNav = steps > 0 ? cash + position * close[end - 1] : scn.startCapital
  if (steps > 0) pf.mark[0] = close[end - 1]
  if (onProgress !== undefined && end % every !== 0) onProgress(end, end)
  return {
    rows: end,
    steps,
    exposedSteps,
    maxDrawdown,
    finalNav,
    firstTs: steps > 0 ? ts[first] : Number.NaN,
    lastTs: steps > 0 ? ts[end - 1] : Number.NaN,
    periods: recorder.periods(scn.benchmark !== undefined),
    equityTs: recorder.equityTs,
    equityNav: recorder.equityNav,
    missingMarks: 0,
    missingBySymbol: new Float64Array(1),
    warnings: []
  }
}

