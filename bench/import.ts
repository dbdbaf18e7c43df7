/**
 * Import benchmark: a large tick Parquet file (ts TIMESTAMP(NANOS, UTC), price DOUBLE, size
 * INTEGER; written by DuckDB, snappy, DuckDB's default row groups) spread over trading days,
 * imported into an empty catalog by `tickflow data import` in a child process (so its peak RSS
 * is the import's own), against DuckDB in this same run:
 *  - DuckDB reading the same file (1 thread, fetchChunk vectors, no per-value conversion);
 *  - DuckDB doing the same job: the file re-written as one Parquet file per day (1 thread).
 *
 * Knobs (environment): IMPORT_ROWS (default 10,000,000; the figure is 50,000,000),
 * IMPORT_ROWS_PER_DAY (default 500,000).
 */
import "./_support.js"
import { spawn } from "node:child_process"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createRequire } from "node:module"
import { fileURLToPath } from "node:url"
import { DuckDBInstance } from "@duckdb/node-api"
import { fmt, printResults, result } from "./_support.js"

const CHILD = "--import-child"

if (process.argv[2] === CHILD) {
  // the measured side: one import, then its own figures on stdout
  const { importFileAsync } = await import("../src/data/import.js")
  const [file, root] = process.argv.slice(3)
  const t0 = performance.now()
  const report = await importFileAsync({ file, root, symbol: "BIG", freq: "tick" })
  const seconds = (performance.now() - t0) / 1000
  const s = report.symbols[0]
  console.log(JSON.stringify({ rows: s.rows, files: s.files, seconds, maxRssMb: process.resourceUsage().maxRSS / 1024, first: s.first, last: s.last }))
  process.exit(0)
}

const ROWS = Number(process.env.IMPORT_ROWS ?? 10_000_000)
const ROWS_PER_DAY = Number(process.env.IMPORT_ROWS_PER_DAY ?? 500_000)
const RSS_GOAL_MB = 1536

const runChild = (file: string, root: string): Promise<{ rows: number; files: number; seconds: number; maxRssMb: number }> =>
  new Promise((resolve, reject) => {
    const tsx = createRequire(import.meta.url).resolve("tsx/cli")
    const child = spawn(process.execPath, [tsx, fileURLToPath(import.meta.url), CHILD, file, root], { stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    child.stdout.on("data", (d) => (out += d))
    child.on("error", reject)
    child.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`import child exited ${code}`))
      try {
        resolve(JSON.parse(out.trim().split("\n").pop()!))
      } catch (e) {
        reject(new Error(`import child printed ${out.slice(0, 300)}: ${(e as Error).message}`))
      }
    })
  })

const dir = mkdtempSync(join(tmpdir(), "tickflow-bench-import-"))
try {
  const file = join(dir, "ticks.parquet")
  const instance = await DuckDBInstance.create(":memory:")
  const con = await instance.connect()
  const nsPerRow = Math.floor(23_400_000_000_000 / ROWS_PER_DAY) // a 6.5 h session per day
  const t0 = performance.now()
  await con.run(`COPY (
      SELECT make_timestamp_ns((1577977800000000000 + (i // ${ROWS_PER_DAY}) * 86400000000000 + (i % ${ROWS_PER_DAY}) * ${nsPerRow} + hash(i) % 1000)::BIGINT) AS ts,
             round(100 + 20 * sin(i / 50000.0) + (hash(i * 7) % 1000) / 1000.0, 2)::DOUBLE AS price,
             (1 + hash(i * 13) % 500)::INTEGER AS size
      FROM range(${ROWS}) t(i)
    ) TO '${file}' (FORMAT parquet, COMPRESSION snappy)`)
  const days = Math.ceil(ROWS / ROWS_PER_DAY)
  console.log(`file: ${fmt(ROWS)} ticks over ${days} days, written by DuckDB in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  await con.run("SET threads=1")

  // peer 1: DuckDB reading the file
  const r0 = performance.now()
  const stream = await con.stream(`SELECT ts, price, size FROM read_parquet('${file}')`)
  let duckRows = 0
  for (;;) {
    const chunk = await stream.fetchChunk()
    if (!chunk || chunk.rowCount === 0) break
    chunk.getColumnVector(0)
    chunk.getColumnVector(1)
    chunk.getColumnVector(2)
    duckRows += chunk.rowCount
  }
  const duckReadRate = duckRows / ((performance.now() - r0) / 1000)

  // peer 2: DuckDB doing the import's job (one Parquet file per day)
  const duckOut = join(dir, "duck-partitioned")
  const c0 = performance.now()
  await con.run(`COPY (SELECT ts, price, size, strftime(ts, '%Y-%m-%d') AS day FROM read_parquet('${file}')) TO '${duckOut}' (FORMAT parquet, PARTITION_BY (day))`)
  const duckCopyRate = ROWS / ((performance.now() - c0) / 1000)
  instance.closeSync?.()

  // tickflow
  const root = join(dir, "catalog")
  const imported = await runChild(file, root)
  if (imported.rows !== ROWS) throw new Error(`imported ${imported.rows} rows, expected ${ROWS}`)
  const written = readdirSync(join(root, "tick", "BIG"), { recursive: true }).filter((f) => String(f).endsWith(".parquet")).length
  const importRate = ROWS / imported.seconds
  console.log(`tickflow data import          ${fmt(importRate)} rows/s  (${imported.seconds.toFixed(1)} s, ${written} day files, peak RSS ${fmt(imported.maxRssMb)} MB)`)
  console.log(`DuckDB read, 1 thread         ${fmt(duckReadRate)} rows/s`)
  console.log(`DuckDB per-day copy, 1 thread ${fmt(duckCopyRate)} rows/s`)
  // goals: a quarter of DuckDB doing the same job single-threaded; peak RSS under 1.5 GB
  result("import_rows_per_s", importRate, Math.round(duckCopyRate * 0.25))
  result("import_vs_duckdb_read", importRate / duckReadRate, 0.1)
  result("import_peak_rss_mb", imported.maxRssMb, RSS_GOAL_MB)
  result("import_rows", ROWS, 50_000_000)
  printResults()
} finally {
  rmSync(dir, { recursive: true, force: true })
}
