/**
 * Per-series caches shared by every run over the same arrays (series are immutable by
 * contract): row validation, day ends, equity sample rows, and the scratch buffers a run borrows.
 * A parameter sweep of thousands of scenarios over one slice pays for each of them once.
 */
import { badRow, DAY_MS, nextRowAtOrAfter } from "./loop-common.js"
import { sampleSteps } from "./recorders.js"
import type { PriceSeries } from "./types.js"

/**
 * Checks once per price array that closes are positive and timestamps ascending over the rows a
 * run reads. The result is cached per array (series are immutable by contract), so a sweep of
 * thousands of scenarios over one slice validates it once, and the hot loop needs no checks.
 */
export const validatedUpTo = new WeakMap<Float64Array, { readonly ts: Float64Array; readonly rows: number }>()

export const validateRows = (s: PriceSeries, rows: number): void => {
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
export interface SeriesIndex {
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

export interface EquitySampling {
  readonly rows: Int32Array
  /** ts of each sample row; copied into each result, never handed out */
  readonly ts: number[]
}

export const MAX_CACHED_SAMPLINGS = 64
export const EXACT_TS_LIMIT = 2 ** 50

export const seriesIndexCache = new WeakMap<Float64Array, SeriesIndex>()

/** Extends the day ends of `index` over rows [0, limit), which must be ascending (validated). */
export const extendSeriesIndex = (index: SeriesIndex, ts: Float64Array, limit: number): void => {
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
export const seriesIndex = (ts: Float64Array, limit: number): SeriesIndex => {
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
export const equitySampling = (index: SeriesIndex, ts: Float64Array, first: number, steps: number, points: number): EquitySampling => {
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

/**
 * Scratch buffers reused from run to run (day closes, segment log). A run takes them when they
 * are free and gives them back when it ends; a nested run (a strategy that runs a backtest)
 * allocates its own. Nothing in a result refers to them: metrics are computed from the day
 * closes before the run returns.
 */
export interface Scratch {
  busy: boolean
  dayCloses: Float64Array
  segmentLog: Float64Array
}

export const sharedScratch: Scratch = { busy: false, dayCloses: new Float64Array(1024), segmentLog: new Float64Array(1024) }

/** Buffers larger than this (doubles) are not kept after a run: a tick run can grow them to MBs. */
export const MAX_POOLED_DOUBLES = 1 << 17

export const takeScratch = (): Scratch => {
  if (sharedScratch.busy) return { busy: true, dayCloses: new Float64Array(1024), segmentLog: new Float64Array(1024) }
  sharedScratch.busy = true
  return sharedScratch
}

export const releaseScratch = (scratch: Scratch): void => {
  scratch.busy = false
  if (scratch.dayCloses.length > MAX_POOLED_DOUBLES) scratch.dayCloses = new Float64Array(1024)
  if (scratch.segmentLog.length > MAX_POOLED_DOUBLES) scratch.segmentLog = new Float64Array(1024)
}

