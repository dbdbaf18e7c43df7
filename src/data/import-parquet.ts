/**
 * Parquet → catalog, row group by row group. hyparquet reads only the byte ranges of the
 * needed columns of one row group at a time from an open file handle, so a file of any size
 * streams through with one row group (plus the partitions being filled) in memory.
 * hyparquet is used here rather than parquet-wasm because parquet-wasm wants the whole file
 * in memory, and because it keeps timestamps as exact int64 (any unit, INT96 too), decodes
 * DECIMAL to numbers and dictionary-encoded strings to strings.
 */
import { promises as fs } from "node:fs"
import { parquetRead, type AsyncBuffer, type FileMetaData, type SchemaElement } from "hyparquet"
import { compressors } from "hyparquet-compressors"
import { DataRequestError, isDataError, ParquetReadError } from "./errors.js"
import { RAW_PARSERS, readFooterMetadata } from "./parquet-footer.js"
import { findColumn, isNumeric, leafColumns, resolveColumns, type ColumnMapping, type TsEncoding } from "./parquet-schema.js"
import { ImportSink, type RowChunk, type SourceColumns } from "./import-sink.js"
import { MS_PER_DAY, wallClockToUtcMs, type TimeUnit } from "./time.js"

const NS_PER: Record<TimeUnit, bigint> = { s: 1_000_000_000n, ms: 1_000_000n, us: 1_000n, ns: 1n }
const NS_PER_DAY = BigInt(MS_PER_DAY) * 1_000_000n

/** Positional reads on an open handle: hyparquet asks for byte ranges, never the whole file. */
const handleBuffer = (handle: fs.FileHandle, size: number): AsyncBuffer => ({
  byteLength: size,
  slice: async (start: number, end?: number) => {
    const stop = Math.min(end ?? size, size)
    const buf = new Uint8Array(Math.max(0, stop - start))
    let done = 0
    while (done < buf.length) {
      const { bytesRead } = await handle.read(buf, done, buf.length - done, start + done)
      if (bytesRead === 0) break
      done += bytesRead
    }
    return buf.buffer
  }
})

export interface ParquetImportColumns {
  readonly mapping: ColumnMapping
  /** the file's columns each field was read from, for the summary */
  readonly used: Readonly<Record<string, string>>
}

/** A function turning one raw ts value (as hyparquet yields it with RAW_PARSERS) into ns UTC, or null. */
const tsConverter = (enc: TsEncoding): ((v: unknown) => bigint | null) => {
  if (enc.kind === "int96") return (v) => (typeof v === "bigint" ? v : null)
  if (enc.kind === "date32") return (v) => (typeof v === "number" && Number.isInteger(v) ? BigInt(v) * NS_PER_DAY : null)
  const scale = NS_PER[enc.unit]
  // a double of epoch seconds or ms near the present holds ~0.2 µs: its fraction is kept to the µs, not to made-up ns
  const fracUnits = enc.unit === "s" ? 1e6 : enc.unit === "ms" ? 1e3 : Number(scale)
  const fracScale = scale / BigInt(fracUnits)
  return (v) => {
    if (typeof v === "bigint") return scale === 1n ? v : v * scale
    if (typeof v === "number" && Number.isFinite(v) && Math.abs(v) < 1e19) {
      const whole = Math.floor(v)
      return BigInt(whole) * scale + BigInt(Math.round((v - whole) * fracUnits)) * fracScale
    }
    return null
  }
}

/** Wall-clock ns (a TIMESTAMP without zone) → UTC ns in `timeZone`, offsets cached per hour. */
const wallToUtc = (timeZone: string) => {
  const cache = new Map<number, number>()
  return (ns: bigint): bigint => {
    const hour = Number(ns / 3_600_000_000_000n)
    let shiftMs = cache.get(hour)
    if (shiftMs === undefined) {
      const wallMs = hour * 3_600_000
      shiftMs = wallClockToUtcMs(wallMs, timeZone) - wallMs
      cache.set(hour, shiftMs)
    }
    return ns + BigInt(shiftMs) * 1_000_000n
  }
}

const describe = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split("\n")[0].slice(0, 300)

export interface ParquetImportOptions {
  readonly file: string
  readonly mapping: ColumnMapping
  /** time zone of TIMESTAMP columns written without a zone (isAdjustedToUTC = false) */
  readonly timezone: string
  /** daily bars are stamped 00:00 UTC of their date, whatever the zone */
  readonly dailyBars: boolean
  /** a file without a symbol column files every row under this symbol */
  readonly symbol?: string
  readonly onProgress?: (rowsDone: number, rowsTotal: number) => void
}

/** Which file columns feed which fields; throws NotTickDataError naming what the file has. */
export const planParquetImport = (file: string, metadata: FileMetaData, mapping: ColumnMapping) => {
  const resolved = resolveColumns(file, metadata, mapping)
  const leaves = leafColumns(metadata)
  const numeric = (field: "bid" | "ask"): string | undefined => {
    const el = findColumn(leaves, field, mapping)
    return el && isNumeric(el) ? el.name : undefined
  }
  const symbolEl = findColumn(leaves, "symbol", mapping)
  if (mapping.symbol !== undefined && !symbolEl) {
    throw new DataRequestError({ field: "--columns symbol", value: mapping.symbol, reason: `is not a column of ${file} (columns: ${leaves.map((e) => e.name).join(", ")})` })
  }
  const tsEl = leaves.find((e) => e.name === resolved.ts) as SchemaElement
  return {
    resolved,
    bid: resolved.kind === "tick" ? numeric("bid") : undefined,
    ask: resolved.kind === "tick" ? numeric("ask") : undefined,
    symbol: symbolEl?.name,
    // a TIMESTAMP written without a zone holds wall-clock times
    wallClock: tsEl.logical_type?.type === "TIMESTAMP" && tsEl.logical_type.isAdjustedToUTC === false
  }
}

/** Reads the file row group by row group into the sink. The caller creates, commits or aborts the sink. */
export const readParquetInto = async (
  opts: ParquetImportOptions,
  makeSink: (columns: SourceColumns, hasSymbolColumn: boolean) => ImportSink
): Promise<{ sink: ImportSink; rows: number }> => {
  const { file } = opts
  const { metadata, size } = await readFooterMetadata(file)
  let plan: ReturnType<typeof planParquetImport>
  try {
    plan = planParquetImport(file, metadata, opts.mapping)
  } catch (e) {
    // a footer that parses but describes nonsense (a corrupted schema) is still the file's fault
    if (isDataError(e)) throw e
    throw new ParquetReadError({ file, reason: `the footer's schema cannot be used (${describe(e)}): corrupted footer` })
  }
  const r = plan.resolved
  if (!plan.symbol && opts.symbol === undefined) {
    throw new DataRequestError({ field: "--symbol", value: "", reason: `is needed: ${file} has no symbol column; say which symbol its rows are, e.g. --symbol SPY` })
  }
  const sink = makeSink(
    { open: !!r.open, high: !!r.high, low: !!r.low, volume: !!r.volume, bid: !!plan.bid, ask: !!plan.ask },
    plan.symbol !== undefined
  )
  const toNs = tsConverter(r.tsEncoding)
  const shift = plan.wallClock && !opts.dailyBars && opts.timezone !== "UTC" ? wallToUtc(opts.timezone) : undefined
  const fields: Array<[keyof RowChunk & string, string | undefined]> = [
    ["price", r.close],
    ["open", r.open],
    ["high", r.high],
    ["low", r.low],
    ["volume", r.volume],
    ["bid", plan.bid],
    ["ask", plan.ask]
  ]
  const columns = [...new Set([r.ts, ...fields.map(([, c]) => c), plan.symbol].filter((c): c is string => c !== undefined))]
  const total = Number(metadata.num_rows)
  let handle: fs.FileHandle
  try {
    handle = await fs.open(file, "r")
  } catch (e) {
    throw new ParquetReadError({ file, reason: describe(e) })
  }
  try {
    return await readGroups()
  } catch (e) {
    await sink.abort()
    throw e
  } finally {
    await handle.close()
  }

  async function readGroups() {
    const buffer = handleBuffer(handle, size)
    let rowStart = 0
    let done = 0
    for (let g = 0; g < metadata.row_groups.length; g++) {
      const n = Number(metadata.row_groups[g].num_rows)
      if (!Number.isSafeInteger(n) || n < 0 || n > total) {
        throw new ParquetReadError({ file, reason: `row group ${g} claims ${metadata.row_groups[g].num_rows} rows (the file has ${total}): corrupted footer` })
      }
      if (n === 0) continue
      const ts = new BigInt64Array(n)
      const tsValid = new Uint8Array(n)
      const nums: Record<string, Float64Array> = {}
      for (const [, c] of fields) if (c !== undefined) nums[c] ??= new Float64Array(n).fill(Number.NaN)
      const symbols: string[] | undefined = plan.symbol ? new Array<string>(n).fill("") : undefined
      let filled = 0
      try {
        await parquetRead({
          file: buffer,
          metadata,
          columns,
          rowStart,
          rowEnd: rowStart + n,
          parsers: RAW_PARSERS,
          compressors,
          onChunk: (chunk) => {
            const from = Math.max(chunk.rowStart, rowStart)
            const to = Math.min(chunk.rowEnd, rowStart + n)
            const data = chunk.columnData as ArrayLike<unknown>
            const off = from - chunk.rowStart
            const at = from - rowStart
            if (chunk.columnName === r.ts) {
              for (let i = 0; i < to - from; i++) {
                let v = toNs(data[off + i])
                if (v !== null) {
                  if (shift) v = shift(v)
                  ts[at + i] = v
                  tsValid[at + i] = 1
                }
              }
              filled += to - from
            }
            if (symbols && chunk.columnName === plan.symbol) {
              for (let i = 0; i < to - from; i++) {
                const v = data[off + i]
                symbols[at + i] = v === null || v === undefined ? "" : String(v).trim().toUpperCase()
              }
            }
            const dest = nums[chunk.columnName]
            if (dest) {
              for (let i = 0; i < to - from; i++) {
                const v = data[off + i]
                dest[at + i] = v === null || v === undefined ? Number.NaN : Number(v)
              }
            }
          }
        })
      } catch (e) {
        throw new ParquetReadError({ file, reason: `row group ${g} (rows ${rowStart}..${rowStart + n - 1}) cannot be decoded: ${describe(e)}` })
      }
      if (filled !== n) throw new ParquetReadError({ file, reason: `row group ${g}: decoded ${filled} timestamps, the footer says ${n} rows (corrupted file)` })
      const chunk: RowChunk = {
        n,
        firstRow: rowStart,
        ts,
        tsValid,
        ...(symbols ? { symbols } : {}),
        price: nums[r.close],
        ...(r.open ? { open: nums[r.open] } : {}),
        ...(r.high ? { high: nums[r.high] } : {}),
        ...(r.low ? { low: nums[r.low] } : {}),
        ...(r.volume ? { volume: nums[r.volume] } : {}),
        ...(plan.bid ? { bid: nums[plan.bid] } : {}),
        ...(plan.ask ? { ask: nums[plan.ask] } : {})
      }
      await sink.push(chunk)
      rowStart += n
      done += n
      opts.onProgress?.(done, total)
    }
    return { sink, rows: done }
  }
}
