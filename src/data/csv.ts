/**
 * CSV → catalog. Parsed with csv-parse as a stream (progress by bytes read); wall-clock times
 * are turned into UTC with the given IANA time zone through Intl, and kept to the nanosecond
 * (fractions of a second up to 9 digits go straight into the int64 ns, never through a double).
 *
 * Daily bars: the date is the trading day's label, so a 1d bar is stamped 00:00 UTC of that
 * date whatever the time zone (turning "2020-03-16" in New York into 04:00 UTC would help no one).
 * Bars with only a close column (monthly-style price lists) get open = high = low = close.
 */
import { createReadStream, promises as fs } from "node:fs"
import { CsvError, parse } from "csv-parse"
import type { Freq } from "../schemas/common.js"
import { CsvImportError, DataRequestError } from "./errors.js"
import { isValidTimeZone, wallClockToUtcMs } from "./time.js"
import type { ImportSink, RowChunk, SourceColumns } from "./import-sink.js"

/** CSV field mapping: tickflow field → CSV header. `date` + `time` for split date/time columns. */
export type CsvColumns = Partial<
  Record<"ts" | "date" | "time" | "open" | "high" | "low" | "close" | "price" | "volume" | "size" | "bid" | "ask" | "symbol", string>
>

export interface ImportCsvOptions {
  readonly file: string
  readonly root: string
  /** the symbol of a file without a symbol column, or the one symbol kept from a file with one */
  readonly symbol?: string
  /** inferred from the timestamps when absent */
  readonly freq?: Freq
  readonly columns?: CsvColumns
  /** IANA zone of wall-clock times without an offset, e.g. "America/New_York" (default UTC) */
  readonly timezone?: string
  /**
   * Format of the time column: tokens YYYY MM M DD D MMM HH H mm ss and S… (fraction digits),
   * other characters literal, e.g. "MM/DD/YYYY HH:mm:ss.SSS"; or "epoch_s" / "epoch_ms" /
   * "epoch_us" / "epoch_ns". Absent: ISO 8601, M/D/YYYY, "Jan 1 2000", YYYYMMDD[ HHmmss]
   * and epoch numbers (unit from the digit count) are recognised.
   */
  readonly dateFormat?: string
  readonly delimiter?: string
}

export type ImportProgress = (bytesRead: number, bytesTotal: number) => void

const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

interface WallTime {
  y: number
  mo: number
  d: number
  h: number
  mi: number
  s: number
  /** fraction of the second in ns */
  fracNs: number
  /** explicit offset from UTC in minutes, when the text had one */
  offsetMin: number | null
}

const fracToNs = (digits: string | undefined): number => (digits ? Number(digits.slice(0, 9).padEnd(9, "0")) : 0)
const offsetToMin = (z: string | undefined): number | null => {
  if (z === undefined || z === "") return null
  if (z === "Z" || z === "z") return 0
  const m = /^([+-])(\d{2}):?(\d{2})$/.exec(z)
  if (!m) return null
  return (m[1] === "-" ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3]))
}

const AUTO_PATTERNS: Array<[RegExp, (m: RegExpExecArray) => WallTime]> = [
  [
    /^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|z|[+-]\d{2}:?\d{2})?$/,
    (m) => ({ y: +m[1], mo: +m[2], d: +m[3], h: +(m[4] ?? 0), mi: +(m[5] ?? 0), s: +(m[6] ?? 0), fracNs: fracToNs(m[7]), offsetMin: offsetToMin(m[8]) })
  ],
  [
    /^(\d{1,2})\/(\d{1,2})\/(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?$/,
    (m) => ({ y: +m[3], mo: +m[1], d: +m[2], h: +(m[4] ?? 0), mi: +(m[5] ?? 0), s: +(m[6] ?? 0), fracNs: fracToNs(m[7]), offsetMin: null })
  ],
  [
    /^([A-Za-z]{3})[a-z]*\.? (\d{1,2}),? (\d{4})$/,
    (m) => ({ y: +m[3], mo: MONTHS.indexOf(m[1].toLowerCase()) + 1, d: +m[2], h: 0, mi: 0, s: 0, fracNs: 0, offsetMin: null })
  ],
  [
    /^(\d{4})(\d{2})(\d{2})(?:[ T]?(\d{2})(\d{2})(\d{2})?(?:\.(\d{1,9}))?)?$/,
    (m) => ({ y: +m[1], mo: +m[2], d: +m[3], h: +(m[4] ?? 0), mi: +(m[5] ?? 0), s: +(m[6] ?? 0), fracNs: fracToNs(m[7]), offsetMin: null })
  ]
]

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/** Compiles a dateFormat like "MM/DD/YYYY HH:mm:ss.SSS" into a parser. */
export const compileDateFormat = (format: string): ((text: string) => WallTime | null) => {
  const tokens = /YYYY|MMM|MM|M|DD|D|HH|H|mm|ss|S+|Z/g
  const order: string[] = []
  let regex = "^"
  let last = 0
  for (let m = tokens.exec(format); m !== null; m = tokens.exec(format)) {
    regex += escapeRegex(format.slice(last, m.index))
    const t = m[0]
    order.push(t.startsWith("S") ? "S" : t)
    regex +=
      t === "YYYY" ? "(\\d{4})" : t === "MMM" ? "([A-Za-z]{3})" : t === "Z" ? "(Z|[+-]\\d{2}:?\\d{2})" : t.startsWith("S") ? "(\\d{1,9})" : t.length === 2 ? "(\\d{2})" : "(\\d{1,2})"
    last = m.index + t.length
  }
  regex += escapeRegex(format.slice(last)) + "$"
  const re = new RegExp(regex)
  return (text) => {
    const m = re.exec(text)
    if (!m) return null
    const w: WallTime = { y: 1970, mo: 1, d: 1, h: 0, mi: 0, s: 0, fracNs: 0, offsetMin: null }
    order.forEach((t, i) => {
      const v = m[i + 1]
      if (t === "YYYY") w.y = +v
      else if (t === "MMM") w.mo = MONTHS.indexOf(v.toLowerCase()) + 1
      else if (t === "MM" || t === "M") w.mo = +v
      else if (t === "DD" || t === "D") w.d = +v
      else if (t === "HH" || t === "H") w.h = +v
      else if (t === "mm") w.mi = +v
      else if (t === "ss") w.s = +v
      else if (t === "S") w.fracNs = fracToNs(v)
      else if (t === "Z") w.offsetMin = offsetToMin(v)
    })
    return w
  }
}

const EPOCH_SCALE: Record<string, bigint> = { epoch_s: 1_000_000_000n, epoch_ms: 1_000_000n, epoch_us: 1_000n, epoch_ns: 1n }

/** Integer epoch text → ns, unit from the format name or (auto) from the number of digits. */
const parseEpoch = (text: string, format: string | undefined): bigint | null => {
  if (!/^-?\d+$/.test(text)) {
    // fractional epoch seconds, e.g. 1583332200.123456
    const m = /^(-?\d+)\.(\d{1,9})$/.exec(text)
    if (!m || (format !== undefined && format !== "epoch_s")) return null
    if (format === undefined && m[1].replace("-", "").length > 11) return null
    return BigInt(m[1]) * 1_000_000_000n + BigInt(m[2].padEnd(9, "0")) * (m[1].startsWith("-") ? -1n : 1n)
  }
  const digits = text.replace("-", "").length
  const scale = format ? EPOCH_SCALE[format] : digits >= 17 ? 1n : digits >= 14 ? 1_000n : digits >= 11 ? 1_000_000n : 1_000_000_000n
  // auto: 8-digit numbers are YYYYMMDD dates, not epoch seconds
  if (!format && digits === 8) return null
  return BigInt(text) * scale
}

export interface TimestampParser {
  /** int64 ns UTC, or null when the text does not parse */
  (text: string): bigint | null
}

/** Builds the text → ns parser for one import. */
export const makeTimestampParser = (opts: { dateFormat?: string; timezone?: string; dailyBars: boolean }): TimestampParser => {
  const tz = opts.timezone ?? "UTC"
  const epochFormat = opts.dateFormat?.startsWith("epoch_") ? opts.dateFormat : undefined
  const custom = opts.dateFormat && !epochFormat ? compileDateFormat(opts.dateFormat) : undefined
  return (raw) => {
    const text = raw.trim()
    if (epochFormat || (!custom && /^-?\d+(\.\d+)?$/.test(text))) {
      const ns = parseEpoch(text, epochFormat)
      if (ns !== null) return ns
      if (epochFormat) return null
    }
    let w: WallTime | null = null
    if (custom) w = custom(text)
    else {
      for (const [re, build] of AUTO_PATTERNS) {
        const m = re.exec(text)
        if (m) {
          w = build(m)
          break
        }
      }
    }
    if (!w || w.mo < 1 || w.mo > 12 || w.d < 1 || w.d > 31 || w.h > 23 || w.mi > 59 || w.s > 60) return null
    const dayMs = Date.UTC(w.y, w.mo - 1, w.d)
    const check = new Date(dayMs)
    if (check.getUTCDate() !== w.d || check.getUTCMonth() !== w.mo - 1) return null
    if (opts.dailyBars) return BigInt(dayMs) * 1_000_000n
    const wallMs = dayMs + ((w.h * 60 + w.mi) * 60 + w.s) * 1000
    const utcMs = w.offsetMin !== null ? wallMs - w.offsetMin * 60_000 : wallClockToUtcMs(wallMs, tz)
    return BigInt(utcMs) * 1_000_000n + BigInt(w.fracNs)
  }
}

const HEADER_CANDIDATES: Record<keyof CsvColumns, ReadonlyArray<string>> = {
  ts: ["ts", "timestamp", "datetime", "date_time", "time"],
  date: ["date", "day"],
  time: ["time"],
  open: ["open", "o"],
  high: ["high", "h"],
  low: ["low", "l"],
  close: ["close", "c", "last", "adj close", "adj_close", "adjclose"],
  price: ["price", "px", "trade_price"],
  volume: ["volume", "vol", "v"],
  size: ["size", "qty", "quantity", "shares"],
  bid: ["bid"],
  ask: ["ask"],
  symbol: ["symbol", "ticker"]
}

/** Column positions of each field from the header row and the mapping. */
const resolveHeader = (file: string, header: ReadonlyArray<string>, mapping: CsvColumns, isTick: boolean) => {
  const lower = header.map((h) => h.trim().toLowerCase())
  const find = (field: keyof CsvColumns): number | undefined => {
    const wanted = mapping[field]
    if (wanted !== undefined) {
      const i = header.findIndex((h) => h.trim() === wanted)
      const j = i >= 0 ? i : lower.indexOf(wanted.toLowerCase())
      if (j < 0) {
        throw new CsvImportError({ file, line: 1, column: field, value: wanted, reason: `is not a column of the header (${header.join(", ")})` })
      }
      return j
    }
    for (const name of HEADER_CANDIDATES[field]) {
      const i = lower.indexOf(name)
      if (i >= 0) return i
    }
    return undefined
  }
  // one time column (ts), or a date column plus a time column (date + time)
  let ts: number | undefined
  let date: number | undefined
  let time: number | undefined
  if (mapping.date !== undefined || (mapping.ts !== undefined && mapping.time !== undefined)) {
    date = mapping.date !== undefined ? find("date") : find("ts")
    time = find("time")
  } else if (mapping.ts !== undefined) {
    ts = find("ts")
  } else {
    ts = ["ts", "timestamp", "datetime", "date_time"].map((n) => lower.indexOf(n)).find((i) => i >= 0)
    if (ts === undefined) {
      const d = lower.indexOf("date")
      const t = lower.indexOf("time")
      if (d >= 0 && t >= 0) {
        date = d
        time = t
      } else ts = d >= 0 ? d : t >= 0 ? t : undefined
    }
  }
  const priceField = isTick ? (find("price") !== undefined ? "price" : "close") : find("close") !== undefined ? "close" : "price"
  const price = find(priceField)
  if ((ts === undefined && (date === undefined || time === undefined)) || price === undefined) {
    const missing = [ts === undefined && (date === undefined || time === undefined) ? "ts (or date + time)" : "", price === undefined ? (isTick ? "price" : "close") : ""].filter(Boolean)
    throw new CsvImportError({
      file,
      line: 1,
      column: missing.join(", "),
      value: header.join(","),
      reason: `has no ${missing.join(" or ")} column; name it with --columns, e.g. --columns ts=Date,${isTick ? "price" : "close"}=Close`
    })
  }
  return {
    ts,
    date,
    time,
    price: { index: price, name: header[price] },
    open: find("open"),
    high: find("high"),
    low: find("low"),
    volume: isTick ? (find("size") ?? find("volume")) : (find("volume") ?? find("size")),
    bid: isTick ? find("bid") : undefined,
    ask: isTick ? find("ask") : undefined,
    // a symbol/ticker column: every symbol is imported as its own series (or --symbol picks one)
    symbol: find("symbol")
  }
}

const CHUNK_ROWS = 65_536

/**
 * Streams a CSV into an import sink in chunks of rows. A cell that is not a time or not a
 * number stops the import with its line, column and value (a malformed file is refused, not
 * half-read); checks on the values themselves (prices, order) are counted by the sink.
 */
export const readCsvInto = async (
  opts: ImportCsvOptions,
  makeSink: (columns: SourceColumns, hasSymbolColumn: boolean) => ImportSink,
  onProgress?: ImportProgress
): Promise<{ sink: ImportSink; rows: number }> => {
  const file = opts.file
  if (opts.timezone !== undefined && !isValidTimeZone(opts.timezone)) {
    throw new DataRequestError({ field: "timezone", value: opts.timezone, reason: "is not an IANA time zone name; use e.g. America/New_York, Europe/London or UTC" })
  }
  let total: number
  try {
    total = (await fs.stat(file)).size
  } catch (e) {
    throw new DataRequestError({ field: "file", value: file, reason: `cannot be opened (${(e as Error).message}); check the path` })
  }
  const dailyBars = opts.freq === "1d"
  const parseTs = makeTimestampParser({ dateFormat: opts.dateFormat, timezone: opts.timezone, dailyBars })
  let layout: ReturnType<typeof resolveHeader> | undefined
  let header: string[] = []
  let sink: ImportSink | undefined
  let isTick = opts.freq === "tick"

  const stream = createReadStream(file)
  let bytesRead = 0
  let lastReport = 0
  stream.on("data", (chunk) => {
    bytesRead += chunk.length
    if (onProgress && (bytesRead - lastReport > 256 * 1024 || bytesRead === total)) {
      lastReport = bytesRead
      onProgress(bytesRead, total)
    }
  })
  let rows = 0
  let buf = newChunkBuffer()
  const flush = async () => {
    if (buf.n === 0) return
    await sink!.push(chunkOf(buf, layout!))
    buf = newChunkBuffer()
  }
  const parser = stream.pipe(parse({ bom: true, skip_empty_lines: true, relax_column_count: true, info: true, delimiter: opts.delimiter ?? "," }))
  try {
    for await (const item of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      const { record, info } = item
      const line = info.lines
      if (!layout) {
        header = record.map((h) => h.trim())
        if (opts.freq === undefined) {
          // no frequency asked: a price column without a close column means ticks
          const lower = header.map((h) => h.toLowerCase())
          isTick = !HEADER_CANDIDATES.close.some((c) => lower.includes(c)) && HEADER_CANDIDATES.price.some((c) => lower.includes(c))
        }
        layout = resolveHeader(file, header, opts.columns ?? {}, isTick)
        if (layout.symbol === undefined && opts.symbol === undefined) {
          throw new DataRequestError({ field: "--symbol", value: "", reason: `is needed: ${file} has no symbol column (${header.join(", ")}); say which symbol its rows are, e.g. --symbol SPY` })
        }
        sink = makeSink(
          { open: layout.open !== undefined, high: layout.high !== undefined, low: layout.low !== undefined, volume: layout.volume !== undefined, bid: layout.bid !== undefined, ask: layout.ask !== undefined },
          layout.symbol !== undefined
        )
        continue
      }
      const cell = (i: number) => record[i] ?? ""
      const tsText = layout.ts !== undefined ? cell(layout.ts) : `${cell(layout.date!).trim()} ${cell(layout.time!).trim()}`
      const ns = parseTs(tsText)
      if (ns === null) {
        throw new CsvImportError({
          file,
          line,
          column: layout.ts !== undefined ? header[layout.ts] : `${header[layout.date!]}+${header[layout.time!]}`,
          value: tsText.slice(0, 100),
          reason: `is not a time${opts.dateFormat ? ` in the format ${opts.dateFormat}` : ""}; give --date-format (e.g. "MM/DD/YYYY HH:mm:ss") or fix the value`
        })
      }
      const num = (index: number | undefined, required: boolean): number => {
        if (index === undefined) return Number.NaN
        const text = cell(index).trim()
        const v = text === "" && !required ? Number.NaN : Number(text)
        if (!Number.isFinite(v) && (required || text !== "")) {
          throw new CsvImportError({ file, line, column: header[index], value: cell(index).slice(0, 100), reason: "is not a number" })
        }
        return v
      }
      const at = buf.n++
      if (at === 0) buf.firstRow = line
      buf.ts[at] = ns
      buf.price[at] = num(layout.price.index, true)
      buf.open[at] = num(layout.open, true)
      buf.high[at] = num(layout.high, true)
      buf.low[at] = num(layout.low, true)
      buf.volume[at] = num(layout.volume, false)
      buf.bid[at] = num(layout.bid, false)
      buf.ask[at] = num(layout.ask, false)
      if (layout.symbol !== undefined) buf.symbols[at] = cell(layout.symbol).trim().toUpperCase()
      rows++
      if (buf.n === CHUNK_ROWS) await flush()
    }
    if (!layout) throw new CsvImportError({ file, line: 1, column: "-", value: "", reason: "is empty: no header row" })
    await flush()
  } catch (e) {
    stream.destroy()
    await sink?.abort()
    if (e instanceof CsvError) {
      // csv-parse's own errors (an unclosed quote, a bad delimiter) are the file's fault too
      throw new CsvImportError({ file, line: (e as CsvError & { lines?: number }).lines ?? 0, column: "-", value: "", reason: `cannot be parsed as CSV: ${e.message.slice(0, 200)}` })
    }
    throw e
  }
  onProgress?.(total, total)
  return { sink: sink!, rows }
}

interface ChunkBuffer {
  n: number
  firstRow: number
  ts: BigInt64Array
  price: Float64Array
  open: Float64Array
  high: Float64Array
  low: Float64Array
  volume: Float64Array
  bid: Float64Array
  ask: Float64Array
  symbols: string[]
}

const newChunkBuffer = (): ChunkBuffer => ({
  n: 0,
  firstRow: 0,
  ts: new BigInt64Array(CHUNK_ROWS),
  price: new Float64Array(CHUNK_ROWS),
  open: new Float64Array(CHUNK_ROWS),
  high: new Float64Array(CHUNK_ROWS),
  low: new Float64Array(CHUNK_ROWS),
  volume: new Float64Array(CHUNK_ROWS),
  bid: new Float64Array(CHUNK_ROWS),
  ask: new Float64Array(CHUNK_ROWS),
  symbols: []
})

const chunkOf = (b: ChunkBuffer, layout: ReturnType<typeof resolveHeader>): RowChunk => ({
  n: b.n,
  firstRow: b.firstRow,
  ts: b.ts.subarray(0, b.n),
  price: b.price.subarray(0, b.n),
  ...(layout.open !== undefined ? { open: b.open.subarray(0, b.n) } : {}),
  ...(layout.high !== undefined ? { high: b.high.subarray(0, b.n) } : {}),
  ...(layout.low !== undefined ? { low: b.low.subarray(0, b.n) } : {}),
  ...(layout.volume !== undefined ? { volume: b.volume.subarray(0, b.n) } : {}),
  ...(layout.bid !== undefined ? { bid: b.bid.subarray(0, b.n) } : {}),
  ...(layout.ask !== undefined ? { ask: b.ask.subarray(0, b.n) } : {}),
  ...(layout.symbol !== undefined ? { symbols: b.symbols } : {})
})
