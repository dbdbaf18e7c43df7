/**
 * Catalog writes: rows are split into the layout's partitions (a day for intraday, a year for
 * daily bars) and merged with what a partition file already holds, the new row winning on equal
 * ts. Writing the same rows twice therefore leaves the same bytes: imports are idempotent.
 */
import { join } from "node:path"
import { parquetReadObjects } from "hyparquet"
import { compressors } from "hyparquet-compressors"
import type { Freq } from "../schemas/common.js"
import { ParquetReadError } from "./errors.js"
import { catalogRelPath, partitionKey } from "./layout.js"
import { RAW_PARSERS, readWholeFile } from "./parquet.js"
import { dayToIso, MS_PER_DAY } from "./time.js"
import { encodeCatalogFile, writeFileAtomic, type BarRows, type CatalogRows, type TickRows } from "./write.js"

const NS_PER_DAY = BigInt(MS_PER_DAY) * 1_000_000n

export const nsToDayIso = (ns: bigint): string => {
  let day = ns / NS_PER_DAY
  if (ns < 0n && ns % NS_PER_DAY !== 0n) day -= 1n
  return dayToIso(Number(day))
}

/** Picks rows by index into a new CatalogRows of the same kind. */
export const pickRows = (rows: CatalogRows, index: ArrayLike<number>): CatalogRows => {
  const n = index.length
  const ts = new BigInt64Array(n)
  for (let i = 0; i < n; i++) ts[i] = rows.ts[index[i]]
  const pick = (a: Float64Array) => {
    const out = new Float64Array(n)
    for (let i = 0; i < n; i++) out[i] = a[index[i]]
    return out
  }
  if (rows.kind === "tick") {
    return {
      kind: "tick",
      ts,
      price: pick(rows.price),
      size: pick(rows.size),
      ...(rows.bid ? { bid: pick(rows.bid) } : {}),
      ...(rows.ask ? { ask: pick(rows.ask) } : {})
    }
  }
  const synthetic = new Uint8Array(n)
  for (let i = 0; i < n; i++) synthetic[i] = rows.synthetic[index[i]]
  return { kind: "bar", ts, open: pick(rows.open), high: pick(rows.high), low: pick(rows.low), close: pick(rows.close), volume: pick(rows.volume), synthetic }
}

/** Concatenates row sets of one kind (bid/ask kept only when every part has them). */
export const concatRows = (parts: ReadonlyArray<CatalogRows>, kind: "tick" | "bar"): CatalogRows => {
  const n = parts.reduce((s, p) => s + p.ts.length, 0)
  const ts = new BigInt64Array(n)
  const cat = (get: (p: CatalogRows) => Float64Array | undefined) => {
    const out = new Float64Array(n)
    let at = 0
    for (const p of parts) {
      const a = get(p)
      if (a === undefined) return undefined
      out.set(a, at)
      at += a.length
    }
    return out
  }
  let at = 0
  for (const p of parts) {
    ts.set(p.ts, at)
    at += p.ts.length
  }
  if (kind === "tick") {
    const bid = cat((p) => (p as TickRows).bid)
    const ask = cat((p) => (p as TickRows).ask)
    return { kind, ts, price: cat((p) => (p as TickRows).price)!, size: cat((p) => (p as TickRows).size)!, ...(bid ? { bid } : {}), ...(ask ? { ask } : {}) }
  }
  const synthetic = new Uint8Array(n)
  at = 0
  for (const p of parts) {
    synthetic.set((p as BarRows).synthetic, at)
    at += p.ts.length
  }
  return {
    kind,
    ts,
    open: cat((p) => (p as BarRows).open)!,
    high: cat((p) => (p as BarRows).high)!,
    low: cat((p) => (p as BarRows).low)!,
    close: cat((p) => (p as BarRows).close)!,
    volume: cat((p) => (p as BarRows).volume)!,
    synthetic
  }
}

/** Sorts by ts and drops earlier duplicates (the later row of equal ts wins). */
export const sortDedupe = (rows: CatalogRows): CatalogRows => {
  const n = rows.ts.length
  let increasing = true
  for (let i = 1; i < n && increasing; i++) increasing = rows.ts[i] > rows.ts[i - 1]
  // the common case (sorted input, one partition at a time) costs one pass
  if (increasing) return rows
  const order = Array.from({ length: n }, (_, i) => i)
  order.sort((a, b) => (rows.ts[a] < rows.ts[b] ? -1 : rows.ts[a] > rows.ts[b] ? 1 : a - b))
  const keep: number[] = []
  for (let k = 0; k < n; k++) {
    const i = order[k]
    if (k + 1 < n && rows.ts[order[k + 1]] === rows.ts[i]) continue
    keep.push(i)
  }
  return pickRows(rows, keep)
}

/** Reads one catalog file back with exact int64 ns timestamps (used for merging, not for loading). */
export const readCatalogRows = async (path: string): Promise<CatalogRows> => {
  const bytes = await readWholeFile(path)
  const file = { byteLength: bytes.byteLength, slice: (s: number, e?: number) => bytes.buffer.slice(bytes.byteOffset + s, bytes.byteOffset + (e ?? bytes.byteLength)) as ArrayBuffer }
  let objects: Record<string, unknown>[]
  try {
    objects = await parquetReadObjects({ file, parsers: RAW_PARSERS, compressors })
  } catch (e) {
    throw new ParquetReadError({ file: path, reason: (e as Error).message })
  }
  const n = objects.length
  const ts = BigInt64Array.from(objects, (o) => BigInt(o.ts as bigint))
  const col = (name: string) => Float64Array.from(objects, (o) => Number(o[name]))
  if (n > 0 && "price" in objects[0]) {
    const hasBid = "bid" in objects[0]
    const hasAsk = "ask" in objects[0]
    return { kind: "tick", ts, price: col("price"), size: col("size"), ...(hasBid ? { bid: col("bid") } : {}), ...(hasAsk ? { ask: col("ask") } : {}) }
  }
  return {
    kind: "bar",
    ts,
    open: col("open"),
    high: col("high"),
    low: col("low"),
    close: col("close"),
    volume: col("volume"),
    synthetic: Uint8Array.from(objects, (o) => (o.synthetic ? 1 : 0))
  }
}

export interface WriteSummary {
  readonly files: number
  readonly written: number
  readonly rows: number
}

/**
 * Writes rows (any order) into the catalog for one symbol and frequency, partition by partition,
 * merging with existing files. `rowGroupSize` sets rows per row group of new files.
 */
export const writeCatalogRows = async (
  root: string,
  freq: Freq,
  symbol: string,
  rows: CatalogRows,
  options: { rowGroupSize?: number; replace?: boolean } = {}
): Promise<WriteSummary> => {
  const byPartition = new Map<string, number[]>()
  const dayIsoOf = new Map<string, string>()
  for (let i = 0; i < rows.ts.length; i++) {
    const dayIso = nsToDayIso(rows.ts[i])
    const key = partitionKey(freq, dayIso)
    let list = byPartition.get(key)
    if (!list) {
      list = []
      byPartition.set(key, list)
      dayIsoOf.set(key, dayIso)
    }
    list.push(i)
  }
  let written = 0
  let total = 0
  for (const [key, index] of [...byPartition.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const path = join(root, catalogRelPath(freq, symbol, dayIsoOf.get(key)!))
    let part = pickRows(rows, index)
    if (!options.replace) {
      const existing = await readCatalogRows(path).catch((e) => {
        if (e instanceof ParquetReadError && /ENOENT/.test(e.reason)) return undefined
        throw e
      })
      if (existing && existing.kind === part.kind) part = concatRows([existing, part], part.kind)
    }
    part = sortDedupe(part)
    total += part.ts.length
    const result = await writeFileAtomic(path, encodeCatalogFile(part, options.rowGroupSize))
    if (result === "written") written++
  }
  return { files: byPartition.size, written, rows: total }
}
