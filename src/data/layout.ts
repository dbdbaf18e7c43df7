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
import { promises as fs } from "node:fs"
import { join, relative, sep } from "node:path"
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

const readdirSafe = async (dir: string) => {
  try {
    return await fs.readdir(dir, { withFileTypes: true })
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return []
    throw e
  }
}

/** Every .parquet file under <freq>/<symbol>/ (any depth), sorted by path, with size and mtime. */
export const listCatalogFiles = async (
  root: string,
  filter: { freqs?: ReadonlyArray<Freq>; symbols?: ReadonlyArray<string> } = {}
): Promise<CatalogFile[]> => {
  const out: CatalogFile[] = []
  const freqs = filter.freqs ?? FREQS
  for (const freq of freqs) {
    const freqDir = join(root, freq)
    const symbolEntries = await readdirSafe(freqDir)
    for (const s of symbolEntries) {
      if (!s.isDirectory() || s.name.startsWith(".")) continue
      if (filter.symbols && !filter.symbols.includes(s.name)) continue
      const stack = [join(freqDir, s.name)]
      const paths: string[] = []
      while (stack.length > 0) {
        const dir = stack.pop()!
        for (const e of await readdirSafe(dir)) {
          if (e.name.startsWith(".")) continue
          const p = join(dir, e.name)
          if (e.isDirectory()) stack.push(p)
          else if (e.isFile() && e.name.endsWith(".parquet")) paths.push(p)
        }
      }
      paths.sort()
      const stats = await Promise.all(paths.map((p) => fs.stat(p)))
      paths.forEach((p, i) => {
        const name = p.slice(p.lastIndexOf(sep) + 1)
        out.push({
          freq,
          symbol: s.name,
          relPath: relative(root, p).split(sep).join("/"),
          path: p,
          size: stats[i].size,
          mtimeMs: stats[i].mtimeMs,
          period: periodOfFileName(name)
        })
      })
    }
  }
  return out
}
