/**
 * The backtest loop. One scenario = one strategy instance walking the rows of its universe in
 * timestamp order; a target (fraction of NAV) decided on row i is executed at row i + 1's open
 * (else its close), so no decision ever sees the price it trades at.
 *
 * Two loops share the same rules:
 * - single symbol: a tight loop over the typed arrays with cash and position in locals (this is
 *   the hot path of tick backtests and of parameter sweeps);
 * - several symbols: a k-way merge by timestamp (ties by symbol index); one "step" is one distinct
 *   timestamp, after which NAV is marked, missing marks are counted and equity is recorded.
 *
 * Rows before `startIndex` or before `startMs` are warmup: they feed the strategy (its
 * indicators) but their targets are discarded and they are not in the equity curve. Rows at or
 * after `endMs` are not read at all.
 */
import { FREQ_MS, type Freq } from "../schemas/common.js"
import { Broker } from "./broker.js"
import { EngineRunError } from "./errors.js"
import { computeMetrics, type PeriodSeries } from "./metrics.js"
import { Portfolio } from "./portfolio.js"
import type { BacktestResult, EngineScenario, PriceSeries, StrategyInstance } from "./types.js"

const DAY_MS = 86_400_000
/** a missing mark is carried forward for at most this many trading days */
export const MAX_CARRY_TRADING_DAYS = 5
/** past this share of missing symbol-steps the scenario fails */
export const MAX_MISSING_MARK_SHARE = 0.05
const DEFAULT_PROGRESS_EVERY = 100_000
const DEFAULT_MAX_EQUITY_POINTS = 500

/** Test hook: called after every trading step with the NAV the loop computed. */
export interface BacktestDebug {
  readonly onStep?: (ts: number, nav: number, portfolio: Portfolio) => void
}

/** Growable (day number, NAV at the day's last step) series. */
class PeriodRecorder implements PeriodSeries {
  keys = new Float64Array(256)
  closes = new Float64Array(256)
  length = 0
  push(key: number, close: number): void {
    if (this.length === this.keys.length) {
      const keys = new Float64Array(this.length * 2)
      const closes = new Float64Array(this.length * 2)
      keys.set(this.keys)
      closes.set(this.closes)
      this.keys = keys
      this.closes = closes
    }
    this.keys[this.length] = key
    this.closes[this.length] = close
    this.length++
  }
}

/** Executes orders against the portfolio; the rare path of the loops, kept out of them. */
class Execution {
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

/** First index whose ts is >= bound (ts ascending). */
const lowerBound = (ts: Float64Array, bound: number): number => {
  let lo = 0
  let hi = ts.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (ts[mid] < bound) lo = mid + 1
    else hi = mid
  }
  return lo
}

const iso = (ms: number): string => (Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms))

const badRow = (s: PriceSeries, i: number, prevTs: number): EngineRunError => {
  const t = s.ts[i]
  if (!(t >= prevTs)) {
    return new EngineRunError(
      `${s.symbol}: timestamps not in order at row ${i} (${iso(t)} after ${iso(prevTs)}); sort the series first`
    )
  }
  return new EngineRunError(`${s.symbol}: bad close ${s.close[i]} at row ${i} (${iso(t)}); prices must be positive`)
}

const checkShapes = (scn: EngineScenario, series: ReadonlyArray<PriceSeries>): Freq => {
  if (series.length === 0) throw new EngineRunError("no price series given")
  if (!(scn.startCapital > 0)) throw new EngineRunError(`start capital ${scn.startCapital} must be positive`)
  if (!(scn.endMs > scn.startMs)) throw new EngineRunError(`empty date range: end ${iso(scn.endMs)} is not after start ${iso(scn.startMs)}`)
  const freq = series[0].freq
  for (const s of series) {
    const n = s.ts.length
    if (s.freq !== freq) throw new EngineRunError(`${s.symbol}: frequency ${s.freq} differs from ${series[0].symbol}'s ${freq}`)
    if (s.close.length !== n) throw new EngineRunError(`${s.symbol}: close has ${s.close.length} rows, ts has ${n}`)
    for (const [name, column] of [
      ["open", s.open],
      ["high", s.high],
      ["low", s.low],
      ["volume", s.volume]
    ] as const) {
      if (column !== undefined && column.length !== n) {
        throw new EngineRunError(`${s.symbol}: ${name} has ${column.length} rows, ts has ${n}`)
      }
    }
    if (!Number.isInteger(s.startIndex) || s.startIndex < 0 || s.startIndex > n) {
      throw new EngineRunError(`${s.symbol}: startIndex ${s.startIndex} is outside 0..${n}`)
    }
  }
  return freq
}

/** Evenly spaced step indices 0..steps-1, at most `points` of them, first and last included. */
export const sampleSteps = (steps: number, points: number): Int32Array => {
  const m = Math.max(1, Math.min(points, steps))
  const out = new Int32Array(m)
  if (m === 1) return out
  for (let j = 0; j < m; j++) out[j] = Math.round((j * (steps - 1)) / (m - 1))
  return out
}

/** What either loop hands to the metrics. */
interface LoopOutcome {
  readonly rows: number
  readonly steps: number
  readonly exposedSteps: number
  readonly maxDrawdown: number
  readonly finalNav: number
  readonly firstTs: number
  readonly lastTs: number
  readonly periods: PeriodSeries
  readonly equityTs: number[]
  readonly equityNav: number[]
  readonly missingMarks: number
  readonly missingBySymbol: Float64Array
  readonly warnings: string[]
}

interface RunSetup {
  readonly scn: EngineScenario
  readonly series: ReadonlyArray<PriceSeries>
  readonly freq: Freq
  /** first row that trades, per symbol (rows before it are warmup) */
  readonly firstTrade: Int32Array
  /** first row at or after endMs, per symbol (not read) */
  readonly endRow: Int32Array
  readonly portfolio: Portfolio
  readonly execution: Execution
  readonly instance: StrategyInstance
  readonly progressEvery: number
  readonly maxEquityPoints: number
  readonly debug: BacktestDebug | undefined
  readonly scratch: Scratch
}

/**
 * Checks once per price array that closes are positive and timestamps ascending over the rows a
 * run reads. The result is cached per array (series are immutable by contract), so a sweep of
 * thousands of scenarios over one slice validates it once, and the hot loop needs no checks.
 */
const validatedUpTo = new WeakMap<Float64Array, { readonly ts: Float64Array; readonly rows: number }>()

const validateRows = (s: PriceSeries, rows: number): void => {
  const known = validatedUpTo.get(s.close)
  if (known !== undefined && known.ts === s.ts && known.rows >= rows) return
  const close = s.close
  const ts = s.ts
  let prevTs = Number.NEGATIVE_INFINITY
  for (let i = 0; i < rows; i++) {
    const t = ts[i]
    if (!(close[i] > 0 && t >= prevTs)) throw badRow(s, i, prevTs)
    prevTs = t
  }
  validatedUpTo.set(close, { ts, rows })
}

/**
 * First index in [from, to) whose ts is >= bound (ts ascending), else `to`. Galloping: daily bars
 * find the next day one row on, ticks in O(log rows-per-day).
 */
const nextRowAtOrAfter = (ts: Float64Array, bound: number, from: number, to: number): number => {
  let lo = from
  let step = 1
  let hi = from
  while (hi < to && ts[hi] < bound) {
    lo = hi + 1
    hi = from + step
    step *= 2
  }
  if (hi > to) hi = to
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (ts[mid] < bound) lo = mid + 1
    else hi = mid
  }
  return lo
}

/**
 * Records day closes and equity samples for a run of rows during which cash and position were
 * constant (a "segment": between two fills), so the hot loop never looks at timestamps: NAV on
 * any row of the segment is cash + position × close, bit-identical to what the loop computed.
 */
class SegmentRecorder {
  /** ts of the last row of each day (day numbers are derived only when beta needs them) */
  private readonly dayLastTs: Float64Array
  readonly dayCloses: Float64Array
  dayCount = 0
  readonly equityTs: number[] = []
  readonly equityNav: number[] = []
  private samplePtr = 0
  constructor(
    private readonly ts: Float64Array,
    private readonly close: Float64Array,
    /** rows read: the last day ends here */
    private readonly end: number,
    private readonly sampleRows: Int32Array,
    dayCapacity: number
  ) {
    this.dayLastTs = new Float64Array(dayCapacity)
    this.dayCloses = new Float64Array(dayCapacity)
  }

  /** Rows [from, to) had this cash and position. */
  flush(from: number, to: number, cash: number, position: number): void {
    const { ts, close, end, sampleRows } = this
    // each day is recorded by the segment holding its last row
    let r = from
    while (r < to) {
      const next = r + 1
      // daily bars: a gap of a day or more always ends the day, no division needed
      if (next >= end || ts[next] - ts[r] >= DAY_MS) {
        this.dayLastTs[this.dayCount] = ts[r]
        this.dayCloses[this.dayCount++] = cash + position * close[r]
        r = next
        continue
      }
      // intraday: find the day's first row after r, searching only inside the segment
      // (a day can span millions of ticks)
      const nextDayStart = (Math.floor(ts[r] / DAY_MS) + 1) * DAY_MS
      const nextDay = ts[next] >= nextDayStart ? next : nextRowAtOrAfter(ts, nextDayStart, next + 1, to)
      if (nextDay < to || to === end || ts[to] >= nextDayStart) {
        this.dayLastTs[this.dayCount] = ts[nextDay - 1]
        this.dayCloses[this.dayCount++] = cash + position * close[nextDay - 1]
      }
      r = nextDay
    }
    while (this.samplePtr < sampleRows.length && sampleRows[this.samplePtr] < to) {
      const row = sampleRows[this.samplePtr++]
      this.equityTs.push(ts[row])
      this.equityNav.push(cash + position * close[row])
    }
  }

  /** The day closes; day numbers (keys) are only computed when `withKeys` (beta needs them). */
  periods(withKeys: boolean): PeriodSeries {
    const keys = new Float64Array(withKeys ? this.dayCount : 0)
    for (let j = 0; j < keys.length; j++) keys[j] = Math.floor(this.dayLastTs[j] / DAY_MS)
    return { keys, closes: this.dayCloses, length: this.dayCount }
  }
}

/**
 * Per-series precomputation, cached per ts array (series are immutable by contract) and shared
 * by every run over that array, so a parameter sweep pays for it once:
 * - `dayEndRows`: the rows after which the next row is on a later UTC day, found one day at a
 *   time (a division at the day's first row, then a galloping search for the next midnight), so
 *   building it costs O(days), not O(rows). It covers the rows runs have read so far (validated,
 *   hence ascending) and is extended as later runs read further.
 *   It is only used while `exactDays`: every day's first and last row is a finite |ts| < 2^50
 *   with floor(ts / day) equal for both, and the two are less than a day apart. Then every row of
 *   the day has the same day number and the same next midnight, the gap test of SegmentRecorder
 *   never fires inside the day, and SegmentRecorder records exactly these rows for any
 *   segmentation. Otherwise (timestamps within float rounding of midnight, huge or infinite ts)
 *   runs use SegmentRecorder, as before.
 * - equity sample rows and their timestamps per (first row, steps, points).
 */
interface SeriesIndex {
  readonly length: number
  exactDays: boolean
  dayEndRows: Int32Array
  dayEndCount: number
  /** first row of the day whose last row is not known yet */
  openDayStart: number
  /** rows [0, indexedTo) have been looked at */
  indexedTo: number
  readonly samples: Map<string, EquitySampling>
}

interface EquitySampling {
  readonly rows: Int32Array
  /** ts of each sample row; copied into each result, never handed out */
  readonly ts: number[]
}

const MAX_CACHED_SAMPLINGS = 64
const EXACT_TS_LIMIT = 2 ** 50

const seriesIndexCache = new WeakMap<Float64Array, SeriesIndex>()

/** Extends the day ends of `index` over rows [0, limit), which must be ascending (validated). */
const extendSeriesIndex = (index: SeriesIndex, ts: Float64Array, limit: number): void => {
  let start = index.openDayStart
  while (index.exactDays && start < limit) {
    const t = ts[start]
    const day = Math.floor(t / DAY_MS)
    if (!(Math.abs(t) < EXACT_TS_LIMIT) || day * DAY_MS > t) {
      index.exactDays = false
      break
    }
    const next = nextRowAtOrAfter(ts, (day + 1) * DAY_MS, start + 1, limit)
    const last = ts[next - 1]
    if (!(Math.abs(last) < EXACT_TS_LIMIT && Math.floor(last / DAY_MS) === day && last - t < DAY_MS)) {
      index.exactDays = false
      break
    }
    if (next === limit) break // the day may go on after row limit - 1
    if (index.dayEndCount === index.dayEndRows.length) {
      const grown = new Int32Array(Math.max(16, index.dayEndRows.length * 2))
      grown.set(index.dayEndRows)
      index.dayEndRows = grown
    }
    index.dayEndRows[index.dayEndCount++] = next - 1
    start = next
  }
  index.openDayStart = start
  index.indexedTo = limit
}

/** The index of `ts`, covering at least rows [0, limit) (which must be validated). */
const seriesIndex = (ts: Float64Array, limit: number): SeriesIndex => {
  let index = seriesIndexCache.get(ts)
  if (index === undefined || index.length !== ts.length) {
    index = {
      length: ts.length,
      exactDays: true,
      dayEndRows: new Int32Array(16),
      dayEndCount: 0,
      openDayStart: 0,
      indexedTo: 0,
      samples: new Map()
    }
    seriesIndexCache.set(ts, index)
  }
  if (index.indexedTo < limit) extendSeriesIndex(index, ts, limit)
  return index
}

/** The equity sample rows of a run over rows [first, first + steps), cached per series. */
const equitySampling = (index: SeriesIndex, ts: Float64Array, first: number, steps: number, points: number): EquitySampling => {
  const key = `${first}:${steps}:${points}`
  let sampling = index.samples.get(key)
  if (sampling === undefined) {
    const rows = sampleSteps(steps, points)
    for (let j = 0; j < rows.length; j++) rows[j] += first
    const sampleTs: number[] = []
    for (let j = 0; j < rows.length; j++) if (rows[j] < first + steps) sampleTs.push(ts[rows[j]])
    sampling = { rows, ts: sampleTs }
    if (index.samples.size >= MAX_CACHED_SAMPLINGS) index.samples.clear()
    index.samples.set(key, sampling)
  }
  return sampling
}

/** First index in [lo, hi) whose value is >= bound (values ascending), else hi. */
const lowerBoundInt = (values: Int32Array, bound: number, lo: number, hi: number): number => {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (values[mid] < bound) lo = mid + 1
    else hi = mid
  }
  return lo
}

/**
 * Scratch buffers reused from run to run (day closes, segment log). A run takes them when they
 * are free and gives them back when it ends; a nested run (a strategy that runs a backtest)
 * allocates its own. Nothing in a result refers to them: metrics are computed from the day
 * closes before the run returns.
 */
interface Scratch {
  busy: boolean
  dayCloses: Float64Array
  segmentLog: Float64Array
}

const sharedScratch: Scratch = { busy: false, dayCloses: new Float64Array(1024), segmentLog: new Float64Array(1024) }

/** Buffers larger than this (doubles) are not kept after a run: a tick run can grow them to MBs. */
const MAX_POOLED_DOUBLES = 1 << 17

const takeScratch = (): Scratch => {
  if (sharedScratch.busy) return { busy: true, dayCloses: new Float64Array(1024), segmentLog: new Float64Array(1024) }
  sharedScratch.busy = true
  return sharedScratch
}

const releaseScratch = (scratch: Scratch): void => {
  scratch.busy = false
  if (scratch.dayCloses.length > MAX_POOLED_DOUBLES) scratch.dayCloses = new Float64Array(1024)
  if (scratch.segmentLog.length > MAX_POOLED_DOUBLES) scratch.segmentLog = new Float64Array(1024)
}

/**
 * SegmentRecorder's job with the series' day ends known in advance (SeriesIndex.dayEndRows):
 * a segment only evaluates NAV on its day-end rows and sample rows.
 */
class DayEndRecorder {
  readonly dayCloses: Float64Array
  dayCount = 0
  readonly equityTs: number[]
  /** filled in place: a copy of the sample timestamps, overwritten with NAVs (no growing) */
  readonly equityNav: number[]
  private samplePtr = 0
  private dayPtr: number
  /** every row of the run ends a day (daily bars): day j is row first + j */
  private readonly everyRow: boolean
  private readonly first: number
  constructor(
    private readonly ts: Float64Array,
    private readonly close: Float64Array,
    private readonly end: number,
    /** day-end rows: [dayPtr, dayStop) are those before end - 1, which always ends a day */
    private readonly dayEndRows: Int32Array,
    first: number,
    private readonly dayStop: number,
    private readonly sampleRows: Int32Array,
    sampleTs: number[],
    dayCloses: Float64Array
  ) {
    this.dayPtr = lowerBoundInt(dayEndRows, first, 0, dayStop)
    this.first = first
    this.everyRow = dayStop - this.dayPtr === end - 1 - first
    this.dayCloses = dayCloses
    this.equityTs = sampleTs.slice()
    this.equityNav = sampleTs.slice()
  }

  /** Rows [from, to) had this cash and position. */
  flush(from: number, to: number, cash: number, position: number): void {
    if (from >= to) return
    const { close, dayCloses } = this
    if (this.everyRow) {
      const offset = this.first
      for (let r = from; r < to; r++) dayCloses[r - offset] = cash + position * close[r]
      this.dayCount = to - offset
    } else {
      const dayEndRows = this.dayEndRows
      const dayStop = this.dayStop
      let p = this.dayPtr
      let d = this.dayCount
      while (p < dayStop && dayEndRows[p] < to) dayCloses[d++] = cash + position * close[dayEndRows[p++]]
      if (to === this.end) dayCloses[d++] = cash + position * close[to - 1]
      this.dayPtr = p
      this.dayCount = d
    }
    const { sampleRows, equityNav } = this
    const samples = equityNav.length
    let j = this.samplePtr
    while (j < samples && sampleRows[j] < to) {
      equityNav[j] = cash + position * close[sampleRows[j]]
      j++
    }
    this.samplePtr = j
  }

  periods(withKeys: boolean): PeriodSeries {
    const keys = new Float64Array(withKeys ? this.dayCount : 0)
    if (withKeys) {
      // the recorded rows are the last dayCount - 1 day ends before dayStop, then end - 1
      const p = this.dayStop - (this.dayCount - 1)
      for (let j = 0; j < keys.length - 1; j++) keys[j] = Math.floor(this.ts[this.dayEndRows[p + j]] / DAY_MS)
      if (keys.length > 0) keys[keys.length - 1] = Math.floor(this.ts[this.end - 1] / DAY_MS)
    }
    return { keys, closes: this.dayCloses, length: this.dayCount }
  }
}

/** Slots of the state `scanRows` carries between calls (a typed array: unboxed doubles). */
const SCAN_PEAK = 0
const SCAN_FLOOR = 1
const SCAN_MAX_DRAWDOWN = 2
const SCAN_PENDING = 3
const SCAN_STATE_SIZE = 4

/**
 * The hot loop of a single-symbol run, on its own so the optimizer compiles it small: marks NAV,
 * tracks drawdown and asks the strategy, for rows [from, stop) at constant cash and position.
 * Returns the row after the one whose new target must be executed (state[SCAN_PENDING], else
 * NaN), or `stop`.
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
  for (; i < stop; i++) {
    const nav = cash + position * close[i]
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
const runSingleSymbol = (setup: RunSetup): LoopOutcome => {
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
  let i = first
  while (i < end) {
    if (pending === pending) {
      // close the segment at the old holdings, then trade at row i's open
      if (segmentCount * 4 === segmentLog.length) {
        const grown = new Float64Array(segmentLog.length * 2)
        grown.set(segmentLog)
        segmentLog = grown
        scratch.segmentLog = grown
      }
      segmentLog[segmentCount * 4] = segmentStart
      segmentLog[segmentCount * 4 + 1] = i
      segmentLog[segmentCount * 4 + 2] = cash
      segmentLog[segmentCount * 4 + 3] = position
      segmentCount++
      if (position !== 0) exposedSteps += i - segmentStart
      segmentStart = i
      exec.execute(0, i, pending)
      target = exec.ruined ? 0 : pending
      pending = Number.NaN
      cash = pf.cash
      position = pf.position[0]
    }
    const stop = nextProgressRow < end ? nextProgressRow : end
    if (checking) {
      // one row at a time, so the hook sees every step
      pf.mark[0] = close[i]
      onStep(ts[i], cash + position * close[i], pf)
      i = scanRows(instance, exec, close, i, i + 1, cash, position, target, scan)
    } else {
      i = scanRows(instance, exec, close, i, stop, cash, position, target, scan)
    }
    const wanted = scan[SCAN_PENDING]
    if (wanted === wanted) pending = wanted
    if (i >= nextProgressRow) {
      if (onProgress !== undefined) onProgress(i, end)
      nextProgressRow += every
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

const runMultiSymbol = (setup: RunSetup): LoopOutcome => {
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

/** Last close of each UTC day before `endMs`, for beta. */
const dailyCloses = (s: PriceSeries, endMs: number): PeriodSeries => {
  const out = new PeriodRecorder()
  for (let i = 0; i < s.ts.length && s.ts[i] < endMs; i++) {
    const key = Math.floor(s.ts[i] / DAY_MS)
    if (out.length > 0 && out.keys[out.length - 1] === key) out.closes[out.length - 1] = s.close[i]
    else out.push(key, s.close[i])
  }
  return out
}

const percent = (x: number): string => `${(x * 100).toFixed(1)}%`

/**
 * Runs one scenario over its price series (series[k] is symbol k). Throws EngineRunError for
 * engine-level failures (bad or empty data, too many missing marks); an exception thrown by the
 * strategy propagates unchanged. `debug` is a test hook and costs nothing when absent.
 */
export const runBacktest = (
  scn: EngineScenario,
  series: ReadonlyArray<PriceSeries>,
  debug?: BacktestDebug
): BacktestResult => {
  const freq = checkShapes(scn, series)
  const symbolCount = series.length
  const firstTrade = new Int32Array(symbolCount)
  const endRow = new Int32Array(symbolCount)
  for (let k = 0; k < symbolCount; k++) {
    const s = series[k]
    endRow[k] = lowerBound(s.ts, scn.endMs)
    firstTrade[k] = Math.min(endRow[k], Math.max(s.startIndex, lowerBound(s.ts, scn.startMs)))
  }
  const portfolio = new Portfolio(scn.startCapital, symbolCount)
  const instance = scn.strategy.create(scn.params, { series, seed: scn.seed })
  const progressEvery = Math.max(1, Math.floor(scn.progressEvery ?? DEFAULT_PROGRESS_EVERY))
  const scratch = takeScratch()
  try {
    return finishRun(scn, series, freq, {
      scn,
      series,
      freq,
      firstTrade,
      endRow,
      portfolio,
      execution: new Execution(series, portfolio, new Broker(scn.costs)),
      instance,
      progressEvery,
      maxEquityPoints: Math.max(2, Math.floor(scn.maxEquityPoints ?? DEFAULT_MAX_EQUITY_POINTS)),
      debug,
      scratch
    })
  } finally {
    releaseScratch(scratch)
  }
}

/** Runs the loop of a set-up scenario and turns its outcome into the result. */
const finishRun = (scn: EngineScenario, series: ReadonlyArray<PriceSeries>, freq: Freq, setup: RunSetup): BacktestResult => {
  const symbolCount = series.length
  const portfolio = setup.portfolio
  const outcome = symbolCount === 1 ? runSingleSymbol(setup) : runMultiSymbol(setup)

  if (outcome.steps === 0) {
    throw new EngineRunError(
      `no rows between ${iso(scn.startMs)} and ${iso(scn.endMs)} for ${series.map((s) => s.symbol).join(", ")}`
    )
  }
  const symbolSteps = outcome.steps * symbolCount
  const missingMarkShare = outcome.missingMarks / symbolSteps
  if (missingMarkShare > MAX_MISSING_MARK_SHARE) {
    const worst = series
      .map((s, k) => ({ symbol: s.symbol, missing: outcome.missingBySymbol[k] }))
      .filter((x) => x.missing > 0)
      .sort((a, b) => b.missing - a.missing || (a.symbol < b.symbol ? -1 : 1))
      .slice(0, 3)
      .map((x) => `${x.symbol}: ${x.missing} of ${outcome.steps} steps`)
    throw new EngineRunError(
      `missing marks ${percent(missingMarkShare)} exceed the ${percent(MAX_MISSING_MARK_SHARE).replace(".0%", "%")} limit (${worst.join(", ")})`
    )
  }

  const warnings = [...outcome.warnings]
  const exec = setup.execution
  if (exec.ruined) warnings.push(`equity reached zero at ${iso(exec.ruinedAtTs)}; positions were closed and trading stopped`)
  if (exec.clampedTargets > 0) warnings.push(`${exec.clampedTargets} strategy targets outside [-1, 1] were clamped`)
  if (outcome.missingMarks > 0) {
    warnings.push(
      `${outcome.missingMarks} missing marks (${percent(missingMarkShare)} of symbol-steps) carried forward from the last price`
    )
  }

  const metrics = computeMetrics({
    startCapital: scn.startCapital,
    finalEquity: outcome.finalNav,
    firstTs: outcome.firstTs,
    lastTs: outcome.lastTs,
    periods: outcome.periods,
    // for daily bars the first close is the start (no fill can happen on the first row);
    // intraday days start from the capital held before the first row
    baseline: FREQ_MS[freq] >= DAY_MS ? null : scn.startCapital,
    maxDrawdown: outcome.maxDrawdown,
    steps: outcome.steps,
    exposedSteps: outcome.exposedSteps,
    trades: portfolio.tradeStats(),
    benchmark: scn.benchmark !== undefined ? dailyCloses(scn.benchmark, scn.endMs) : undefined
  })
  return {
    metrics,
    equity: { ts: outcome.equityTs, nav: outcome.equityNav },
    fills: portfolio.fills,
    missingMarks: outcome.missingMarks,
    missingMarkShare,
    rows: outcome.rows,
    warnings
  }
}
