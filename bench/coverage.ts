/**
 * Coverage benchmark: a 50-symbol × 2-year daily catalog (generated, 100 files). Median of 5:
 * cold = no cache file (every footer read and parsed), cached = unchanged catalog with
 * <root>/.coverage-cache.json present (directory walk + stat only).
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { buildCoverage, COVERAGE_CACHE_FILE, footerCounters, generateCatalog } from "../src/data/index.js"

const RUNS = 5
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const root = mkdtempSync(join(tmpdir(), "tickflow-bench-coverage-"))
try {
  const symbols = Array.from({ length: 50 }, (_, i) => `S${String(i).padStart(3, "0")}`)
  await Effect.runPromise(generateCatalog({ root, symbols, freqs: ["1d"], start: "2019-01-01", end: "2020-12-31", seed: 7 }))
  const time = async (before: () => void) => {
    const times: number[] = []
    for (let r = 0; r < RUNS; r++) {
      before()
      const t0 = performance.now()
      const report = await Effect.runPromise(buildCoverage(root))
      times.push(performance.now() - t0)
      if (report.entries.length !== 50) throw new Error(`expected 50 entries, got ${report.entries.length}`)
    }
    return median(times)
  }
  // warm the module code paths once so the cold number measures I/O and parsing, not JIT
  await Effect.runPromise(buildCoverage(root))
  const reads0 = footerCounters.reads
  const cold = await time(() => rmSync(join(root, COVERAGE_CACHE_FILE), { force: true }))
  const readsCold = (footerCounters.reads - reads0) / RUNS
  const reads1 = footerCounters.reads
  const cached = await time(() => {})
  const readsCached = (footerCounters.reads - reads1) / RUNS
  console.log(`catalog        50 symbols × 2 years daily (100 files)`)
  console.log(`cold           ${cold.toFixed(1)} ms (${readsCold} footers read per build)`)
  console.log(`cached         ${cached.toFixed(1)} ms (${readsCached} footers read per build)`)
  console.log(`RESULT coverage_cold_ms ${cold.toFixed(1)} goal 1000`)
  console.log(`RESULT coverage_cached_ms ${cached.toFixed(1)} goal 50`)
} finally {
  rmSync(root, { recursive: true, force: true })
}
