/**
 * Reading Parquet files into price columns.
 *
 * hyparquet parses footers (metadata, row-group statistics) from the file tail only, which is
 * what coverage and row-group selection need. Bulk decoding of data pages goes to the decoder
 * bench/load.ts measured faster: parquet-wasm (arrow-rs compiled to WebAssembly) by default,
 * hyparquet as the alternative (`decoder: "hyparquet"`), which also serves as the fallback
 * when a file uses something parquet-wasm cannot decode.
 */
import { promises as fs } from "node:fs"
import { parquetMetadata, parquetRead, type FileMetaData, type SchemaElement } from "hyparquet"
import { compressors } from "hyparquet-compressors"
import { readParquet } from "parquet-wasm"
import { readParquetViaFfi, type FfiColumn } from "./wasm-ffi.js"
import { tableFromIPC, type Data as ArrowData } from "apache-arrow"
import { NotTickDataError, ParquetReadError } from "./errors.js"
import { int64ToEpochMs, MS_PER_DAY, type TimeUnit, UNITS_PER_MS } from "./time.js"

export type Decoder = "parquet-wasm" | "hyparquet"
/** Chosen by bench/load.ts: parquet-wasm decoded 2M ticks ~3× faster than hyparquet here. */
export const DEFAULT_DECODER: Decoder = "parquet-wasm"

/** Names of the price fields a file's columns can be mapped to. */
export type PriceField = "ts" | "close" | "price" | "open" | "high" | "low" | "volume" | "size" | "bid" | "ask" | "synthetic"

/**
 * Maps tickflow field names to a file's column names, e.g. `{ ts: "time", close: "px" }`;
 * `tsUnit` says the unit of a plain integer/float time column (inferred from magnitude if absent).
 */
export type ColumnMapping = Partial<Record<PriceField, string>> & { readonly tsUnit?: TimeUnit }

/** Column names tried, case-insensitively, when a field is not mapped. */
const DEFAULT_NAMES: Record<PriceField, ReadonlyArray<string>> = {
  ts: ["ts", "timestamp", "time", "datetime", "date"],
  close: ["close"],
  price: ["price"],
  open: ["open"],
  high: ["high"],
  low: ["low"],
  volume: ["volume"],
  size: ["size", "qty", "quantity"],
  bid: ["bid"],
  ask: ["ask"],
  synthetic: ["synthetic"]
}

/** How a timestamp column's stored values become epoch ms. */
export type TsEncoding =
  | { readonly kind: "int64"; readonly unit: TimeUnit }
  | { readonly kind: "number"; readonly unit: TimeUnit }
  | { readonly kind: "date32" }
  | { readonly kind: "int96" }

export interface ResolvedColumns {
  readonly kind: "tick" | "bar"
  readonly ts: string
  readonly tsEncoding: TsEncoding
  /** close for bars, price for ticks */
  readonly close: string
  readonly open?: string
  readonly high?: string
  readonly low?: string
  /** volume for bars, size for ticks */
  readonly volume?: string
  readonly synthetic?: string
  /** a DECIMAL column is read: hyparquet decodes those to doubles, parquet-wasm to Decimal128 */
  readonly hasDecimal?: boolean
}

export interface RowGroupInfo {
  readonly index: number
  readonly rows: number
  /** first row of the group within the file */
  readonly rowStart: number
  /** ts statistics in epoch ms, null when the writer kept none */
  readonly minMs: number | null
  readonly maxMs: number | null
}

export interface FileFooter {
  readonly file: string
  readonly size: number
  readonly metadata: FileMetaData
  readonly columns: ResolvedColumns
  readonly rowGroups: ReadonlyArray<RowGroupInfo>
  readonly rows: number
  readonly keyValues: Readonly<Record<string, string>>
}

/** Timestamps and 64-bit statistics stay raw bigints: hyparquet's default makes Date(ms) and drops ns. */
export const RAW_PARSERS = {
  timestampFromMilliseconds: (v: bigint) => v,
  timestampFromMicroseconds: (v: bigint) => v,
  timestampFromNanoseconds: (v: bigint) => v,
  dateFromDays: (d: number) => d
}

/** Counts footer parses, so tests can prove a cached coverage rebuild read none. */
export const footerCounters = { reads: 0 }

const TAIL_BYTES = 64 * 1024

const readRange = async (handle: fs.FileHandle, start: number, length: number): Promise<Uint8Array> => {
  const buf = new Uint8Array(length)
  let done = 0
  while (done < length) {
    const { bytesRead } = await handle.read(buf, done, length - done, start + done)
    if (bytesRead === 0) break
    done += bytesRead
  }
  return done === length ? buf : buf.subarray(0, done)
}

/** Parses a file's footer from its tail alone (one read, two when the footer exceeds 64 KiB). */
export const readFooterMetadata = async (file: string): Promise<{ metadata: FileMetaData; size: number }> => {
  let handle: fs.FileHandle
  try {
    handle = await fs.open(file, "r")
  } catch (e) {
    throw new ParquetReadError({ file, reason: (e as Error).message })
  }
  try {
    const { size } = await handle.stat()
    if (size < 12) throw new ParquetReadError({ file, reason: `only ${size} bytes, too short for a Parquet file` })
    let tail = await readRange(handle, Math.max(0, size - TAIL_BYTES), Math.min(size, TAIL_BYTES))
    const view = new DataView(tail.buffer, tail.byteOffset, tail.byteLength)
    if (view.getUint32(tail.byteLength - 4, true) !== 0x31524150) {
      throw new ParquetReadError({
        file,
        reason: `the file does not end with the PAR1 magic bytes (${size} bytes; truncated, still being written, or not Parquet)`
      })
    }
    const footerLength = view.getUint32(tail.byteLength - 8, true)
    if (footerLength + 8 > size - 4) {
      throw new ParquetReadError({ file, reason: `footer length ${footerLength} exceeds the file size ${size} (corrupted footer)` })
    }
    if (footerLength + 8 > tail.byteLength) tail = await readRange(handle, size - footerLength - 8, footerLength + 8)
    footerCounters.reads++
    try {
      return { metadata: parquetMetadata(tail, { parsers: RAW_PARSERS, geoparquet: false }), size }
    } catch (e) {
      throw new ParquetReadError({ file, reason: `corrupted footer: ${(e as Error).message}` })
    }
  } finally {
    await handle.close()
  }
}

/** Top-level leaf columns of a flat schema. */
const leafColumns = (metadata: FileMetaData): SchemaElement[] => metadata.schema.slice(1).filter((e) => e.type !== undefined)

const findColumn = (
  leaves: SchemaElement[],
  field: PriceField,
  mapping: ColumnMapping
): SchemaElement | undefined => {
  const wanted = mapping[field]
  if (wanted !== undefined) return leaves.find((e) => e.name === wanted) ?? leaves.find((e) => e.name.toLowerCase() === wanted.toLowerCase())
  for (const name of DEFAULT_NAMES[field]) {
    const hit = leaves.find((e) => e.name.toLowerCase() === name)
    if (hit) return hit
  }
  return undefined
}

/** Unit of a plain number column guessed from a sample magnitude (the year-2000..2200 window of each unit). */
export const inferTimeUnit = (sample: number): TimeUnit => {
  const v = Math.abs(sample)
  if (v >= 1e17) return "ns"
  if (v >= 1e14) return "us"
  if (v >= 1e11) return "ms"
  return "s"
}

const statNumber = (v: unknown): number | null =>
  typeof v === "bigint" ? Number(v) : typeof v === "number" ? v : null

const tsEncodingOf = (el: SchemaElement, mapping: ColumnMapping, sample: unknown, file: string, found: string[]): TsEncoding => {
  const lt = el.logical_type
  if (lt?.type === "TIMESTAMP") {
    const unit: TimeUnit = lt.unit === "NANOS" ? "ns" : lt.unit === "MICROS" ? "us" : "ms"
    return { kind: "int64", unit }
  }
  if (el.converted_type === "TIMESTAMP_MILLIS") return { kind: "int64", unit: "ms" }
  if (el.converted_type === "TIMESTAMP_MICROS") return { kind: "int64", unit: "us" }
  if (el.converted_type === "DATE" || lt?.type === "DATE") return { kind: "date32" }
  if (el.type === "INT96") return { kind: "int96" }
  const unitFromSample = () => {
    const n = statNumber(sample)
    return mapping.tsUnit ?? (n === null ? "ns" : inferTimeUnit(n))
  }
  if (el.type === "INT64") return { kind: "int64", unit: unitFromSample() }
  if (el.type === "INT32" || el.type === "DOUBLE" || el.type === "FLOAT") return { kind: "number", unit: unitFromSample() }
  throw new NotTickDataError({
    file,
    missing: [`ts (column ${el.name} is ${el.type}${el.converted_type ? `/${el.converted_type}` : ""}, not a timestamp or number)`],
    found
  })
}

/** Epoch ms of a raw ts statistic. */
const statToMs = (v: unknown, enc: TsEncoding): number | null => {
  if (v === undefined || v === null) return null
  if (enc.kind === "date32") return typeof v === "number" ? v * MS_PER_DAY : null
  if (enc.kind === "int96") return null
  if (typeof v === "bigint") {
    if (enc.unit === "ns") return Number(v / 1_000_000n) + Number(v % 1_000_000n) / 1e6
    if (enc.unit === "us") return Number(v / 1000n) + Number(v % 1000n) / 1e3
    return Number(v) / UNITS_PER_MS[enc.unit]
  }
  if (typeof v === "number") return v / UNITS_PER_MS[enc.unit]
  return null
}

const NUMERIC: ReadonlyArray<string | undefined> = ["INT32", "INT64", "FLOAT", "DOUBLE"]
const isDecimal = (e: SchemaElement) => e.converted_type === "DECIMAL" || e.logical_type?.type === "DECIMAL"
/** Numbers we can read as doubles: plain numeric types and DECIMAL (as many tools write prices). */
const isNumeric = (e: SchemaElement) => NUMERIC.includes(e.type) || isDecimal(e)

/** Which columns of a file are the timestamp and prices; throws NotTickDataError naming what it found. */
export const resolveColumns = (file: string, metadata: FileMetaData, mapping: ColumnMapping = {}): ResolvedColumns => {
  const leaves = leafColumns(metadata)
  const found = leaves.map((e) => e.name)
  const ts = findColumn(leaves, "ts", mapping)
  const close = findColumn(leaves, "close", mapping)
  const price = close ? undefined : findColumn(leaves, "price", mapping)
  const missing: string[] = []
  if (!ts) missing.push(mapping.ts ?? "ts")
  if (!close && !price) missing.push(mapping.close ?? mapping.price ?? "price/close")
  if (missing.length > 0) throw new NotTickDataError({ file, missing, found })
  const priceEl = (close ?? price)!
  if (!isNumeric(priceEl)) {
    throw new NotTickDataError({ file, missing: [`${close ? "close" : "price"} (column ${priceEl.name} is ${priceEl.type}, not a number)`], found })
  }
  const tsIndex = leaves.indexOf(ts!)
  const sample = metadata.row_groups[0]?.columns[tsIndex]?.meta_data?.statistics
  const tsEncoding = tsEncodingOf(ts!, mapping, sample?.min_value ?? sample?.min, file, found)
  const numeric = (field: PriceField) => {
    const el = findColumn(leaves, field, mapping)
    return el && isNumeric(el) ? el.name : undefined
  }
  const kind = close ? "bar" : "tick"
  const synthetic = findColumn(leaves, "synthetic", mapping)
  const resolved = {
    kind,
    ts: ts!.name,
    tsEncoding,
    close: priceEl.name,
    ...(kind === "bar"
      ? { open: numeric("open"), high: numeric("high"), low: numeric("low"), volume: numeric("volume") }
      : { volume: numeric("size") ?? numeric("volume") }),
    ...(synthetic && synthetic.type === "BOOLEAN" ? { synthetic: synthetic.name } : {})
  } as const
  const used = new Set(columnNames(resolved as ResolvedColumns))
  return { ...resolved, hasDecimal: leaves.some((e) => used.has(e.name) && isDecimal(e)) }
}

/** Reads and interprets a file's footer: resolved columns, row groups with ts statistics, key/values. */
export const readFooter = async (file: string, mapping: ColumnMapping = {}): Promise<FileFooter> => {
  const { metadata, size } = await readFooterMetadata(file)
  const columns = resolveColumns(file, metadata, mapping)
  const leaves = leafColumns(metadata)
  const tsIndex = leaves.findIndex((e) => e.name === columns.ts)
  let rowStart = 0
  const rowGroups = metadata.row_groups.map((rg, index) => {
    const stats = rg.columns[tsIndex]?.meta_data?.statistics
    const rows = Number(rg.num_rows)
    const info: RowGroupInfo = {
      index,
      rows,
      rowStart,
      minMs: statToMs(stats?.min_value ?? stats?.min, columns.tsEncoding),
      maxMs: statToMs(stats?.max_value ?? stats?.max, columns.tsEncoding)
    }
    rowStart += rows
    return info
  })
  const keyValues: Record<string, string> = {}
  for (const kv of metadata.key_value_metadata ?? []) if (kv.value !== undefined) keyValues[kv.key] = kv.value
  return { file, size, metadata, columns, rowGroups, rows: Number(metadata.num_rows), keyValues }
}

/** Decoded price columns of some rows, all as doubles; ts in epoch ms. */
export interface DecodedColumns {
  readonly ts: Float64Array
  readonly close: Float64Array
  readonly open?: Float64Array
  readonly high?: Float64Array
  readonly low?: Float64Array
  readonly volume?: Float64Array
  readonly synthetic?: Uint8Array
}

type NumericField = "close" | "open" | "high" | "low" | "volume"
const NUMERIC_FIELDS: ReadonlyArray<NumericField> = ["close", "open", "high", "low", "volume"]

const allocate = (columns: ResolvedColumns, rows: number) => {
  const out: Record<string, Float64Array | Uint8Array> = { ts: new Float64Array(rows) }
  for (const f of NUMERIC_FIELDS) if (columns[f] !== undefined) out[f] = new Float64Array(rows)
  if (columns.synthetic !== undefined) out.synthetic = new Uint8Array(rows)
  return out as unknown as { -readonly [K in keyof DecodedColumns]: DecodedColumns[K] }
}

const int96ToMs = (words: Int32Array | Uint32Array, n: number, out: Float64Array, at: number) => {
  // INT96: 8 bytes nanoseconds of the day, then 4 bytes Julian day
  const u = new Uint32Array(words.buffer, words.byteOffset, n * 3)
  for (let i = 0; i < n; i++) {
    const nanosOfDay = u[3 * i + 1] * 4294967296 + u[3 * i]
    const julian = u[3 * i + 2]
    out[at + i] = (julian - 2440588) * MS_PER_DAY + nanosOfDay / 1e6
  }
}

/**
 * One decoded chunk of a column, whoever produced it (Arrow JS from IPC, or wasm memory via FFI):
 * `values` starts at the buffer start and `offset` is the first row in it, as in Arrow.
 */
interface Chunk {
  readonly length: number
  readonly offset: number
  readonly nullCount: number
  readonly validity: Uint8Array | null
  readonly values: BigInt64Array | Float64Array | Float32Array | Int32Array | Uint32Array | Int16Array | Uint16Array | Int8Array | Uint8Array
  /** the timestamp unit Arrow attached to the column, when it is a timestamp */
  readonly tsUnit?: TimeUnit
  readonly isDate32?: boolean
  readonly isBool?: boolean
}

const isValid = (c: Chunk, i: number) => {
  const bit = c.offset + i
  return ((c.validity![bit >> 3] >> (bit & 7)) & 1) === 1
}

/** Copies a numeric chunk into a Float64Array, NaN where null. */
const copyNumbers = (c: Chunk, out: Float64Array, at: number) => {
  const n = c.length
  const v = c.values
  if (v instanceof BigInt64Array) {
    for (let i = 0; i < n; i++) out[at + i] = Number(v[c.offset + i])
  } else if (v instanceof Float64Array) {
    out.set(v.subarray(c.offset, c.offset + n), at)
  } else {
    for (let i = 0; i < n; i++) out[at + i] = v[c.offset + i]
  }
  if (c.nullCount > 0 && c.validity) for (let i = 0; i < n; i++) if (!isValid(c, i)) out[at + i] = Number.NaN
}

const copyBools = (c: Chunk, out: Uint8Array, at: number) => {
  const bits = c.values as Uint8Array
  for (let i = 0; i < c.length; i++) {
    const bit = c.offset + i
    out[at + i] = (bits[bit >> 3] >> (bit & 7)) & 1
  }
}

const copyTs = (c: Chunk, enc: TsEncoding, out: Float64Array, at: number) => {
  const n = c.length
  const v = c.values
  if (v instanceof BigInt64Array) {
    // Arrow's own unit wins over the Parquet annotation (parquet-wasm turns INT96 into ns)
    const unit = c.tsUnit ?? (enc.kind === "int64" || enc.kind === "number" ? enc.unit : "ns")
    int64ToEpochMs(v.subarray(c.offset, c.offset + n), unit, out, at)
  } else if (c.isDate32 || enc.kind === "date32") {
    for (let i = 0; i < n; i++) out[at + i] = v[c.offset + i] * MS_PER_DAY
  } else {
    const perMs = UNITS_PER_MS[c.tsUnit ?? (enc.kind === "number" || enc.kind === "int64" ? enc.unit : "ms")]
    for (let i = 0; i < n; i++) out[at + i] = v[c.offset + i] / perMs
  }
  if (c.nullCount > 0 && c.validity) for (let i = 0; i < n; i++) if (!isValid(c, i)) out[at + i] = Number.NaN
}

const ARROW_JS_UNITS: ReadonlyArray<TimeUnit> = ["s", "ms", "us", "ns"]
const chunkFromArrowJs = (d: ArrowData): Chunk => {
  const typeName = String(d.type)
  return {
    length: d.length,
    offset: d.offset,
    nullCount: d.nullCount,
    validity: d.nullBitmap ?? null,
    values: d.values as Chunk["values"],
    tsUnit: typeName.startsWith("Timestamp") ? ARROW_JS_UNITS[(d.type as unknown as { unit: number }).unit] : undefined,
    isDate32: typeName.startsWith("Date") && d.values instanceof Int32Array,
    isBool: typeName === "Bool"
  }
}

/** C Data Interface format string → typed-array view over wasm memory; null for unsupported types. */
const chunkFromFfi = (format: string, memory: ArrayBuffer, ch: FfiColumn["chunks"][number]): Chunk | null => {
  const n = ch.offset + ch.length
  const view = <T>(Ctor: { new (b: ArrayBuffer, o: number, l: number): T; BYTES_PER_ELEMENT: number }) =>
    ch.dataPtr % Ctor.BYTES_PER_ELEMENT === 0 ? new Ctor(memory, ch.dataPtr, n) : null
  const validity = ch.validityPtr !== 0 ? new Uint8Array(memory, ch.validityPtr, Math.ceil(n / 8)) : null
  const base = { length: ch.length, offset: ch.offset, nullCount: ch.nullCount, validity }
  const tsUnits: Record<string, TimeUnit> = { tss: "s", tsm: "ms", tsu: "us", tsn: "ns" }
  let values: Chunk["values"] | null = null
  let tsUnit: TimeUnit | undefined
  if (format.startsWith("ts") && tsUnits[format.slice(0, 3)]) {
    values = view(BigInt64Array)
    tsUnit = tsUnits[format.slice(0, 3)]
  } else if (format === "tdm") {
    values = view(BigInt64Array)
    tsUnit = "ms"
  } else if (format === "tdD") return (values = view(Int32Array)) ? { ...base, values, isDate32: true } : null
  else if (format === "b") return { ...base, values: new Uint8Array(memory, ch.dataPtr, Math.ceil(n / 8)), isBool: true }
  else if (format === "l") values = view(BigInt64Array)
  else if (format === "g") values = view(Float64Array)
  else if (format === "f") values = view(Float32Array)
  else if (format === "i") values = view(Int32Array)
  else if (format === "I") values = view(Uint32Array)
  else if (format === "s") values = view(Int16Array)
  else if (format === "S") values = view(Uint16Array)
  else if (format === "c") values = view(Int8Array)
  else if (format === "C") values = view(Uint8Array)
  return values ? { ...base, values, tsUnit } : null
}

const columnNames = (c: ResolvedColumns): string[] =>
  [c.ts, c.close, c.open, c.high, c.low, c.volume, c.synthetic].filter((x): x is string => x !== undefined)

const decodeWithWasm = (bytes: Uint8Array, footer: FileFooter, groups: ReadonlyArray<number>): DecodedColumns => {
  const c = footer.columns
  const rows = groups.reduce((s, g) => s + footer.rowGroups[g].rows, 0)
  const out = allocate(c, rows)
  if (rows === 0) return out
  const fill = (name: string, chunks: ReadonlyArray<Chunk>) => {
    let at = 0
    for (const chunk of chunks) {
      if (name === c.ts) copyTs(chunk, c.tsEncoding, out.ts, at)
      else if (name === c.synthetic) copyBools(chunk, out.synthetic!, at)
      else for (const f of NUMERIC_FIELDS) if (c[f] === name) copyNumbers(chunk, out[f]!, at)
      at += chunk.length
    }
    if (at !== rows) throw new Error(`column ${name}: decoded ${at} rows, the footer says ${rows}`)
  }
  const options = { rowGroups: [...groups], columns: columnNames(c), batchSize: Math.max(1, rows) }
  let viaFfi: boolean
  try {
    viaFfi = readParquetViaFfi(bytes, options, (columns, memory) => {
      const converted = columns.map((col) => ({ name: col.name, chunks: col.chunks.map((ch) => chunkFromFfi(col.format, memory, ch)) }))
      if (converted.some((col) => col.chunks.some((ch) => ch === null))) throw new FfiUnsupported()
      for (const col of converted) fill(col.name, col.chunks as Chunk[])
    })
  } catch (e) {
    if (!(e instanceof FfiUnsupported)) throw e
    viaFfi = false
  }
  if (viaFfi) return out
  // fallback: the IPC round trip, which Arrow JS understands for every type
  const table = tableFromIPC(readParquet(bytes, options).intoIPCStream())
  for (const name of columnNames(c)) {
    const vector = table.getChild(name)
    if (!vector) throw new Error(`column ${name} missing from the decoded table`)
    fill(name, vector.data.map(chunkFromArrowJs))
  }
  return out
}

class FfiUnsupported extends Error {}

const decodeWithHyparquet = async (bytes: Uint8Array, footer: FileFooter, groups: ReadonlyArray<number>): Promise<DecodedColumns> => {
  const c = footer.columns
  const rows = groups.reduce((s, g) => s + footer.rowGroups[g].rows, 0)
  const out = allocate(c, rows)
  const file = {
    byteLength: bytes.byteLength,
    slice: (start: number, end?: number) =>
      bytes.buffer.slice(bytes.byteOffset + start, bytes.byteOffset + (end ?? bytes.byteLength)) as ArrayBuffer
  }
  const target: Record<string, (chunk: ArrayLike<unknown>, from: number, to: number, at: number) => void> = {}
  target[c.ts] = (chunk, from, to, at) => {
    const enc = c.tsEncoding
    for (let i = from; i < to; i++) {
      const v = chunk[i]
      let ms: number
      if (typeof v === "bigint") {
        const unit = enc.kind === "int64" || enc.kind === "number" ? enc.unit : "ns"
        ms = statToMs(v, { kind: "int64", unit })!
      } else if (v instanceof Date) ms = v.getTime()
      else ms = enc.kind === "date32" ? (v as number) * MS_PER_DAY : (v as number) / UNITS_PER_MS[enc.kind === "number" || enc.kind === "int64" ? enc.unit : "ms"]
      out.ts[at + i - from] = ms
    }
  }
  for (const f of NUMERIC_FIELDS) {
    const name = c[f]
    if (name === undefined) continue
    const dest = out[f]!
    target[name] = (chunk, from, to, at) => {
      for (let i = from; i < to; i++) {
        const v = chunk[i]
        dest[at + i - from] = v === null || v === undefined ? Number.NaN : Number(v)
      }
    }
  }
  if (c.synthetic !== undefined) {
    target[c.synthetic] = (chunk, from, to, at) => {
      for (let i = from; i < to; i++) out.synthetic![at + i - from] = chunk[i] ? 1 : 0
    }
  }
  let at = 0
  for (const g of groups) {
    const rg = footer.rowGroups[g]
    const base = at
    await parquetRead({
      file,
      metadata: footer.metadata,
      columns: columnNames(c),
      rowStart: rg.rowStart,
      rowEnd: rg.rowStart + rg.rows,
      parsers: RAW_PARSERS,
      compressors,
      onChunk: (chunk) => {
        const from = Math.max(chunk.rowStart, rg.rowStart)
        const to = Math.min(chunk.rowEnd, rg.rowStart + rg.rows)
        if (to > from) target[chunk.columnName]?.(chunk.columnData as ArrayLike<unknown>, from - chunk.rowStart, to - chunk.rowStart, base + from - rg.rowStart)
      }
    })
    at += rg.rows
  }
  return out
}

/**
 * Decodes the given row groups of a file (bytes = the whole file) into doubles. Decoder errors
 * become ParquetReadError naming the file; parquet-wasm failures are retried with hyparquet
 * once, since the two libraries support different corners of the format.
 */
export const decodeRowGroups = async (
  bytes: Uint8Array,
  footer: FileFooter,
  groups: ReadonlyArray<number>,
  decoder: Decoder = DEFAULT_DECODER
): Promise<DecodedColumns> => {
  if (decoder === "parquet-wasm" && !footer.columns.hasDecimal) {
    try {
      return decodeWithWasm(bytes, footer, groups)
    } catch (wasmError) {
      try {
        return await decodeWithHyparquet(bytes, footer, groups)
      } catch (e) {
        throw new ParquetReadError({ file: footer.file, reason: `data pages cannot be decoded (${describe(wasmError)}; ${describe(e)})` })
      }
    }
  }
  try {
    return await decodeWithHyparquet(bytes, footer, groups)
  } catch (e) {
    throw new ParquetReadError({ file: footer.file, reason: `data pages cannot be decoded (${describe(e)})` })
  }
}

const describe = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split("\n")[0].slice(0, 300)

export const readWholeFile = async (file: string): Promise<Uint8Array> => {
  try {
    return new Uint8Array(await fs.readFile(file))
  } catch (e) {
    throw new ParquetReadError({ file, reason: describe(e) })
  }
}
