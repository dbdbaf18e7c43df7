/**
 * Data slices for the object store: a content key and an Arrow IPC stream encoding.
 * The encoding keeps every column as the same typed array (Float64 ts and prices, Uint8
 * synthetic) so a decode hands back views over the received bytes when they are aligned.
 */
import { createHash } from "node:crypto"
import {
  Field,
  Float64,
  makeData,
  RecordBatch,
  RecordBatchStreamWriter,
  Schema,
  Struct,
  tableFromIPC,
  Uint8,
  type Data as ArrowData
} from "apache-arrow"
import type { PriceSeries } from "../engine/types.js"
import type { Freq } from "../schemas/common.js"
import type { SliceRequirement } from "./types.js"
import { DataRequestError } from "./errors.js"

export const SLICE_FORMAT_VERSION = 1

/** sha256 hex of a canonical JSON of what the slice holds: same data asked the same way → same key. */
export const sliceContentKey = (req: SliceRequirement, dataVersion: string): string => {
  const canonical = JSON.stringify([
    ["format", SLICE_FORMAT_VERSION],
    ["symbol", req.symbol],
    ["freq", req.freq],
    ["start", req.start],
    ["end", req.end],
    ["warmupBars", req.warmupBars],
    ["dataVersion", dataVersion]
  ])
  return createHash("sha256").update(canonical).digest("hex")
}

const FLOAT_COLUMNS = ["ts", "close", "open", "high", "low", "volume"] as const

/** PriceSeries → Arrow IPC stream bytes (one record batch; symbol, freq, startIndex in metadata). */
export const encodeSlice = (series: PriceSeries): Uint8Array => {
  const n = series.ts.length
  const fields: Field[] = []
  const children: ArrowData[] = []
  for (const name of FLOAT_COLUMNS) {
    const values = series[name]
    if (!values) continue
    if (values.length !== n) throw new DataRequestError({ field: `series.${name}`, value: String(values.length), reason: `has a different length than ts (${n})` })
    fields.push(new Field(name, new Float64(), false))
    children.push(makeData({ type: new Float64(), length: n, data: values }))
  }
  if (series.synthetic) {
    fields.push(new Field("synthetic", new Uint8(), false))
    children.push(makeData({ type: new Uint8(), length: n, data: series.synthetic }))
  }
  const metadata = new Map<string, string>([
    ["tickflow.format", String(SLICE_FORMAT_VERSION)],
    ["symbol", series.symbol],
    ["freq", series.freq],
    ["startIndex", String(series.startIndex)]
  ])
  const schema = new Schema(fields, metadata)
  const struct = makeData({ type: new Struct(fields), length: n, nullCount: 0, children })
  const batch = new RecordBatch(schema, struct)
  const writer = RecordBatchStreamWriter.writeAll([batch])
  return writer.toUint8Array(true)
}

/** Arrow IPC stream bytes → PriceSeries; columns are views over `bytes` when in one batch. */
export const decodeSlice = (bytes: Uint8Array): PriceSeries => {
  const table = tableFromIPC(bytes)
  const meta = table.schema.metadata
  const column = <T extends Float64Array | Uint8Array>(name: string, make: (n: number) => T): T | undefined => {
    const vector = table.getChild(name)
    if (!vector) return undefined
    if (vector.data.length === 1) {
      const d = vector.data[0]
      return (d.values as T).subarray(d.offset, d.offset + d.length) as T
    }
    const out = make(vector.length)
    let at = 0
    for (const d of vector.data) {
      out.set((d.values as T).subarray(d.offset, d.offset + d.length), at)
      at += d.length
    }
    return out
  }
  const f64 = (n: number) => new Float64Array(n)
  const ts = column("ts", f64)
  const close = column("close", f64)
  if (!ts || !close || meta.get("tickflow.format") === undefined) {
    throw new DataRequestError({ field: "slice", value: `${bytes.byteLength} bytes`, reason: "is not a tickflow slice (no ts/close columns or format metadata)" })
  }
  return {
    symbol: meta.get("symbol") ?? "",
    freq: (meta.get("freq") ?? "1d") as Freq,
    ts,
    close,
    open: column("open", f64),
    high: column("high", f64),
    low: column("low", f64),
    volume: column("volume", f64),
    synthetic: column("synthetic", (n) => new Uint8Array(n)),
    startIndex: Number(meta.get("startIndex") ?? 0)
  }
}
