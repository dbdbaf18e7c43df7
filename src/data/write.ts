/**
 * Writing catalog files with hyparquet-writer. Files are written to a temporary name and renamed,
 * so a reader (or coverage) never sees half a file, and re-writing the same rows gives the same
 * bytes (no clocks or random ids in the file), which makes imports and the generator idempotent.
 */
import { promises as fs } from "node:fs"
import { dirname } from "node:path"
import { parquetWriteBuffer } from "hyparquet-writer"
import type { SchemaElement } from "hyparquet"
import { CatalogError } from "./errors.js"
import { MS_PER_DAY } from "./time.js"

export const WRITER_ID = "tickflow data plane v1"
/** Footer key holding the UTC days present as runs "firstDay-lastDay,..." (days since 1970-01-01). */
export const DAYS_KEY = "tickflow.days"
export const KIND_KEY = "tickflow.kind"

/** Rows of one catalog file, columnar, sorted by ts, no duplicate ts. ts in int64 ns UTC. */
export interface TickRows {
  readonly kind: "tick"
  readonly ts: BigInt64Array
  readonly price: Float64Array
  readonly size: Float64Array
  readonly bid?: Float64Array
  readonly ask?: Float64Array
}
export interface BarRows {
  readonly kind: "bar"
  readonly ts: BigInt64Array
  readonly open: Float64Array
  readonly high: Float64Array
  readonly low: Float64Array
  readonly close: Float64Array
  readonly volume: Float64Array
  readonly synthetic: Uint8Array
}
export type CatalogRows = TickRows | BarRows

export const rowCount = (rows: CatalogRows): number => rows.ts.length

const TS_ELEMENT: SchemaElement = {
  name: "ts",
  type: "INT64",
  repetition_type: "REQUIRED",
  logical_type: { type: "TIMESTAMP", isAdjustedToUTC: true, unit: "NANOS" }
}
const doubleElement = (name: string): SchemaElement => ({ name, type: "DOUBLE", repetition_type: "REQUIRED" })

/** Runs of consecutive UTC days that hold at least one row, "a-b,c-d" (sorted ts assumed). */
export const dayRuns = (ts: BigInt64Array): string => {
  const runs: string[] = []
  let runStart = Number.NaN
  let prev = Number.NaN
  const nsPerDay = BigInt(MS_PER_DAY) * 1_000_000n
  for (let i = 0; i < ts.length; i++) {
    const v = ts[i]
    let day = v / nsPerDay
    if (v < 0n && v % nsPerDay !== 0n) day -= 1n
    const d = Number(day)
    if (d === prev) continue
    if (d !== prev + 1) {
      if (!Number.isNaN(runStart)) runs.push(`${runStart}-${prev}`)
      runStart = d
    }
    prev = d
  }
  if (!Number.isNaN(runStart)) runs.push(`${runStart}-${prev}`)
  return runs.join(",")
}

export const parseDayRuns = (s: string): Array<[number, number]> =>
  s === ""
    ? []
    : s.split(",").map((r) => {
        const dash = r.indexOf("-", 1)
        return [Number(r.slice(0, dash)), Number(r.slice(dash + 1))] as [number, number]
      })

/** Encodes catalog rows as a Parquet file (snappy, statistics on, `rowGroupSize` rows per group). */
export const encodeCatalogFile = (rows: CatalogRows, rowGroupSize = 65_536): Uint8Array => {
  const n = rows.ts.length
  const columnData =
    rows.kind === "tick"
      ? [
          { name: "ts", data: rows.ts },
          { name: "price", data: rows.price },
          { name: "size", data: rows.size },
          ...(rows.bid ? [{ name: "bid", data: rows.bid }] : []),
          ...(rows.ask ? [{ name: "ask", data: rows.ask }] : [])
        ]
      : [
          { name: "ts", data: rows.ts },
          { name: "open", data: rows.open },
          { name: "high", data: rows.high },
          { name: "low", data: rows.low },
          { name: "close", data: rows.close },
          { name: "volume", data: rows.volume },
          { name: "synthetic", data: Array.from(rows.synthetic, (v) => v === 1) }
        ]
  const schema: SchemaElement[] = [
    { name: "root", num_children: columnData.length },
    TS_ELEMENT,
    ...columnData
      .slice(1)
      .map((c) => (c.name === "synthetic" ? { name: c.name, type: "BOOLEAN" as const, repetition_type: "REQUIRED" as const } : doubleElement(c.name)))
  ]
  const buffer = parquetWriteBuffer({
    columnData,
    schema,
    codec: "SNAPPY",
    rowGroupSize: Math.max(1, Math.min(rowGroupSize, n || 1)),
    createdBy: WRITER_ID,
    kvMetadata: [
      { key: KIND_KEY, value: rows.kind },
      { key: DAYS_KEY, value: dayRuns(rows.ts) }
    ]
  })
  return new Uint8Array(buffer)
}

/** Writes a file atomically (temp name + rename); unchanged bytes leave the file (and mtime) alone. */
export const writeFileAtomic = async (path: string, bytes: Uint8Array): Promise<"written" | "unchanged"> => {
  try {
    await fs.mkdir(dirname(path), { recursive: true })
    try {
      const existing = await fs.readFile(path)
      if (existing.byteLength === bytes.byteLength && Buffer.compare(existing, bytes) === 0) return "unchanged"
    } catch {
      // no file yet
    }
    const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`
    await fs.writeFile(tmp, bytes)
    await fs.rename(tmp, path)
    return "written"
  } catch (e) {
    throw new CatalogError({ path, reason: `cannot write: ${(e as Error).message}; check the data root is writable` })
  }
}
