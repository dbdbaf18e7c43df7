/**
 * Load benchmark: 2M ticks (ts int64 ns, price double, size int32) written by DuckDB with snappy.
 * Medians of 5, all measured in this one run:
 *  - tickflow cold: Parquet file → PriceSeries (ts as epoch-ms doubles), with each decoder;
 *    the faster decoder is the one the loader uses (DEFAULT_DECODER) — printed for the record;
 *  - the peer: DuckDB node-api, one thread, fetchChunk() vectors, no per-value conversion;
 *  - tickflow warm: Arrow IPC slice in memory → PriceSeries (decodeSlice).
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { DuckDBInstance } from "@duckdb/node-api"
import { decodeSlice, DEFAULT_DECODER, encodeSlice, readPriceFile, type Decoder } from "../src/data/index.js"

const ROWS = 2_000_000
const RUNS = 5
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const gc = () => (globalThis as { gc?: () => void }).gc?.()

const dir = mkdtempSync(join(tmpdir(), "tickflow-bench-load-"))
const file = join(dir, "ticks.parquet")
try {
  const instance = await DuckDBInstance.create(":memory:")
  const con = await instance.connect()
  await con.run(`COPY (
      SELECT (1577977800000000000 + i * 11700000 + (hash(i) % 1000))::BIGINT AS ts,
             round(100 + 20 * sin(i / 50000.0) + (hash(i * 7) % 1000) / 1000.0, 2)::DOUBLE AS price,
             (1 + hash(i * 13) % 500)::INTEGER AS size
      FROM range(${ROWS}) t(i)
    ) TO '${file}' (FORMAT parquet, COMPRESSION snappy)`)
  await con.run("SET threads=1")

  const timeIt = async (fn: () => Promise<number>): Promise<number> => {
    const times: number[] = []
    for (let r = 0; r < RUNS; r++) {
      gc()
      const t0 = performance.now()
      const rows = await fn()
      const dt = (performance.now() - t0) / 1000
      if (rows !== ROWS) throw new Error(`expected ${ROWS} rows, got ${rows}`)
      times.push(dt)
    }
    return ROWS / median(times)
  }

  const tickflow = (decoder: Decoder) => async () => {
    const loaded = await Effect.runPromise(readPriceFile(file, { decoder }))
    return loaded.series.ts.length
  }
  // one warm-up each so JIT and WebAssembly compilation are not in the first timed run
  await tickflow("parquet-wasm")()
  await tickflow("hyparquet")()
  const wasmRate = await timeIt(tickflow("parquet-wasm"))
  const hyparquetRate = await timeIt(tickflow("hyparquet"))

  const duckdb = async () => {
    const result = await con.stream(`SELECT ts, price, size FROM read_parquet('${file}')`)
    let rows = 0
    for (;;) {
      const chunk = await result.fetchChunk()
      if (!chunk || chunk.rowCount === 0) break
      chunk.getColumnVector(0)
      chunk.getColumnVector(1)
      chunk.getColumnVector(2)
      rows += chunk.rowCount
    }
    return rows
  }
  await duckdb()
  const duckRate = await timeIt(duckdb)

  const slice = (await Effect.runPromise(readPriceFile(file))).series
  const ipc = encodeSlice(slice)
  const warm = async () => decodeSlice(ipc).ts.length
  await warm()
  const warmRate = await timeIt(warm)

  // the same, plus one pass over ts and close, for a reader who doubts zero-copy views
  const warmTouched = async () => {
    const s = decodeSlice(ipc)
    let acc = 0
    for (let i = 0; i < s.ts.length; i++) acc += s.close[i] + s.ts[i] * 0
    return Number.isNaN(acc) ? 0 : s.ts.length
  }
  const warmTouchedRate = await timeIt(warmTouched)

  const chosen = wasmRate >= hyparquetRate ? "parquet-wasm" : "hyparquet"
  const fmt = (v: number) => `${(v / 1e6).toFixed(2)} M rows/s`
  console.log(`rows                         ${ROWS} (ts int64 ns, price double, size int32; DuckDB-written, snappy)`)
  console.log(`tickflow cold, parquet-wasm  ${fmt(wasmRate)}`)
  console.log(`tickflow cold, hyparquet     ${fmt(hyparquetRate)}`)
  console.log(`faster decoder               ${chosen} (loader default: ${DEFAULT_DECODER}${chosen === DEFAULT_DECODER ? "" : " — update DEFAULT_DECODER"})`)
  console.log(`DuckDB 1 thread, fetchChunk  ${fmt(duckRate)}`)
  console.log(`tickflow warm (Arrow IPC)    ${fmt(warmRate)}  (${(ipc.byteLength / 1e6).toFixed(1)} MB slice)`)
  console.log(`tickflow warm + one pass     ${fmt(warmTouchedRate)}`)
  const coldRate = DEFAULT_DECODER === "parquet-wasm" ? wasmRate : hyparquetRate
  console.log(`RESULT load_cold_vs_duckdb ${(coldRate / duckRate).toFixed(3)} goal 0.5`)
  console.log(`RESULT load_warm_vs_duckdb ${(warmRate / duckRate).toFixed(3)} goal 5`)
  console.log(`RESULT load_cold_rows_per_s ${coldRate.toExponential(3)} goal 6e6`)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
