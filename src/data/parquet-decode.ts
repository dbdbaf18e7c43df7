/**
 * Decoding data pages of chosen row groups into price columns (doubles, ts in epoch ms).
 *
 * Bulk decoding goes to the decoder bench/load.ts measured faster: parquet-wasm (arrow-rs
 * compiled to WebAssembly) by default, hyparquet as the alternative (`decoder: "hyparquet"`),
 * which also serves as the fallback when a file uses something parquet-wasm cannot decode.
 */
import { promises as fs } from "node:fs"
import { parquetRead } from "hyparquet"
import { compressors } from "hyparquet-compressors"
import { readParquet } from "parquet-wasm"
import { tableFromIPC, type Data as ArrowData } from "apache-arrow"
import { readParquetViaFfi, type FfiColumn } from "./wasm-ffi.js"
import { ParquetReadError } from "./errors.js"
import { RAW_PARSERS } from "./parquet-footer.js"
import { columnNames, statToMs, type FileFooter, type ResolvedColumns, type TsEncoding } from "./parquet-schema.js"
import { int64ToEpochMs, MS_PER_DAY, type TimeUnit, UNITS_PER_MS } from "./time.js"

export type Decoder = "parquet-wasm" | "hyparquet"
/** Chosen by bench/load.ts: parquet-wasm decoded 2M ticks ~3× faster than hyparquet here. */
export const DEFAULT_DECODER: Decoder = "parquet-wasm"

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
