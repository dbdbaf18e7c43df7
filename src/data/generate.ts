/**
 * Deterministic synthetic catalog for demos and tests: several symbols, US trading sessions
 * (weekdays, 09:30–16:00 America/New_York, so DST moves the session in UTC), and gaps injected
 * where asked. Same options → same rows → same bytes (no clock, a seeded PRNG per symbol).
 *
 * Daily bars come from a daily random walk; ticks and intraday bars from an intraday walk, and
 * intraday bars are resampled from those ticks so the frequencies of a symbol agree.
 */
import type { Freq } from "../schemas/common.js"
import { FREQ_MS } from "../schemas/common.js"
import { DataRequestError } from "./errors.js"
import { hashSeed, Rng } from "./random.js"
import { resampleTicks } from "./resample.js"
import { int64ToEpochMs, isoToDay, isWeekday, MS_PER_DAY, wallClockToUtcMs } from "./time.js"
import { writeCatalogRows } from "./catalog.js"
import type { BarRows, TickRows } from "./write.js"

export interface GenerateGap {
  /** symbol the gap applies to; all symbols when absent */
  readonly symbol?: string
  /** first and last missing day, YYYY-MM-DD inclusive */
  readonly from: string
  readonly to: string
}

export interface GenerateOptions {
  readonly root: string
  readonly symbols: ReadonlyArray<string>
  readonly freqs: ReadonlyArray<Freq>
  /** YYYY-MM-DD inclusive */
  readonly start: string
  readonly end: string
  readonly seed: number
  readonly gaps?: ReadonlyArray<GenerateGap>
  /** mean ticks per session minute (default 10) */
  readonly ticksPerMinute?: number
  /** rows per Parquet row group (default 65,536) */
  readonly rowGroupSize?: number
}

export interface GenerateSummary {
  readonly symbols: ReadonlyArray<string>
  readonly files: number
  readonly rows: number
}

const SESSION_OPEN_MIN = 9 * 60 + 30
const SESSION_MINUTES = 390
const NS_PER_MS = 1_000_000n

const tradingDays = (start: string, end: string, symbol: string, gaps: ReadonlyArray<GenerateGap>): number[] => {
  const skipped = gaps
    .filter((g) => g.symbol === undefined || g.symbol === symbol)
    .map((g) => [isoToDay(g.from), isoToDay(g.to)] as const)
  const days: number[] = []
  for (let d = isoToDay(start); d <= isoToDay(end); d++) {
    if (!isWeekday(d)) continue
    if (skipped.some(([a, b]) => d >= a && d <= b)) continue
    days.push(d)
  }
  return days
}

const cents = (p: number) => Math.round(p * 100) / 100

const dailyBars = (symbol: string, seed: number, days: ReadonlyArray<number>): BarRows => {
  const rng = new Rng(hashSeed(seed, symbol, "1d"))
  const n = days.length
  const bars: BarRows = {
    kind: "bar",
    ts: new BigInt64Array(n),
    open: new Float64Array(n),
    high: new Float64Array(n),
    low: new Float64Array(n),
    close: new Float64Array(n),
    volume: new Float64Array(n),
    synthetic: new Uint8Array(n)
  }
  let price = 50 + rng.next() * 150
  const drift = 0.0003
  const vol = 0.01 + rng.next() * 0.015
  for (let i = 0; i < n; i++) {
    const open = cents(price * (1 + 0.002 * rng.normal()))
    const close = cents(open * Math.exp(drift - 0.5 * vol * vol + vol * rng.normal()))
    const high = cents(Math.max(open, close) * (1 + Math.abs(rng.normal()) * vol * 0.5))
    const low = cents(Math.min(open, close) * (1 - Math.abs(rng.normal()) * vol * 0.5))
    bars.ts[i] = BigInt(days[i] * MS_PER_DAY) * NS_PER_MS
    bars.open[i] = open
    bars.high[i] = high
    bars.low[i] = low
    bars.close[i] = close
    bars.volume[i] = Math.round(1e6 * (0.5 + rng.next()))
    price = close
  }
  return bars
}

/** One session of ticks: whole-microsecond timestamps (ns precision in the file), cent prices. */
const sessionTicks = (rng: Rng, day: number, startPrice: number, ticksPerMinute: number): { ticks: TickRows; last: number } => {
  const dayMs = day * MS_PER_DAY
  const openUtcMs = wallClockToUtcMs(dayMs + SESSION_OPEN_MIN * 60_000, "America/New_York")
  const counts = new Int32Array(SESSION_MINUTES)
  let n = 0
  for (let m = 0; m < SESSION_MINUTES; m++) {
    counts[m] = 1 + rng.int(2 * ticksPerMinute - 1)
    n += counts[m]
  }
  const ticks: TickRows = { kind: "tick", ts: new BigInt64Array(n), price: new Float64Array(n), size: new Float64Array(n) }
  let price = startPrice
  const sigma = 0.0004 / Math.sqrt(ticksPerMinute)
  let k = 0
  for (let m = 0; m < SESSION_MINUTES; m++) {
    const minuteStartUs = (openUtcMs + m * 60_000) * 1000
    const offsets: number[] = []
    for (let j = 0; j < counts[m]; j++) offsets.push(rng.int(60_000_000))
    offsets.sort((a, b) => a - b)
    for (let j = 0; j < counts[m]; j++) {
      price = Math.max(0.01, price * (1 + sigma * rng.normal()))
      ticks.ts[k] = BigInt(minuteStartUs + offsets[j]) * 1000n
      ticks.price[k] = cents(price)
      ticks.size[k] = 100 * (1 + rng.int(10))
      k++
    }
  }
  return { ticks, last: price }
}

const toBarRows = (ticks: TickRows, widthMs: number): BarRows => {
  const tsMs = int64ToEpochMs(ticks.ts, "ns")
  const bars = resampleTicks(tsMs, ticks.price, ticks.size, widthMs)
  return {
    kind: "bar",
    ts: BigInt64Array.from(bars.ts, (ms) => BigInt(ms) * NS_PER_MS),
    open: bars.open,
    high: bars.high,
    low: bars.low,
    close: bars.close,
    volume: bars.volume,
    synthetic: bars.synthetic
  }
}

export const generateCatalogAsync = async (opts: GenerateOptions): Promise<GenerateSummary> => {
  if (!(isoToDay(opts.end) >= isoToDay(opts.start))) {
    throw new DataRequestError({ field: "end", value: opts.end, reason: `is before start ${opts.start} (or not a YYYY-MM-DD date)` })
  }
  const gaps = opts.gaps ?? []
  const ticksPerMinute = opts.ticksPerMinute ?? 10
  let files = 0
  let rows = 0
  const intradayFreqs = opts.freqs.filter((f) => f !== "1d")
  for (const symbol of opts.symbols) {
    const days = tradingDays(opts.start, opts.end, symbol, gaps)
    if (opts.freqs.includes("1d")) {
      const r = await writeCatalogRows(opts.root, "1d", symbol, dailyBars(symbol, opts.seed, days), { replace: true, rowGroupSize: opts.rowGroupSize })
      files += r.files
      rows += r.rows
    }
    if (intradayFreqs.length === 0) continue
    const rng = new Rng(hashSeed(opts.seed, symbol, "intraday"))
    let price = 20 + rng.next() * 180
    for (const day of days) {
      const { ticks, last } = sessionTicks(rng, day, price, ticksPerMinute)
      price = last
      for (const freq of intradayFreqs) {
        const rowsOfFreq = freq === "tick" ? ticks : toBarRows(ticks, FREQ_MS[freq])
        const r = await writeCatalogRows(opts.root, freq, symbol, rowsOfFreq, { replace: true, rowGroupSize: opts.rowGroupSize })
        files += r.files
        rows += r.rows
      }
    }
  }
  return { symbols: [...opts.symbols], files, rows }
}
