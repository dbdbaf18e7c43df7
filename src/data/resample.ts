/**
 * Ticks → bars. Buckets are aligned to UTC multiples of the bar width (a 1d bar is a UTC day,
 * which holds a whole US or European session). A bucket with no tick yields no bar: nothing is
 * filled, so every resampled bar is a real aggregate and keeps synthetic = 0 (synthetic = 1 is
 * reserved for bars made up to fill holes, which the data plane never does on its own).
 */
export interface BarColumns {
  readonly ts: Float64Array
  readonly open: Float64Array
  readonly high: Float64Array
  readonly low: Float64Array
  readonly close: Float64Array
  readonly volume: Float64Array
  readonly synthetic: Uint8Array
}

/** Aggregates ticks (sorted by ts, epoch ms) into OHLCV bars of `widthMs`; bar ts = bucket start. */
export const resampleTicks = (
  ts: Float64Array,
  price: Float64Array,
  size: Float64Array | undefined,
  widthMs: number
): BarColumns => {
  const n = ts.length
  // first pass counts buckets so the outputs are allocated once
  let buckets = 0
  let current = Number.NaN
  for (let i = 0; i < n; i++) {
    const b = Math.floor(ts[i] / widthMs)
    if (b !== current) {
      buckets++
      current = b
    }
  }
  const out = {
    ts: new Float64Array(buckets),
    open: new Float64Array(buckets),
    high: new Float64Array(buckets),
    low: new Float64Array(buckets),
    close: new Float64Array(buckets),
    volume: new Float64Array(buckets),
    synthetic: new Uint8Array(buckets)
  }
  let k = -1
  current = Number.NaN
  for (let i = 0; i < n; i++) {
    const b = Math.floor(ts[i] / widthMs)
    const p = price[i]
    if (b !== current) {
      k++
      current = b
      out.ts[k] = b * widthMs
      out.open[k] = p
      out.high[k] = p
      out.low[k] = p
      out.volume[k] = 0
    } else {
      if (p > out.high[k]) out.high[k] = p
      if (p < out.low[k]) out.low[k] = p
    }
    out.close[k] = p
    if (size) out.volume[k] += size[i]
  }
  return out
}
