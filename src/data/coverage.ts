/**
 * Phase 1: what the catalog holds, per symbol and frequency, from Parquet footers only.
 *
 * Method, per file (its footer is read from the file tail; no data page is decoded):
 * - rows, first and last timestamp: num_rows and the min/max statistics of the ts column over
 *   the row groups.
 * - days present and gaps: files tickflow writes carry, in the footer's key/value metadata,
 *   the runs of UTC days that hold rows ("tickflow.days"), so days and gaps are exact even
 *   inside a yearly daily-bar file. For files another tool wrote, each row group's ts
 *   statistics stand for the days from its min to its max: exact when a row group is one day
 *   (as in a one-file-per-day layout), an upper bound otherwise; only gaps between row groups
 *   are seen. A file without ts statistics is the one case where the ts column is decoded.
 * - gaps: consecutive stretches whose last and next first timestamps are more than `gapDays`
 *   calendar days apart (default 4: a weekend plus a holiday is not a gap, 9/11 2001 is).
 *
 * Per-file summaries are cached in <root>/.coverage-cache.json keyed by path, size and mtime,
 * so an unchanged catalog is re-indexed with a directory walk and stat calls only.
 */
import { createHash } from "node:crypto"
import { promises as fs } from "node:fs"
import { join } from "node:path"
import { FREQ_MS, FREQS, type Freq } from "../schemas/common.js"
import type { CatalogProblem, CoverageEntry, CoverageGap, CoverageReport } from "./types.js"
import { isDataError } from "./errors.js"
import { COVERAGE_CACHE_FILE, listCatalogFiles, type CatalogFile } from "./layout.js"
import { decodeRowGroups, readFooter, readWholeFile } from "./parquet.js"
import { DAYS_KEY, parseDayRuns } from "./write.js"
import { msToIso, MS_PER_DAY, utcDay } from "./time.js"

export interface CoverageOptions {
  readonly freqs?: ReadonlyArray<Freq>
  readonly symbols?: ReadonlyArray<string>
  /** a stretch without rows longer than this many calendar days is a gap (default 4) */
  readonly gapDays?: number
  /**
   * the caller's in-memory copy of the on-disk file summaries, by root: a long-running process
   * re-reads only the file list (to see changes), not the cache file (MBs for a tick catalog)
   */
  readonly memory?: CoverageMemory
}

/** File summaries of catalog roots kept by a process between builds (see CoverageOptions.memory). */
export type CoverageMemory = Map<string, CacheFile>

/** A stretch of rows with no gap inside that coverage can see. */
interface Segment {
  readonly firstMs: number
  readonly lastMs: number
  readonly firstDay: number
  readonly lastDay: number
}

interface FileSummary {
  /** why the file cannot be used (unreadable, not prices, rows outside its name's period); it then counts for nothing */
  readonly problem?: string
  readonly rows: number
  readonly firstMs: number | null
  readonly lastMs: number | null
  readonly segments: ReadonlyArray<Segment>
}

export interface CacheFile {
  readonly version: number
  readonly files: Record<string, { size: number; mtimeMs: number; summary: FileSummary }>
}

const CACHE_VERSION = 2
export const DEFAULT_GAP_DAYS = 4

const dayStart = (day: number) => day * MS_PER_DAY

const segmentsFromRuns = (runs: ReadonlyArray<[number, number]>, firstMs: number, lastMs: number): Segment[] =>
  runs.map(([a, b], i) => ({
    firstDay: a,
    lastDay: b,
    // inside a file only the file's own first/last ts are known exactly; other run edges are
    // day starts, which is exact for daily bars (stamped 00:00 UTC)
    firstMs: i === 0 ? firstMs : dayStart(a),
    lastMs: i === runs.length - 1 ? lastMs : dayStart(b)
  }))

const runsOfTimestamps = (ts: Float64Array): Array<[number, number]> => {
  const days = [...new Set(Array.from(ts, utcDay))].sort((a, b) => a - b)
  const runs: Array<[number, number]> = []
  for (const d of days) {
    const last = runs[runs.length - 1]
    if (last && d === last[1] + 1) last[1] = d
    else runs.push([d, d])
  }
  return runs
}

/** A file's summary, or the reason it cannot be used: one bad file must not hide the rest of the catalog. */
const summarize = async (file: CatalogFile): Promise<FileSummary> => {
  let summary: FileSummary
  try {
    summary = await summarizeReadable(file)
  } catch (e) {
    const reason = isDataError(e) ? e.message : `cannot be read: ${e instanceof Error ? e.message : String(e)}`
    return { problem: reason, rows: 0, firstMs: null, lastMs: null, segments: [] }
  }
  const p = file.period
  if (p && summary.firstMs !== null && summary.lastMs !== null && (summary.firstMs < p.fromMs || summary.lastMs >= p.toMs)) {
    return {
      ...summary,
      problem:
        `${file.path} holds rows from ${msToIso(summary.firstMs)} to ${msToIso(summary.lastMs)}, outside the period its name says ` +
        `(${msToIso(p.fromMs).slice(0, 10)} to ${msToIso(p.toMs - 1).slice(0, 10)}); it would be read for the wrong dates. ` +
        `Remove it and import the data with \`tickflow data import\`, which files rows by date`
    }
  }
  return summary
}

const summarizeReadable = async (file: CatalogFile): Promise<FileSummary> => {
  const footer = await readFooter(file.path)
  const rows = footer.rows
  if (rows === 0) return { rows: 0, firstMs: null, lastMs: null, segments: [] }
  const mins = footer.rowGroups.map((g) => g.minMs)
  const maxs = footer.rowGroups.map((g) => g.maxMs)
  const haveStats = mins.every((v) => v !== null) && maxs.every((v) => v !== null)
  const runsText = footer.keyValues[DAYS_KEY]
  if (!haveStats || runsText === undefined) {
    // no statistics, or a file another tool wrote (no day list in its footer): decode it once,
    // cached by size and mtime, so days and gaps are exact rather than a row group's min..max
    const decoded = await decodeRowGroups(await readWholeFile(file.path), footer, footer.rowGroups.map((g) => g.index))
    let lo = Infinity
    let hi = -Infinity
    for (const t of decoded.ts) {
      if (t < lo) lo = t
      if (t > hi) hi = t
    }
    return { rows, firstMs: lo, lastMs: hi, segments: segmentsFromRuns(runsOfTimestamps(decoded.ts), lo, hi) }
  }
  const firstMs = Math.min(...(mins as number[]))
  const lastMs = Math.max(...(maxs as number[]))
  return { rows, firstMs, lastMs, segments: segmentsFromRuns(parseDayRuns(runsText), firstMs, lastMs) }
}

const readCache = async (root: string): Promise<CacheFile> => {
  try {
    const parsed = JSON.parse(await fs.readFile(join(root, COVERAGE_CACHE_FILE), "utf8")) as CacheFile
    if (parsed.version === CACHE_VERSION && parsed.files && typeof parsed.files === "object") return parsed
  } catch {
    // missing or unreadable cache: rebuild
  }
  return { version: CACHE_VERSION, files: {} }
}

const writeCache = async (root: string, cache: CacheFile): Promise<void> => {
  const path = join(root, COVERAGE_CACHE_FILE)
  const tmp = `${path}.${process.pid}.tmp`
  try {
    await fs.writeFile(tmp, JSON.stringify(cache))
    await fs.rename(tmp, path)
  } catch {
    // a read-only catalog still gets a report, just not a cache
  }
}

/** sha256 over the sorted (path, size, mtime) of the files: changes whenever any file does. */
export const catalogVersion = (files: ReadonlyArray<CatalogFile>): string => {
  const h = createHash("sha256")
  for (const f of [...files].sort((a, b) => (a.relPath < b.relPath ? -1 : 1))) h.update(`${f.relPath}\t${f.size}\t${f.mtimeMs}\n`)
  return h.digest("hex")
}

const mergeEntry = (
  symbol: string,
  freq: Freq,
  summaries: ReadonlyArray<FileSummary>,
  gapDays: number
): CoverageEntry | null => {
  const segments = summaries.flatMap((s) => s.segments).sort((a, b) => a.firstMs - b.firstMs)
  const rows = summaries.reduce((s, f) => s + f.rows, 0)
  if (segments.length === 0) return null
  const dayRuns = segments.map((s) => [s.firstDay, s.lastDay] as [number, number]).sort((a, b) => a[0] - b[0])
  let days = 0
  let coveredUntil = -Infinity
  for (const [a, b] of dayRuns) {
    const from = Math.max(a, coveredUntil + 1)
    if (b >= from) days += b - from + 1
    coveredUntil = Math.max(coveredUntil, b)
  }
  const gaps: CoverageGap[] = []
  let lastMs = segments[0].lastMs
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]
    const length = (s.firstMs - lastMs) / MS_PER_DAY
    if (length > gapDays) gaps.push({ from: msToIso(lastMs), to: msToIso(s.firstMs), days: Math.round(length * 1e4) / 1e4 })
    lastMs = Math.max(lastMs, s.lastMs)
  }
  const first = Math.min(...segments.map((s) => s.firstMs))
  const last = Math.max(...segments.map((s) => s.lastMs))
  return { symbol, freq, first: msToIso(first), last: msToIso(last), rows, days, gaps, files: summaries.length }
}

/** Builds the coverage report of a catalog root (async core; see buildCoverage for the Effect). */
export const buildCoverageAsync = async (root: string, opts: CoverageOptions = {}): Promise<CoverageReport> => {
  const gapDays = opts.gapDays ?? DEFAULT_GAP_DAYS
  const wantedFreqs = opts.freqs ?? FREQS
  // ticks are listed even when not asked for, to report bar frequencies derivable from them
  const listFreqs = wantedFreqs.includes("tick") ? wantedFreqs : [...wantedFreqs, "tick" as const]
  const files = await listCatalogFiles(root, { freqs: listFreqs, ...(opts.symbols ? { symbols: opts.symbols } : {}) })
  const cache = opts.memory?.get(root) ?? (await readCache(root))
  const nextCache: CacheFile = { version: CACHE_VERSION, files: { ...cache.files } }
  let changed = false
  const summaries = new Map<CatalogFile, FileSummary>()
  const misses: CatalogFile[] = []
  for (const f of files) {
    const hit = cache.files[f.relPath]
    if (hit && hit.size === f.size && hit.mtimeMs === f.mtimeMs) summaries.set(f, hit.summary)
    else misses.push(f)
  }
  const CONCURRENCY = 32
  for (let i = 0; i < misses.length; i += CONCURRENCY) {
    const batch = misses.slice(i, i + CONCURRENCY)
    const results = await Promise.all(batch.map(summarize))
    batch.forEach((f, k) => {
      summaries.set(f, results[k])
      nextCache.files[f.relPath] = { size: f.size, mtimeMs: f.mtimeMs, summary: results[k] }
      changed = true
    })
  }
  if (!opts.freqs && !opts.symbols) {
    // a full build also forgets deleted files
    const present = new Set(files.map((f) => f.relPath))
    for (const key of Object.keys(nextCache.files)) {
      if (!present.has(key)) {
        delete nextCache.files[key]
        changed = true
      }
    }
  }
  if (changed) await writeCache(root, nextCache)
  opts.memory?.set(root, nextCache)

  const groups = new Map<string, { symbol: string; freq: Freq; summaries: FileSummary[] }>()
  const problems: CatalogProblem[] = []
  for (const f of files) {
    const key = `${f.symbol}\u0000${f.freq}`
    let g = groups.get(key)
    if (!g) groups.set(key, (g = { symbol: f.symbol, freq: f.freq, summaries: [] }))
    const summary = summaries.get(f)!
    if (summary.problem !== undefined) problems.push({ file: f.relPath, path: f.path, symbol: f.symbol, freq: f.freq, period: periodOf(f), reason: summary.problem })
    else g.summaries.push(summary)
  }
  const entries: CoverageEntry[] = []
  for (const g of groups.values()) {
    if (!wantedFreqs.includes(g.freq)) continue
    const e = mergeEntry(g.symbol, g.freq, g.summaries, gapDays)
    if (e) entries.push(e)
  }
  // bar frequencies not on disk but derivable from ticks
  for (const g of groups.values()) {
    if (g.freq !== "tick") continue
    const ticks = mergeEntry(g.symbol, "tick", g.summaries, gapDays)
    if (!ticks) continue
    for (const freq of wantedFreqs) {
      if (freq === "tick" || groups.has(`${g.symbol}\u0000${freq}`)) continue
      // rows: an upper bound (one bar per bucket of each day with ticks), not known until resampled
      const rows = Math.min(ticks.rows, ticks.days * Math.ceil(MS_PER_DAY / FREQ_MS[freq]))
      entries.push({ ...ticks, freq, rows, derivedFromTicks: true })
    }
  }
  entries.sort((a, b) => (a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : FREQS.indexOf(a.freq) - FREQS.indexOf(b.freq)))
  return { root, builtAt: new Date().toISOString(), entries, problems, dataVersion: catalogVersion(files) }
}

const periodOf = (f: CatalogFile): CatalogProblem["period"] =>
  f.period ? { from: msToIso(f.period.fromMs).slice(0, 10), to: msToIso(f.period.toMs - 1).slice(0, 10) } : null

/**
 * The unusable files a slice of `symbol` at `freq` from `start` to `end` (YYYY-MM-DD) would
 * read: those whose name's period overlaps the range, or whose name gives no period.
 */
export const problemsFor = (report: CoverageReport, symbol: string, freq: Freq, start: string, end: string): CatalogProblem[] =>
  (report.problems ?? []).filter((p) => p.symbol === symbol && p.freq === freq && (p.period === null || (p.period.from <= end && p.period.to >= start)))

/** The entry of one symbol and frequency, or undefined when the catalog has none. */
export const coverageFor = (report: CoverageReport, symbol: string, freq: Freq): CoverageEntry | undefined =>
  report.entries.find((e) => e.symbol === symbol && e.freq === freq)
