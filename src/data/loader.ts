/**
 * Phase 4: one data slice from the catalog (or one user file) into a PriceSeries.
 *
 * Only the needed files, row groups and columns are decoded: a file's name gives its period,
 * so files outside the range are not even opened; inside the opened ones, row groups whose ts
 * statistics fall outside [start, end] are skipped. Warmup rows before the start are found by
 * walking back over row groups (and earlier files) using their row counts, so only as many
 * row groups as the warmup needs are decoded.
 */
import { dayEndMs, dayStartMs, FREQ_MS, isRealDate, type Freq } from "../schemas/common.js"
import type { PriceSeries } from "../engine/types.js"
import type { LoadedSlice, SliceRequirement } from "./types.js"
import { promises as fs } from "node:fs"
import { DataRequestError, ParquetReadError } from "./errors.js"
import { listCatalogFiles, type CatalogFile } from "./layout.js"
import {
  decodeRowGroups,
  DEFAULT_DECODER,
  readFooter,
  readWholeFile,
  type ColumnMapping,
  type DecodedColumns,
  type Decoder,
  type FileFooter
} from "./parquet.js"
import { resampleTicks } from "./resample.js"

export interface LoadOptions {
  readonly decoder?: Decoder
  /** column mapping for files whose columns are not named ts/price/close/... */
  readonly columns?: ColumnMapping
  /** file footers already read (a long-lived process passes its own; none: read each time) */
  readonly footers?: FooterCache
}

/**
 * Parquet footers by file (path, size and mtime must still match), bounded by count: the loader
 * reads the same files for many slices. One per process that wants it (the actors' process
 * state), never module-wide.
 */
export class FooterCache {
  readonly #entries = new Map<string, { size: number; mtimeMs: number; footer: FileFooter }>()
  constructor(readonly limit = 4096) {}
  get(key: string, file: CatalogFile): FileFooter | undefined {
    const hit = this.#entries.get(key)
    return hit && hit.size === file.size && hit.mtimeMs === file.mtimeMs ? hit.footer : undefined
  }
  set(key: string, file: CatalogFile, footer: FileFooter): void {
    if (this.#entries.size >= this.limit) this.#entries.delete(this.#entries.keys().next().value!)
    this.#entries.set(key, { size: file.size, mtimeMs: file.mtimeMs, footer })
  }
}

const footerOf = async (file: CatalogFile, mapping: ColumnMapping | undefined, cache: FooterCache | undefined): Promise<FileFooter> => {
  const key = mapping ? `${file.path}\u0000${JSON.stringify(mapping)}` : file.path
  const hit = cache?.get(key, file)
  if (hit) return hit
  const footer = await readFooter(file.path, mapping)
  cache?.set(key, file, footer)
  return footer
}

interface RowsResult {
  readonly columns: DecodedColumns
  readonly kind: "tick" | "bar"
  /** rows before startMs kept (at most warmupRows) */
  readonly warmupRows: number
  readonly rowGroupsRead: number
  readonly rowGroupsSkipped: number
}

const concatColumns = (parts: ReadonlyArray<DecodedColumns>): DecodedColumns => {
  if (parts.length === 1) return parts[0]
  const n = parts.reduce((s, p) => s + p.ts.length, 0)
  const cat = <K extends keyof DecodedColumns>(key: K): DecodedColumns[K] => {
    if (parts.length === 0 || parts.some((p) => p[key] === undefined)) return undefined as DecodedColumns[K]
    const first = parts[0][key]!
    const out = first instanceof Uint8Array ? new Uint8Array(n) : new Float64Array(n)
    let at = 0
    for (const p of parts) {
      out.set(p[key] as never, at)
      at += p.ts.length
    }
    return out as DecodedColumns[K]
  }
  return {
    ts: parts.length === 0 ? new Float64Array(0) : (cat("ts") as Float64Array),
    close: parts.length === 0 ? new Float64Array(0) : (cat("close") as Float64Array),
    open: cat("open"),
    high: cat("high"),
    low: cat("low"),
    volume: cat("volume"),
    synthetic: cat("synthetic")
  }
}

/** Keeps rows with ts < endMs, and of the rows before startMs only the last `warmup`. */
const trim = (c: DecodedColumns, startMs: number, endMs: number, warmup: number): { columns: DecodedColumns; warmupRows: number } => {
  const n = c.ts.length
  const ts = c.ts
  let sorted = true
  for (let i = 1; i < n; i++) {
    if (!(ts[i] >= ts[i - 1])) {
      sorted = false
      break
    }
  }
  if (sorted) {
    // the common case: one contiguous range, returned as zero-copy subarrays
    let first = 0
    while (first < n && ts[first] < startMs) first++
    let last = n
    while (last > first && ts[last - 1] >= endMs) last--
    const from = Math.max(0, first - warmup)
    if (from === 0 && last === n) return { columns: c, warmupRows: first }
    const cut = <T extends Float64Array | Uint8Array>(a: T | undefined): T | undefined => (a ? (a.subarray(from, last) as T) : undefined)
    return {
      columns: { ts: cut(c.ts)!, close: cut(c.close)!, open: cut(c.open), high: cut(c.high), low: cut(c.low), volume: cut(c.volume), synthetic: cut(c.synthetic) },
      warmupRows: first - from
    }
  }
  // unsorted rows (quality will report them): filter by value, keeping file order
  let before = 0
  for (let i = 0; i < n; i++) if (ts[i] < startMs) before++
  const dropBefore = Math.max(0, before - warmup)
  const keep: number[] = []
  let seenBefore = 0
  let kept = 0
  for (let i = 0; i < n; i++) {
    const t = ts[i]
    if (t >= endMs) continue
    if (t < startMs) {
      seenBefore++
      if (seenBefore <= dropBefore) continue
      kept++
    }
    keep.push(i)
  }
  const pick = <T extends Float64Array | Uint8Array>(a: T | undefined): T | undefined => {
    if (!a) return undefined
    const out = new (a.constructor as new (n: number) => T)(keep.length)
    for (let k = 0; k < keep.length; k++) out[k] = a[keep[k]]
    return out
  }
  return {
    columns: { ts: pick(c.ts)!, close: pick(c.close)!, open: pick(c.open), high: pick(c.high), low: pick(c.low), volume: pick(c.volume), synthetic: pick(c.synthetic) },
    warmupRows: kept
  }
}

const overlaps = (minMs: number | null, maxMs: number | null, startMs: number, endMs: number) =>
  minMs === null || maxMs === null || (minMs < endMs && maxMs >= startMs)

/**
 * Reads rows in [startMs, endMs) plus up to `warmupRows` rows before startMs from sorted files.
 */
export const readRows = async (
  files: ReadonlyArray<CatalogFile>,
  startMs: number,
  endMs: number,
  warmupRows: number,
  opts: LoadOptions = {}
): Promise<RowsResult> => {
  const decoder = opts.decoder ?? DEFAULT_DECODER
  const selected = new Map<CatalogFile, Set<number>>()
  const footers = new Map<CatalogFile, FileFooter>()
  const open = async (f: CatalogFile) => {
    let footer = footers.get(f)
    if (!footer) {
      footer = await footerOf(f, opts.columns, opts.footers)
      footers.set(f, footer)
    }
    return footer
  }
  const select = (f: CatalogFile, g: number) => {
    let s = selected.get(f)
    if (!s) selected.set(f, (s = new Set()))
    s.add(g)
  }
  const inRange = files.filter((f) => f.period === null || (f.period.fromMs < endMs && f.period.toMs > startMs))
  const earlier = files.filter((f) => f.period !== null && f.period.toMs <= startMs)
  // row groups entirely before the start, newest first: the warmup candidates
  const warmupCandidates: Array<{ file: CatalogFile; group: number; rows: number }> = []
  for (const f of inRange) {
    const footer = await open(f)
    for (const g of footer.rowGroups) {
      if (g.rows === 0) continue
      if (overlaps(g.minMs, g.maxMs, startMs, endMs)) select(f, g.index)
      else if (g.maxMs! < startMs) warmupCandidates.push({ file: f, group: g.index, rows: g.rows })
    }
  }
  warmupCandidates.reverse()
  let warmupFound = 0
  for (const c of warmupCandidates) {
    if (warmupFound >= warmupRows) break
    select(c.file, c.group)
    warmupFound += c.rows
  }
  for (let i = earlier.length - 1; i >= 0 && warmupFound < warmupRows; i--) {
    const f = earlier[i]
    const footer = await open(f)
    for (let g = footer.rowGroups.length - 1; g >= 0 && warmupFound < warmupRows; g--) {
      const rg = footer.rowGroups[g]
      if (rg.rows === 0) continue
      select(f, g)
      warmupFound += rg.rows
    }
  }
  const ordered = [...footers.keys()].sort((a, b) => (a.relPath < b.relPath ? -1 : a.relPath > b.relPath ? 1 : 0))
  const parts: DecodedColumns[] = []
  let read = 0
  let skipped = 0
  let kind: "tick" | "bar" | undefined
  for (const f of ordered) {
    const footer = footers.get(f)!
    kind ??= footer.columns.kind
    const groups = [...(selected.get(f) ?? [])].sort((a, b) => a - b)
    read += groups.length
    skipped += footer.rowGroups.length - groups.length
    if (groups.length === 0) continue
    parts.push(await decodeRowGroups(await readWholeFile(f.path), footer, groups, decoder))
  }
  const { columns, warmupRows: kept } = trim(concatColumns(parts), startMs, endMs, warmupRows)
  return { columns, kind: kind ?? "tick", warmupRows: kept, rowGroupsRead: read, rowGroupsSkipped: skipped }
}

const toSeries = (symbol: string, freq: Freq, c: DecodedColumns, kind: "tick" | "bar", startIndex: number): PriceSeries => ({
  symbol,
  freq,
  ts: c.ts,
  close: c.close,
  open: kind === "bar" ? c.open : undefined,
  high: kind === "bar" ? c.high : undefined,
  low: kind === "bar" ? c.low : undefined,
  volume: c.volume,
  synthetic: c.synthetic,
  startIndex
})

export const validateRequirement = (req: SliceRequirement): { startMs: number; endMs: number } => {
  if (!isRealDate(req.start)) throw new DataRequestError({ field: "start", value: req.start, reason: "is not a real date; write YYYY-MM-DD" })
  if (!isRealDate(req.end)) throw new DataRequestError({ field: "end", value: req.end, reason: "is not a real date; write YYYY-MM-DD" })
  if (req.end < req.start) throw new DataRequestError({ field: "end", value: req.end, reason: `is before start ${req.start}; swap them` })
  if (!Number.isInteger(req.warmupBars) || req.warmupBars < 0) {
    throw new DataRequestError({ field: "warmupBars", value: String(req.warmupBars), reason: "must be a whole number >= 0" })
  }
  if (!(req.freq in FREQ_MS)) throw new DataRequestError({ field: "freq", value: req.freq, reason: `is not one of ${Object.keys(FREQ_MS).join(", ")}` })
  return { startMs: dayStartMs(req.start), endMs: dayEndMs(req.end) }
}

/** Bars resampled from tick files; warmup bars come from whole earlier tick files, newest first. */
const loadResampled = async (req: SliceRequirement, tickFiles: ReadonlyArray<CatalogFile>, startMs: number, endMs: number, opts: LoadOptions): Promise<LoadedSlice> => {
  const width = FREQ_MS[req.freq]
  const main = await readRows(tickFiles, startMs, endMs, 0, opts)
  const bars = [resampleTicks(main.columns.ts, main.columns.close, main.columns.volume, width)]
  let read = main.rowGroupsRead
  let skipped = main.rowGroupsSkipped
  let warmupBars = 0
  const earlier = tickFiles.filter((f) => f.period !== null && f.period.toMs <= startMs)
  for (let i = earlier.length - 1; i >= 0 && warmupBars < req.warmupBars; i--) {
    const f = earlier[i]
    const part = await readRows([f], -Infinity, startMs, 0, opts)
    read += part.rowGroupsRead
    skipped += part.rowGroupsSkipped
    const b = resampleTicks(part.columns.ts, part.columns.close, part.columns.volume, width)
    bars.unshift(b)
    warmupBars += b.ts.length
  }
  const all = concatColumns(bars.map((b) => ({ ...b })))
  const { columns, warmupRows } = trim(all, startMs, endMs, req.warmupBars)
  return {
    requirement: req,
    series: toSeries(req.symbol, req.freq, columns, "bar", warmupRows),
    warmupRows,
    resampledFromTicks: true,
    rowGroupsRead: read,
    rowGroupsSkipped: skipped
  }
}

/** Async core of loadSlice. */
export const loadSliceAsync = async (root: string, req: SliceRequirement, opts: LoadOptions = {}): Promise<LoadedSlice> => {
  const { startMs, endMs } = validateRequirement(req)
  const files = await listCatalogFiles(root, { freqs: [req.freq], symbols: [req.symbol] })
  if (files.length === 0) {
    if (req.freq !== "tick") {
      const tickFiles = await listCatalogFiles(root, { freqs: ["tick"], symbols: [req.symbol] })
      if (tickFiles.length > 0) return loadResampled(req, tickFiles, startMs, endMs, opts)
    }
    throw new DataRequestError({
      field: "symbol",
      value: req.symbol,
      reason: `has no ${req.freq} data${req.freq !== "tick" ? " and no ticks to resample" : ""} in the catalog ${root}; run \`tickflow data coverage --root ${root}\` to see what is there, or import it with \`tickflow data import\``
    })
  }
  const r = await readRows(files, startMs, endMs, req.warmupBars, opts)
  return {
    requirement: req,
    series: toSeries(req.symbol, req.freq, r.columns, r.kind, r.warmupRows),
    warmupRows: r.warmupRows,
    resampledFromTicks: false,
    rowGroupsRead: r.rowGroupsRead,
    rowGroupsSkipped: r.rowGroupsSkipped
  }
}

export interface ReadFileOptions extends LoadOptions {
  readonly symbol?: string
  /** frequency of the file's rows; default tick for tick files, 1d for bar files */
  readonly freq?: Freq
  /** YYYY-MM-DD inclusive bounds; the whole file when absent */
  readonly start?: string
  readonly end?: string
  readonly warmupBars?: number
}

export interface LoadedFile {
  readonly series: PriceSeries
  readonly warmupRows: number
  readonly rowGroupsRead: number
  readonly rowGroupsSkipped: number
}

/** Async core of readPriceFile: any Parquet file with a time and a price column. */
export const readPriceFileAsync = async (file: string, opts: ReadFileOptions = {}): Promise<LoadedFile> => {
  let stat
  try {
    stat = await fs.stat(file)
  } catch (e) {
    throw new ParquetReadError({ file, reason: (e as Error).message })
  }
  const catalogFile: CatalogFile = { freq: opts.freq ?? "tick", symbol: opts.symbol ?? "", relPath: file, path: file, size: stat.size, mtimeMs: stat.mtimeMs, period: null }
  const startMs = opts.start ? dayStartMs(opts.start) : -Infinity
  const endMs = opts.end ? dayEndMs(opts.end) : Infinity
  const r = await readRows([catalogFile], startMs, endMs, opts.warmupBars ?? 0, opts)
  const freq = opts.freq ?? (r.kind === "tick" ? "tick" : "1d")
  const symbol = opts.symbol ?? file.replace(/^.*[\\/]/, "").replace(/\.parquet$/i, "").toUpperCase()
  return { series: toSeries(symbol, freq, r.columns, r.kind, r.warmupRows), warmupRows: r.warmupRows, rowGroupsRead: r.rowGroupsRead, rowGroupsSkipped: r.rowGroupsSkipped }
}
