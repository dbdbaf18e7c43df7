/**
 * Catalog layout on disk:
 *
 *   <root>/<freq>/<SYMBOL>/<YYYY>/<YYYY-MM-DD>.parquet   ticks, 1min, 5min, 1h: one file per UTC day
 *   <root>/1d/<SYMBOL>/<YYYY>.parquet                    daily bars: one file per year
 *
 * Intraday files are one per day because a day of ticks is already thousands to millions of
 * rows (a good Parquet file size), a day is the unit a backtest range, an import and a gap are
 * counted in, and each file's footer statistics then say exactly which day it holds.
 * Daily bars are one file per year: a year is only ~252 rows, so per-day or per-month files
 * would be mostly footer (a 20-year history would cost 5,000 or 240 footer reads to index);
 * per year keeps 20 files for 20 years while a short backtest still skips the other years.
 */
import { readdirSync, statSync, type Dirent } from "node:fs"
import { join } from "node:path"
import { FREQS, type Freq } from "../schemas/common.js"
import { MS_PER_DAY } from "./time.js"

export const COVERAGE_CACHE_FILE = ".coverage-cache.json"

export const isDailyFreq = (freq: Freq): boolean => freq === "1d"

/** Relative path (with '/' separators) of the catalog file holding `dayIso` (YYYY-MM-DD). */
export const catalogRelPath = (freq: Freq, symbol: string, dayIso: string): string =>
  isDailyFreq(freq)
    ? `${freq}/${symbol}/${dayIso.slice(0, 4)}.parquet`
    : `${freq}/${symbol}/${dayIso.slice(0, 4)}/${dayIso}.parquet`

/** The partition key (file stem) a row at `dayIso` belongs to. */
export const partitionKey = (freq: Freq, dayIso: string): string => (isDailyFreq(freq) ? dayIso.slice(0, 4) : dayIso)

export interface CatalogFile {
  readonly freq: Freq
  readonly symbol: string
  /** path relative to the root, '/' separated: the cache key */
  readonly relPath: string
  readonly path: string
  readonly size: number
  readonly mtimeMs: number
  /** UTC ms range [from, to) the file name promises, or null for a name we did not choose */
  readonly period: { readonly fromMs: number; readonly toMs: number } | null
}

/** The time range a catalog file name covers (YYYY, YYYY-MM or YYYY-MM-DD), or null. */
export const periodOfFileName = (name: string): { fromMs: number; toMs: number } | null => {
  const stem = name.replace(/\.parquet$/, "")
  let m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(stem)
  if (m) {
    const from = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))
    return { fromMs: from, toMs: from + MS_PER_DAY }
  }
  m = /^(\d{4})-(\d{2})$/.exec(stem)
  if (m) return { fromMs: Date.UTC(Number(m[1]), Number(m[2]) - 1, 1), toMs: Date.UTC(Number(m[1]), Number(m[2]), 1) }
  m = /^(\d{4})$/.exec(stem)
  if (m) return { fromMs: Date.UTC(Number(m[1]), 0, 1), toMs: Date.UTC(Number(m[1]) + 1, 0, 1) }
  return null
}

const readdirSafe = (dir: string): Dirent[] => {
  try {
    return readdirSync(dir, { withFileTypes: true })
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return []
    throw e
  }
}

/** Directories read and files stat'ed before the event loop gets a turn (a few ms of work). */
const WALK_BATCH = 1_000

/**
 * Every .parquet file under <freq>/<symbol>/ (any depth), sorted by path, with size and mtime.
 * Read with synchronous readdir and stat, the event loop getting a turn every WALK_BATCH
 * directories and files: a promise per file and directory (a thread-pool round trip each) cost
 * the actors' thread ~50 ms for a 449-file catalog at every coverage rebuild under the
 * pipeline's load (CPU profile of bench/pipeline.ts), where a synchronous stat takes a few µs.
 */
export const listCatalogFiles = async (
  root: string,
  filter: { freqs?: ReadonlyArray<Freq>; symbols?: ReadonlyArray<string> } = {}
): Promise<CatalogFile[]> => {
  const out: CatalogFile[] = []
  const freqs = filter.freqs ?? FREQS
  let work = 0
  const turn = async () => {
    if (++work % WALK_BATCH === 0) await new Promise<void>((resolve) => setImmediate(resolve))
  }
  for (const freq of freqs) {
    const freqDir = join(root, freq)
    for (const s of readdirSafe(freqDir)) {
      if (!s.isDirectory() || s.name.startsWith(".")) continue
      if (filter.symbols && !filter.symbols.includes(s.name)) continue
      // each directory with its path relative to the root, written with "/"
      const stack: Array<{ dir: string; rel: string }> = [{ dir: join(freqDir, s.name), rel: `${freq}/${s.name}` }]
      const files: Array<{ path: string; relPath: string; name: string }> = []
      while (stack.length > 0) {
        const { dir, rel } = stack.pop()!
        await turn()
        for (const e of readdirSafe(dir)) {
          if (e.name.startsWith(".")) continue
          if (e.isDirectory()) stack.push({ dir: join(dir, e.name), rel: `${rel}/${e.name}` })
          else if (e.isFile() && e.name.endsWith(".parquet")) files.push({ path: join(dir, e.name), relPath: `${rel}/${e.name}`, name: e.name })
        }
      }
      files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
      for (const f of files) {
        await turn()
        const st = statSync(f.path)
        out.push({ freq, symbol: s.name, relPath: f.relPath, path: f.path, size: st.size, mtimeMs: st.mtimeMs, period: periodOfFileName(f.name) })
      }
    }
  }
  return out
}
