/**
 * The rows a scenario sees, and what its strategy may read of them.
 *
 * Window. A result must be a pure function of the scenario and its own rows, whatever larger
 * slice its group shares: each series is cut to [max(0, first row at or after startMs −
 * warmupBars), first row at or after endMs) before the strategy is created, so indicators are
 * seeded on the same row and nothing outside the window can leak in. The cut is a set of typed
 * array views (no copy), cached per (series, window): every per-array cache downstream (row
 * validation, day ends, trend_baseline's EMAs) is then shared by all runs over one window, as a
 * sweep over one slice shares them today.
 *
 * History guard. A user strategy gets columns that hold only the rows up to the current step:
 * plain arrays the engine appends to as the run advances, so reading a later index gives
 * `undefined` and `length` is the number of rows seen. (Measured alternatives: a length-tracking
 * view over a resizable ArrayBuffer costs ~1 µs per resize, i.e. per row and column, 100× the
 * whole loop; a Proxy is slower still.) Built-in strategies get the window's typed arrays
 * directly, which keeps the hot loop at full speed; that they never read ahead is checked by
 * test/engine/window.test.ts, which runs every built-in both ways and requires identical results.
 */
import { EngineRunError } from "./errors.js"
import { lowerBound } from "./loop-common.js"
import type { EngineScenario, PriceSeries, StrategyInstance, StrategySeries } from "./types.js"

export interface RunWindow {
  /** each series cut to the scenario's window; row numbers in the loops index these */
  readonly series: ReadonlyArray<PriceSeries>
  /** first row that trades, per symbol (rows before it are warm-up) */
  readonly firstTrade: Int32Array
  /** rows in the window, per symbol */
  readonly endRow: Int32Array
}

/** Windows per series: a group reuses a handful (one per distinct warm-up and date range). */
const windowCache = new WeakMap<PriceSeries, Map<string, PriceSeries>>()
const MAX_WINDOWS_PER_SERIES = 256

const cut = (s: PriceSeries, from: number, to: number, startIndex: number): PriceSeries => {
  if (from === 0 && to === s.ts.length && startIndex === s.startIndex) return s
  let windows = windowCache.get(s)
  if (windows === undefined) {
    windows = new Map()
    windowCache.set(s, windows)
  }
  const key = `${from}:${to}:${startIndex}`
  let view = windows.get(key)
  if (view === undefined) {
    view = {
      symbol: s.symbol,
      freq: s.freq,
      ts: s.ts.subarray(from, to),
      close: s.close.subarray(from, to),
      startIndex,
      ...(s.open !== undefined ? { open: s.open.subarray(from, to) } : {}),
      ...(s.high !== undefined ? { high: s.high.subarray(from, to) } : {}),
      ...(s.low !== undefined ? { low: s.low.subarray(from, to) } : {}),
      ...(s.volume !== undefined ? { volume: s.volume.subarray(from, to) } : {}),
      ...(s.synthetic !== undefined ? { synthetic: s.synthetic.subarray(from, to) } : {})
    }
    if (windows.size >= MAX_WINDOWS_PER_SERIES) windows.clear()
    windows.set(key, view)
  }
  return view
}

/** Cuts every series to the scenario's window (see the file comment). */
export const scenarioWindow = (scn: Pick<EngineScenario, "warmupBars" | "startMs" | "endMs">, series: ReadonlyArray<PriceSeries>): RunWindow => {
  const warmup = scn.warmupBars
  if (warmup !== undefined && !(Number.isInteger(warmup) && warmup >= 0)) {
    throw new EngineRunError(`warmupBars ${warmup} must be a non-negative integer (the strategy's calculateRequirements().warmupBars)`)
  }
  const count = series.length
  const out: PriceSeries[] = new Array(count)
  const firstTrade = new Int32Array(count)
  const endRow = new Int32Array(count)
  for (let k = 0; k < count; k++) {
    const s = series[k]
    const end = lowerBound(s.ts, scn.endMs)
    const start = Math.min(end, lowerBound(s.ts, scn.startMs))
    let from: number
    let trade: number
    if (warmup === undefined) {
      from = 0
      trade = Math.min(end, Math.max(s.startIndex, start))
    } else {
      from = Math.max(0, start - warmup)
      trade = start
    }
    out[k] = cut(s, from, end, trade - from)
    firstTrade[k] = trade - from
    endRow[k] = end - from
  }
  return { series: out, firstTrade, endRow }
}

/**
 * Growing history columns for a user strategy: `reveal(k, rows)` makes rows [0, rows) of symbol
 * k visible. Rows are copied one at a time as the run reaches them.
 */
export class HistoryGuard {
  readonly views: ReadonlyArray<StrategySeries>
  private readonly sources: ReadonlyArray<ReadonlyArray<ArrayLike<number>>>
  private readonly targets: ReadonlyArray<ReadonlyArray<number[]>>
  private readonly revealed: Int32Array

  constructor(series: ReadonlyArray<PriceSeries>) {
    const sources: Array<Array<ArrayLike<number>>> = []
    const targets: number[][][] = []
    this.views = series.map((s) => {
      const from: Array<ArrayLike<number>> = []
      const to: number[][] = []
      const column = (source: ArrayLike<number> | undefined): number[] | undefined => {
        if (source === undefined) return undefined
        const history: number[] = []
        from.push(source)
        to.push(history)
        return history
      }
      const view: StrategySeries = {
        symbol: s.symbol,
        freq: s.freq,
        startIndex: s.startIndex,
        ts: column(s.ts)!,
        close: column(s.close)!,
        open: column(s.open),
        high: column(s.high),
        low: column(s.low),
        volume: column(s.volume),
        synthetic: column(s.synthetic)
      }
      sources.push(from)
      targets.push(to)
      return view
    })
    this.sources = sources
    this.targets = targets
    this.revealed = new Int32Array(series.length)
  }

  reveal(k: number, rows: number): void {
    const done = this.revealed[k]
    if (rows <= done) return
    const from = this.sources[k]
    const to = this.targets[k]
    for (let c = 0; c < from.length; c++) {
      const source = from[c]
      const history = to[c]
      for (let i = done; i < rows; i++) history.push(source[i])
    }
    this.revealed[k] = rows
  }

  /** Wraps `inner` so that row i of symbol k is visible when onBar(k, i) runs. */
  guard(inner: StrategyInstance): StrategyInstance {
    const revealed = this.revealed
    const sources = this.sources
    const targets = this.targets
    return {
      onBar: (k: number, i: number): number => {
        const done = revealed[k]
        if (i === done) {
          // the usual case: the next row, one push per column
          const from = sources[k]
          const to = targets[k]
          for (let c = 0; c < from.length; c++) to[c].push(from[c][i])
          revealed[k] = i + 1
        } else if (i > done) {
          this.reveal(k, i + 1)
        }
        return inner.onBar(k, i)
      }
    }
  }
}
