/**
 * Technical indicators, each as an incremental class (O(1) per update, fixed-size ring buffers,
 * no allocation after construction) and as a whole-array helper built on the same class, so the
 * two can never disagree.
 *
 * Conventions (the tests' reference implementations follow them):
 * - EMA(n): alpha = 2 / (n + 1), seeded with the first value (pandas `ewm(span=n, adjust=False)`);
 *   it has a value from the first update on; `ready` once n values have been seen.
 * - SMA(n), Bollinger(n), Donchian(n), highest/lowest(n): NaN until n values have been seen.
 * - RSI(n) (Wilder): NaN until n price changes (n + 1 values) have been seen; the first average
 *   gain/loss is the simple mean of those n changes, then Wilder smoothing
 *   avg = (avg * (n - 1) + x) / n. No losses → 100, no gains and no losses → 50.
 * - ATR(n) (Wilder): true range TR = max(h - l, |h - prevClose|, |l - prevClose|), the first bar's
 *   TR is h - l; NaN until n TRs, the first ATR is their mean, then Wilder smoothing.
 * - Bollinger: middle = SMA(n), width = k × population standard deviation over the window.
 */

const assertWindow = (n: number, what: string): void => {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${what}: window must be a positive integer, got ${n}`)
}

/** Exponential moving average, seeded with the first value. */
export class Ema {
  readonly alpha: number
  value = Number.NaN
  count = 0
  constructor(readonly period: number) {
    assertWindow(period, "ema")
    this.alpha = 2 / (period + 1)
  }
  update(x: number): number {
    this.value = this.count === 0 ? x : this.value + this.alpha * (x - this.value)
    this.count++
    return this.value
  }
  get ready(): boolean {
    return this.count >= this.period
  }
}

/**
 * Simple moving average over a ring buffer. The running sum is recomputed from the buffer each
 * time the ring wraps, so rounding drift cannot build up over millions of updates (amortized O(1)).
 */
export class Sma {
  private readonly ring: Float64Array
  private head = 0
  private sum = 0
  count = 0
  value = Number.NaN
  constructor(readonly period: number) {
    assertWindow(period, "sma")
    this.ring = new Float64Array(period)
  }
  update(x: number): number {
    const n = this.period
    if (this.count >= n) this.sum -= this.ring[this.head]
    this.ring[this.head] = x
    this.sum += x
    this.head++
    this.count++
    if (this.head === n) {
      this.head = 0
      if (this.count >= n) {
        let exact = 0
        for (let j = 0; j < n; j++) exact += this.ring[j]
        this.sum = exact
      }
    }
    this.value = this.count >= n ? this.sum / n : Number.NaN
    return this.value
  }
  get ready(): boolean {
    return this.count >= this.period
  }
}

/** Wilder's relative strength index. */
export class Rsi {
  private prev = Number.NaN
  private avgGain = 0
  private avgLoss = 0
  /** values seen */
  count = 0
  value = Number.NaN
  constructor(readonly period: number) {
    assertWindow(period, "rsi")
  }
  update(x: number): number {
    const n = this.period
    if (this.count > 0) {
      const change = x - this.prev
      const gain = change > 0 ? change : 0
      const loss = change < 0 ? -change : 0
      if (this.count <= n) {
        // still collecting the first n changes: plain sums, divided once complete
        this.avgGain += gain
        this.avgLoss += loss
        if (this.count === n) {
          this.avgGain /= n
          this.avgLoss /= n
        }
      } else {
        this.avgGain = (this.avgGain * (n - 1) + gain) / n
        this.avgLoss = (this.avgLoss * (n - 1) + loss) / n
      }
    }
    this.prev = x
    this.count++
    if (this.count > n) {
      this.value =
        this.avgLoss === 0 ? (this.avgGain === 0 ? 50 : 100) : 100 - 100 / (1 + this.avgGain / this.avgLoss)
    }
    return this.value
  }
  get ready(): boolean {
    return this.count > this.period
  }
}

/**
 * Bollinger bands: windowed mean and population variance, updated in O(1) with a Welford-style
 * replace step and recomputed exactly (two-pass) whenever the ring wraps, which keeps the
 * variance of near-constant, high-priced series from cancelling to garbage.
 */
export class Bollinger {
  private readonly ring: Float64Array
  private head = 0
  private mean = 0
  /** sum of squared deviations from the mean over the window */
  private m2 = 0
  count = 0
  middle = Number.NaN
  upper = Number.NaN
  lower = Number.NaN
  stdDev = Number.NaN
  constructor(
    readonly period: number,
    readonly width: number
  ) {
    assertWindow(period, "bollinger")
    this.ring = new Float64Array(period)
  }
  update(x: number): void {
    const n = this.period
    if (this.count < n) {
      // growing window: plain Welford
      const k = this.count + 1
      const delta = x - this.mean
      this.mean += delta / k
      this.m2 += delta * (x - this.mean)
    } else {
      const old = this.ring[this.head]
      const oldMean = this.mean
      this.mean = oldMean + (x - old) / n
      this.m2 += (x - old) * (x - this.mean + old - oldMean)
      if (this.m2 < 0) this.m2 = 0
    }
    this.ring[this.head] = x
    this.head++
    this.count++
    if (this.head === n) {
      this.head = 0
      this.recomputeExactly()
    }
    if (this.count >= n) {
      this.stdDev = Math.sqrt(this.m2 / n)
      this.middle = this.mean
      this.upper = this.mean + this.width * this.stdDev
      this.lower = this.mean - this.width * this.stdDev
    }
  }
  private recomputeExactly(): void {
    const n = this.period
    let sum = 0
    for (let j = 0; j < n; j++) sum += this.ring[j]
    const mean = sum / n
    let m2 = 0
    for (let j = 0; j < n; j++) {
      const d = this.ring[j] - mean
      m2 += d * d
    }
    this.mean = mean
    this.m2 = m2
  }
  get ready(): boolean {
    return this.count >= this.period
  }
}

/** Wilder's average true range. */
export class Atr {
  private prevClose = Number.NaN
  private sum = 0
  count = 0
  value = Number.NaN
  constructor(readonly period: number) {
    assertWindow(period, "atr")
  }
  update(high: number, low: number, close: number): number {
    const n = this.period
    let tr = high - low
    if (this.count > 0) {
      const up = Math.abs(high - this.prevClose)
      const down = Math.abs(low - this.prevClose)
      if (up > tr) tr = up
      if (down > tr) tr = down
    }
    this.prevClose = close
    this.count++
    if (this.count < n) {
      this.sum += tr
    } else if (this.count === n) {
      this.value = (this.sum + tr) / n
    } else {
      this.value = (this.value * (n - 1) + tr) / n
    }
    return this.value
  }
  get ready(): boolean {
    return this.count >= this.period
  }
}

/**
 * Rolling maximum (or minimum) over the last n values with a monotonic deque in a ring buffer:
 * amortized O(1) per update, no allocation.
 */
export class RollingExtreme {
  private readonly values: Float64Array
  private readonly positions: Float64Array
  private front = 0
  private size = 0
  count = 0
  value = Number.NaN
  constructor(
    readonly period: number,
    readonly kind: "max" | "min"
  ) {
    assertWindow(period, kind === "max" ? "highest" : "lowest")
    this.values = new Float64Array(period)
    this.positions = new Float64Array(period)
  }
  update(x: number): number {
    const n = this.period
    const t = this.count
    const isMax = this.kind === "max"
    // drop values the new one dominates: they can never be the extreme again
    while (this.size > 0) {
      const back = (this.front + this.size - 1) % n
      const v = this.values[back]
      if (isMax ? v <= x : v >= x) this.size--
      else break
    }
    // drop the front when it slid out of the window
    if (this.size > 0 && this.positions[this.front] <= t - n) {
      this.front = (this.front + 1) % n
      this.size--
    }
    const slot = (this.front + this.size) % n
    this.values[slot] = x
    this.positions[slot] = t
    this.size++
    this.count++
    this.value = this.count >= n ? this.values[this.front] : Number.NaN
    return this.value
  }
  get ready(): boolean {
    return this.count >= this.period
  }
}

/** Donchian channel: highest high and lowest low of the last n bars. */
export class Donchian {
  private readonly highs: RollingExtreme
  private readonly lows: RollingExtreme
  upper = Number.NaN
  lower = Number.NaN
  constructor(readonly period: number) {
    assertWindow(period, "donchian")
    this.highs = new RollingExtreme(period, "max")
    this.lows = new RollingExtreme(period, "min")
  }
  update(high: number, low: number): void {
    this.upper = this.highs.update(high)
    this.lower = this.lows.update(low)
  }
  get ready(): boolean {
    return this.highs.ready
  }
}

// ---------------------------------------------------------------------------------------------
// Whole-array helpers: one output value per input row, NaN where the indicator is not defined.

export const ema = (values: ArrayLike<number>, period: number): Float64Array => {
  const out = new Float64Array(values.length)
  const ind = new Ema(period)
  for (let i = 0; i < values.length; i++) out[i] = ind.update(values[i])
  return out
}

export const sma = (values: ArrayLike<number>, period: number): Float64Array => {
  const out = new Float64Array(values.length)
  const ind = new Sma(period)
  for (let i = 0; i < values.length; i++) out[i] = ind.update(values[i])
  return out
}

export const rsi = (values: ArrayLike<number>, period: number): Float64Array => {
  const out = new Float64Array(values.length)
  const ind = new Rsi(period)
  for (let i = 0; i < values.length; i++) out[i] = ind.update(values[i])
  return out
}

export interface Bands {
  readonly middle: Float64Array
  readonly upper: Float64Array
  readonly lower: Float64Array
}

export const bollinger = (values: ArrayLike<number>, period: number, width: number): Bands => {
  const n = values.length
  const middle = new Float64Array(n)
  const upper = new Float64Array(n)
  const lower = new Float64Array(n)
  const ind = new Bollinger(period, width)
  for (let i = 0; i < n; i++) {
    ind.update(values[i])
    middle[i] = ind.middle
    upper[i] = ind.upper
    lower[i] = ind.lower
  }
  return { middle, upper, lower }
}

export const atr = (
  high: ArrayLike<number>,
  low: ArrayLike<number>,
  close: ArrayLike<number>,
  period: number
): Float64Array => {
  const out = new Float64Array(close.length)
  const ind = new Atr(period)
  for (let i = 0; i < close.length; i++) out[i] = ind.update(high[i], low[i], close[i])
  return out
}

export const highest = (values: ArrayLike<number>, period: number): Float64Array => {
  const out = new Float64Array(values.length)
  const ind = new RollingExtreme(period, "max")
  for (let i = 0; i < values.length; i++) out[i] = ind.update(values[i])
  return out
}

export const lowest = (values: ArrayLike<number>, period: number): Float64Array => {
  const out = new Float64Array(values.length)
  const ind = new RollingExtreme(period, "min")
  for (let i = 0; i < values.length; i++) out[i] = ind.update(values[i])
  return out
}

export interface Channel {
  readonly upper: Float64Array
  readonly lower: Float64Array
}

export const donchian = (high: ArrayLike<number>, low: ArrayLike<number>, period: number): Channel => ({
  upper: highest(high, period),
  lower: lowest(low, period)
})
