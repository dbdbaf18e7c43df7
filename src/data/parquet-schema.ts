/**
 * Which columns of a Parquet file are the time and the prices: names mapped by config or
 * recognised case-insensitively, time encodings (TIMESTAMP s/ms/µs/ns, DATE, INT96, plain
 * epochs) and the row groups' ts statistics in epoch ms.
 */
import type { FileMetaData, SchemaElement } from "hyparquet"
import { NotTickDataError } from "./errors.js"
import { readFooterMetadata } from "./parquet-footer.js"
import { MS_PER_DAY, type TimeUnit, UNITS_PER_MS } from "./time.js"

/** Names of the price fields a file's columns can be mapped to. */
export type PriceField = "ts" | "close" | "price" | "open" | "high" | "low" | "volume" | "size" | "bid" | "ask" | "synthetic" | "symbol"

/**
 * Maps tickflow field names to a file's column names, e.g. `{ ts: "time", close: "px" }`;
 * `tsUnit` says the unit of a plain integer/float time column (inferred from magnitude if absent).
 */
export type ColumnMapping = Partial<Record<PriceField, string>> & { readonly tsUnit?: TimeUnit }

/** Column names tried, case-insensitively, when a field is not mapped. */
export const DEFAULT_NAMES: Record<PriceField, ReadonlyArray<string>> = {
  ts: ["ts", "timestamp", "time", "datetime", "date"],
  // an adjusted close stands in only when there is no plain close
  close: ["close", "adj close", "adj_close", "adjclose"],
  price: ["price"],
  open: ["open"],
  high: ["high"],
  low: ["low"],
  volume: ["volume"],
  size: ["size", "qty", "quantity"],
  bid: ["bid"],
  ask: ["ask"],
  synthetic: ["synthetic"],
  symbol: ["symbol", "ticker"]
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


/** Top-level leaf columns of a flat schema. */
export const leafColumns = (metadata: FileMetaData): SchemaElement[] => metadata.schema.slice(1).filter((e) => e.type !== undefined)

export const findColumn = (
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
export const statToMs = (v: unknown, enc: TsEncoding): number | null => {
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
export const isDecimal = (e: SchemaElement) => e.converted_type === "DECIMAL" || e.logical_type?.type === "DECIMAL"
/** Numbers we can read as doubles: plain numeric types and DECIMAL (as many tools write prices). */
export const isNumeric = (e: SchemaElement) => NUMERIC.includes(e.type) || isDecimal(e)

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

export const columnNames = (c: ResolvedColumns): string[] =>
  [c.ts, c.close, c.open, c.high, c.low, c.volume, c.synthetic].filter((x): x is string => x !== undefined)

