/**
 * Where every import's rows go, whatever the source (CSV or Parquet): rows arrive in chunks,
 * are checked (prices, OHLC consistency, order), grouped by symbol and catalog partition, and
 * written partition by partition as soon as a later partition shows up, so a large sorted file
 * never sits in memory whole.
 *
 * Atomic: partitions are written to temporary files beside their targets and renamed only when
 * the whole file has been read and checked; any failure removes them and leaves the catalog as
 * it was. Idempotent: a partition merges with the file already there (the new row wins on an
 * equal timestamp), and bytes equal to the existing file are not rewritten.
 */
import { promises as fs } from "node:fs"
import { join } from "node:path"
import type { Freq } from "../schemas/common.js"
import { DataRequestError, ImportCheckError } from "./errors.js"
import { concatRows, nsToDayIso, readCatalogRows, sortDedupe } from "./catalog.js"
import { catalogRelPath, partitionKey } from "./layout.js"
import { bigintToEpochMs, msToIso } from "./time.js"
import { encodeCatalogFile, type CatalogRows } from "./write.js"
import {
  describeStep,
  freqAccepts,
  inferFrequency,
  ProblemTally,
  type FreqInference,
  type InferredFreq,
  type RowProblem,
  type RowProblemKind
} from "./import-checks.js"
import { ParquetReadError } from "./errors.js"

/** A chunk of source rows, columnar. Absent columns are undefined; missing cells NaN. */
export interface RowChunk {
  readonly n: number
  /** source row number of row 0 (CSV line, or Parquet row index), for problem examples */
  readonly firstRow: number
  /** int64 ns UTC; rows with tsValid[i] === 0 have no usable time */
  readonly ts: BigInt64Array
  readonly tsValid?: Uint8Array
  readonly symbols?: ReadonlyArray<string>
  /** close for bars, price for ticks */
  readonly price: Float64Array
  readonly open?: Float64Array
  readonly high?: Float64Array
  readonly low?: Float64Array
  readonly volume?: Float64Array
  readonly bid?: Float64Array
  readonly ask?: Float64Array
}

export interface ImportSinkOptions {
  readonly file: string
  readonly root: string
  /** asked frequency; inferred from the timestamps when absent */
  readonly freq?: Freq
  /** the symbol of a file without a symbol column, or the one symbol kept from a file with one */
  readonly symbol?: string
  readonly rowGroupSize?: number
}

export interface SymbolImportSummary {
  readonly symbol: string
  readonly freq: Freq
  /** what the timestamps look like (null with fewer than two distinct times) */
  readonly inferredFreq: InferredFreq | null
  /** rows written by this import (after dropped rows and repeated timestamps) */
  readonly rows: number
  readonly files: number
  /** partition files whose bytes changed */
  readonly written: number
  readonly first: string | null
  readonly last: string | null
  readonly problems: Partial<Record<RowProblemKind, RowProblem>>
}

const SAMPLE_ROWS = 2_000
const TICKFLOW_FREQS: ReadonlyArray<string> = ["tick", "1min", "5min", "1h", "1d"]
const NS_PER_DAY = 86_400_000_000_000n
const COLUMN_KEYS = ["price", "open", "high", "low", "volume", "bid", "ask"] as const
type ColumnKey = (typeof COLUMN_KEYS)[number]

const yearRangeNs = (dayIso: string) => {
  const jan1 = (y: number) => BigInt(Date.parse(`${String(y).padStart(4, "0")}-01-01T00:00:00Z`)) * 1_000_000n
  const y = Number(dayIso.slice(0, 4))
  return { fromNs: jan1(y), toNs: jan1(y + 1) }
}

/** A growable columnar buffer of rows. */
class RowBuffer {
  n = 0
  ts = new BigInt64Array(1024)
  cols: Record<ColumnKey, Float64Array> = Object.fromEntries(COLUMN_KEYS.map((k) => [k, new Float64Array(1024)])) as Record<ColumnKey, Float64Array>
  private grow() {
    const cap = this.ts.length * 2
    const ts = new BigInt64Array(cap)
    ts.set(this.ts)
    this.ts = ts
    for (const k of COLUMN_KEYS) {
      const a = new Float64Array(cap)
      a.set(this.cols[k])
      this.cols[k] = a
    }
  }
  push(ts: bigint, chunk: RowChunk, i: number) {
    if (this.n === this.ts.length) this.grow()
    const at = this.n++
    this.ts[at] = ts
    const c = this.cols
    c.price[at] = chunk.price[i]
    c.open[at] = chunk.open ? chunk.open[i] : Number.NaN
    c.high[at] = chunk.high ? chunk.high[i] : Number.NaN
    c.low[at] = chunk.low ? chunk.low[i] : Number.NaN
    c.volume[at] = chunk.volume ? chunk.volume[i] : Number.NaN
    c.bid[at] = chunk.bid ? chunk.bid[i] : Number.NaN
    c.ask[at] = chunk.ask ? chunk.ask[i] : Number.NaN
  }
  pushFrom(other: RowBuffer, i: number, ts: bigint) {
    if (this.n === this.ts.length) this.grow()
    const at = this.n++
    this.ts[at] = ts
    for (const k of COLUMN_KEYS) this.cols[k][at] = other.cols[k][i]
  }
}

interface SymbolState {
  readonly symbol: string
  freq?: Freq
  inference: FreqInference | null
  /** rows before the frequency is decided (the sample) */
  pending: RowBuffer | null
  readonly partitions: Map<string, RowBuffer>
  maxKey: string
  /** the partition the last row went to, and its time range */
  current: { fromNs: bigint; toNs: bigint; buf: RowBuffer } | null
  lastTs: bigint | null
  firstTs: bigint | null
  maxTs: bigint | null
  rows: number
  readonly paths: Set<string>
  readonly tally: ProblemTally
}

/** Which optional columns the source has, fixed by its header. */
export interface SourceColumns {
  readonly open: boolean
  readonly high: boolean
  readonly low: boolean
  readonly volume: boolean
  readonly bid: boolean
  readonly ask: boolean
}

export class ImportSink {
  private readonly symbols = new Map<string, SymbolState>()
  /** target path → its staged temporary file */
  private readonly staged = new Map<string, string>()
  private readonly changed = new Set<string>()
  /** symbols of a symbol column passed over because --symbol picked another (for the error when none matched) */
  readonly otherSymbols = new Set<string>()
  private readonly id = `${process.pid}-${Math.random().toString(36).slice(2, 10)}`

  constructor(
    private readonly opts: ImportSinkOptions,
    private readonly columns: SourceColumns
  ) {}

  private stateOf(symbol: string): SymbolState {
    let s = this.symbols.get(symbol)
    if (!s) {
      s = {
        symbol,
        inference: null,
        pending: new RowBuffer(),
        partitions: new Map(),
        maxKey: "",
        current: null,
        lastTs: null,
        firstTs: null,
        maxTs: null,
        rows: 0,
        paths: new Set(),
        tally: new ProblemTally()
      }
      this.symbols.set(symbol, s)
    }
    return s
  }

  /** Checks and files a chunk; partitions left behind by the chunk are written. */
  async push(chunk: RowChunk): Promise<void> {
    const isBar = this.opts.freq !== "tick"
    const { open, high, low, price, ts, tsValid, symbols } = chunk
    const fixed = this.opts.symbol
    const touched = new Set<SymbolState>()
    for (let i = 0; i < chunk.n; i++) {
      const symbol = symbols ? symbols[i] : fixed!
      if (symbols && fixed !== undefined && symbol !== fixed) {
        if (this.otherSymbols.size < 20) this.otherSymbols.add(symbol)
        continue
      }
      const s = this.stateOf(symbol)
      const row = chunk.firstRow + i
      if (tsValid && tsValid[i] === 0) {
        s.tally.add("bad_time", row, () => "no time")
        continue
      }
      const p = price[i]
      if (!(p > 0) || (isBar && open && !(open[i] > 0)) || (isBar && high && !(high[i] > 0)) || (isBar && low && !(low[i] > 0))) {
        s.tally.add("bad_price", row, () => `price ${p}${open ? ` open ${open[i]} high ${high?.[i]} low ${low?.[i]}` : ""}`)
        continue
      }
      if (isBar && high && high[i] < Math.max(open ? open[i] : p, p)) {
        s.tally.add("high_below_open_close", row, () => `high ${high[i]}, open ${open?.[i]}, close ${p}`)
        continue
      }
      if (isBar && low && low[i] > Math.min(open ? open[i] : p, p)) {
        s.tally.add("low_above_open_close", row, () => `low ${low[i]}, open ${open?.[i]}, close ${p}`)
        continue
      }
      const t = ts[i]
      if (s.lastTs !== null && t < s.lastTs) s.tally.add("unsorted", row, () => `${msToIso(bigintToEpochMs(t, "ns"))} after ${msToIso(bigintToEpochMs(s.lastTs!, "ns"))}`)
      s.lastTs = t
      if (s.firstTs === null || t < s.firstTs) s.firstTs = t
      if (s.maxTs === null || t > s.maxTs) s.maxTs = t
      s.rows++
      touched.add(s)
      if (s.pending) {
        s.pending.push(t, chunk, i)
        if (s.pending.n >= SAMPLE_ROWS) this.decide(s)
      } else this.file(s, t, chunk, i)
    }
    for (const s of touched) if (!s.pending) await this.flushBefore(s, s.maxKey)
  }

  /** Infers the frequency from the sample, compares it with the asked one, files the sample. */
  private decide(s: SymbolState) {
    const pending = s.pending!
    const ms = Array.from(pending.ts.subarray(0, pending.n), (t) => bigintToEpochMs(t, "ns"))
    s.inference = inferFrequency(ms)
    const asked = this.opts.freq
    const inferred = s.inference?.freq
    if (asked === undefined) {
      if (!inferred) {
        throw new DataRequestError({ field: "--freq", value: "", reason: `is needed for ${s.symbol} in ${this.opts.file}: one timestamp is not enough to infer the frequency` })
      }
      if (!TICKFLOW_FREQS.includes(inferred)) {
        throw new ImportCheckError({
          file: this.opts.file,
          symbol: s.symbol,
          reason: `the timestamps are ${inferred} (median step ${describeStep(s.inference!.medianStepMs)}), a frequency tickflow does not hold; it stores tick, 1min, 5min, 1h and 1d`
        })
      }
      s.freq = inferred as Freq
    } else {
      if (inferred && !freqAccepts(asked, inferred)) {
        throw new ImportCheckError({
          file: this.opts.file,
          symbol: s.symbol,
          reason:
            `--freq ${asked} was given but the timestamps are ${inferred} (median step ${describeStep(s.inference!.medianStepMs)} over ${s.inference!.samples} rows); ` +
            (TICKFLOW_FREQS.includes(inferred)
              ? `import it with --freq ${inferred}`
              : `tickflow holds only tick, 1min, 5min, 1h and 1d, and filing ${inferred} rows as ${asked} would make indicators and the missing-data checks wrong`)
        })
      }
      s.freq = asked
    }
    s.pending = null
    for (let i = 0; i < pending.n; i++) this.fileFrom(s, pending, i)
  }

  private partitionOf(s: SymbolState, t: bigint): RowBuffer {
    // rows mostly arrive in order: the partition of the previous row is checked first, by range
    const cur = s.current
    if (cur && t >= cur.fromNs && t < cur.toNs) return cur.buf
    const dayIso = nsToDayIso(t)
    const key = partitionKey(s.freq!, dayIso)
    let buf = s.partitions.get(key)
    if (!buf) s.partitions.set(key, (buf = new RowBuffer()))
    if (key > s.maxKey) s.maxKey = key
    const dayStart = BigInt(Date.parse(`${dayIso}T00:00:00Z`)) * 1_000_000n
    const range = s.freq === "1d" ? yearRangeNs(dayIso) : { fromNs: dayStart, toNs: dayStart + NS_PER_DAY }
    s.current = { ...range, buf }
    return buf
  }

  /** Daily bars are stamped 00:00 UTC of their date (the date is the trading day's label). */
  private label(s: SymbolState, t: bigint): bigint {
    if (s.freq !== "1d") return t
    const r = t % NS_PER_DAY
    return r === 0n ? t : t - (r < 0n ? r + NS_PER_DAY : r)
  }

  private file(s: SymbolState, t: bigint, chunk: RowChunk, i: number) {
    const label = this.label(s, t)
    this.partitionOf(s, label).push(label, chunk, i)
  }

  private fileFrom(s: SymbolState, from: RowBuffer, i: number) {
    const label = this.label(s, from.ts[i])
    this.partitionOf(s, label).pushFrom(from, i, label)
  }

  /** Writes the partitions before `key` (all of them when key is undefined). */
  private async flushBefore(s: SymbolState, key: string | undefined) {
    for (const [k, buf] of [...s.partitions.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      if (key !== undefined && k >= key) continue
      s.partitions.delete(k)
      if (s.current?.buf === buf) s.current = null
      await this.writePartition(s, buf)
    }
  }

  private rowsOf(s: SymbolState, buf: RowBuffer): CatalogRows {
    const n = buf.n
    const ts = buf.ts.slice(0, n)
    const col = (k: ColumnKey) => buf.cols[k].slice(0, n)
    const volume = col("volume").map((v) => (Number.isNaN(v) ? 0 : v))
    const c = this.columns
    if (s.freq === "tick") {
      return { kind: "tick", ts, price: col("price"), size: volume, ...(c.bid ? { bid: col("bid") } : {}), ...(c.ask ? { ask: col("ask") } : {}) }
    }
    const close = col("price")
    return {
      kind: "bar",
      ts,
      open: c.open ? col("open") : close,
      high: c.high ? col("high") : close,
      low: c.low ? col("low") : close,
      close,
      volume,
      synthetic: new Uint8Array(n)
    }
  }

  private async writePartition(s: SymbolState, buf: RowBuffer) {
    if (buf.n === 0) return
    const path = join(this.opts.root, catalogRelPath(s.freq!, s.symbol, nsToDayIso(buf.ts[0])))
    s.paths.add(path)
    let part = sortDedupe(this.rowsOf(s, buf))
    if (part.ts.length < buf.n) s.tally.add("duplicate_ts", -1, () => `on ${nsToDayIso(buf.ts[0])}`, buf.n - part.ts.length)
    const source = this.staged.get(path) ?? path
    const existing = await readCatalogRows(source).catch((e) => {
      if (e instanceof ParquetReadError && /ENOENT/.test(e.reason)) return undefined
      throw e
    })
    if (existing && existing.kind === part.kind) part = sortDedupe(concatRows([existing, part], part.kind))
    const bytes = encodeCatalogFile(part, this.opts.rowGroupSize)
    if (!this.staged.has(path)) {
      const current = await fs.readFile(path).catch(() => undefined)
      if (current && Buffer.compare(current, bytes) === 0) return
    }
    const tmp = this.staged.get(path) ?? `${path}.import-${this.id}.tmp`
    await fs.mkdir(join(path, ".."), { recursive: true })
    await fs.writeFile(tmp, bytes)
    this.staged.set(path, tmp)
    this.changed.add(path)
  }

  /** Writes what is left and renames every staged file into place. */
  async commit(): Promise<SymbolImportSummary[]> {
    for (const s of this.symbols.values()) if (s.pending) this.decide(s)
    for (const s of this.symbols.values()) await this.flushBefore(s, undefined)
    for (const [path, tmp] of this.staged) await fs.rename(tmp, path)
    this.staged.clear()
    return [...this.symbols.values()]
      .filter((s) => s.rows > 0 || s.tally.total > 0)
      .sort((a, b) => (a.symbol < b.symbol ? -1 : 1))
      .map((s) => {
        const problems = s.tally.toJSON()
        return {
          symbol: s.symbol,
          freq: s.freq ?? this.opts.freq ?? "tick",
          inferredFreq: s.inference?.freq ?? null,
          rows: s.rows - (problems.duplicate_ts?.count ?? 0),
          files: s.paths.size,
          written: [...s.paths].filter((p) => this.changed.has(p)).length,
          first: s.firstTs === null ? null : msToIso(bigintToEpochMs(s.firstTs, "ns")),
          last: s.maxTs === null ? null : msToIso(bigintToEpochMs(s.maxTs, "ns")),
          problems
        }
      })
  }

  /** Removes staged files after a failure: the catalog stays as it was. */
  async abort(): Promise<void> {
    await Promise.all([...this.staged.values()].map((tmp) => fs.rm(tmp, { force: true })))
    this.staged.clear()
  }
}
