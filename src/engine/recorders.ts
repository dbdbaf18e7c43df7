/**
 * Recorders of a run's day closes (for the return statistics) and equity samples.
 * - PeriodRecorder: growable (day, NAV) pairs, pushed step by step by the multi-symbol loop;
 * - SegmentRecorder / DayEndRecorder: the single-symbol loop logs "segments" (runs of rows at
 *   constant cash and position, between two fills) and these turn them into day closes and
 *   samples after the loop, so the hot loop never looks at timestamps.
 */
import { DAY_MS, lowerBoundInt, nextRowAtOrAfter } from "./loop-common.js"
import type { PeriodSeries } from "./metrics.js"

/** Growable (day number, NAV at the day's last step) series. */
export class PeriodRecorder implements PeriodSeries {
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

/** Evenly spaced step indices 0..steps-1, at most `points` of them, first and last included. */
export const sampleSteps = (steps: number, points: number): Int32Array => {
  const m = Math.max(1, Math.min(points, steps))
  const out = new Int32Array(m)
  if (m === 1) return out
  for (let j = 0; j < m; j++) out[j] = Math.round((j * (steps - 1)) / (m - 1))
  return out
}

/**
 * Records day closes and equity samples for a run of rows during which cash and position were
 * constant (a "segment": between two fills), so the hot loop never looks at timestamps: NAV on
 * any row of the segment is cash + position × close, bit-identical to what the loop computed.
 */
export class SegmentRecorder {
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
 * SegmentRecorder's job with the series' day ends known in advance (SeriesIndex.dayEndRows):
 * a segment only evaluates NAV on its day-end rows and sample rows.
 */
export class DayEndRecorder {
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

