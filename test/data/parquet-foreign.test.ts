/**
 * Files written by another tool (DuckDB): compressions, encodings, row groups and timestamp
 * types; values must equal what DuckDB reads back. Plus broken and non-price files.
 */
import { afterAll, describe, expect, it } from "vitest"
import { copyFile, readFile, truncate, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { readPriceFile, ParquetReadError, NotTickDataError, vegaDataFile, type Decoder } from "../../src/data/index.js"
import { readFooterMetadata } from "../../src/data/parquet.js"
import { bigintToEpochMs } from "../../src/data/time.js"
import { cleanupTempDirs, duck, duckRows, failureOf, run, tempDir } from "./helpers.js"

afterAll(cleanupTempDirs)

const ROWS = 10_000
/** ts every 1.000001234 s from 2020-03-02 14:30 UTC (sub-µs digits), prices with few distinct values */
const source = (tsExpr: string) => `
  SELECT ${tsExpr} AS ts,
         round(100 + (i % 37) * 0.25, 2)::DOUBLE AS price,
         (100 + hash(i) % 900)::INTEGER AS size,
         (100 + i * 0.001)::DOUBLE AS px_plain
  FROM range(${ROWS}) t(i)`
const NS0 = 1583159400000000000n

const writeDuck = async (file: string, tsExpr: string, compression: string, rowGroupSize: number) => {
  const con = await duck()
  await con.run(`COPY (${source(tsExpr)}) TO '${file}' (FORMAT parquet, COMPRESSION ${compression}, ROW_GROUP_SIZE ${rowGroupSize})`)
}

const cases: Array<{ name: string; tsExpr: string; readBack: string; unit: "ns" | "ms" }> = [
  { name: "TIMESTAMP_NS", tsExpr: `make_timestamp_ns((${NS0} + i * 1000001234)::BIGINT)`, readBack: "epoch_ns(ts)", unit: "ns" },
  { name: "TIMESTAMP_MS", tsExpr: `make_timestamp_ms((${NS0 / 1_000_000n} + i * 1001)::BIGINT)`, readBack: "epoch_ms(ts)", unit: "ms" },
  { name: "int64 ns", tsExpr: `(${NS0} + i * 1000001234)::BIGINT`, readBack: "ts", unit: "ns" }
]

describe("Parquet files written by DuckDB", () => {
  for (const c of cases) {
    for (const compression of ["snappy", "zstd", "gzip"]) {
      for (const decoder of ["parquet-wasm", "hyparquet"] as Decoder[]) {
        it(`${c.name}, ${compression}, ${decoder}: values equal DuckDB's`, async () => {
          const dir = await tempDir()
          const file = join(dir, `t-${compression}.parquet`)
          await writeDuck(file, c.tsExpr, compression, 2048)
          const { metadata } = await readFooterMetadata(file)
          expect(metadata.row_groups.length).toBeGreaterThan(1)
          const encodings = new Set(metadata.row_groups.flatMap((rg) => rg.columns.flatMap((col) => col.meta_data?.encodings ?? [])))
          // price has 37 distinct values (dictionary), px_plain is all distinct
          expect([...encodings].some((e) => e.includes("DICTIONARY"))).toBe(true)
          expect(encodings.has("PLAIN")).toBe(true)

          const loaded = await run(readPriceFile(file, { decoder }))
          const expected = await duckRows(`SELECT ${c.readBack}::BIGINT, price, size FROM read_parquet('${file}') ORDER BY ts`)
          const s = loaded.series
          expect(s.ts.length).toBe(ROWS)
          expect(s.freq).toBe("tick")
          expect(loaded.rowGroupsRead).toBe(metadata.row_groups.length)
          for (let i = 0; i < ROWS; i++) {
            const [ts, price, size] = expected[i] as [bigint, number, number]
            if (s.ts[i] !== bigintToEpochMs(ts, c.unit) || s.close[i] !== price || s.volume![i] !== size) {
              throw new Error(`row ${i}: got ${s.ts[i]}/${s.close[i]}/${s.volume![i]}, DuckDB ${ts}/${price}/${size}`)
            }
          }
        })
      }
    }
  }

  it("keeps nanoseconds: the integer ms exact, the sub-ms fraction correctly rounded", async () => {
    const dir = await tempDir()
    const file = join(dir, "ns.parquet")
    await writeDuck(file, cases[0].tsExpr, "snappy", 4096)
    const s = (await run(readPriceFile(file))).series
    // row 1: NS0 + 1000001234 ns = ms 1583159401000 + 0.001234
    expect(Math.floor(s.ts[1])).toBe(1583159401000)
    // a double near 1.6e12 ms resolves 2^-12 ms (0.24 µs): the fraction is within half of that
    expect(Math.abs(s.ts[1] - 1583159401000 - 0.001234)).toBeLessThanOrEqual(2 ** -13)
  })

  it("maps columns by config and reads a bar file with TIMESTAMP(ms) from another tool", async () => {
    const dir = await tempDir()
    const file = join(dir, "bars.parquet")
    const con = await duck()
    await con.run(`COPY (SELECT make_timestamp_ms((1577836800000 + i * 86400000)::BIGINT) AS "time", 10.0 + i AS px, 9.5 + i AS lo, i * 10 AS vol
                       FROM range(50) t(i)) TO '${file}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 2048)`)
    const loaded = await run(readPriceFile(file, { columns: { ts: "time", close: "px", low: "lo", volume: "vol" }, freq: "1d", symbol: "ABC", start: "2020-01-11", end: "2020-01-20", warmupBars: 3 }))
    const s = loaded.series
    expect(s.symbol).toBe("ABC")
    expect(s.freq).toBe("1d")
    expect(s.startIndex).toBe(3)
    expect(s.ts.length).toBe(13)
    expect(new Date(s.ts[s.startIndex]).toISOString()).toBe("2020-01-11T00:00:00.000Z")
    expect(s.close[s.startIndex]).toBe(20)
    expect(s.low![s.startIndex]).toBe(19.5)
    expect(s.volume![s.startIndex]).toBe(100)
  })

  it("a truncated file is a ParquetReadError naming the file", async () => {
    const dir = await tempDir()
    const file = join(dir, "truncated.parquet")
    await writeDuck(file, cases[0].tsExpr, "snappy", 2048)
    const { size } = await import("node:fs/promises").then((fs) => fs.stat(file))
    await truncate(file, Math.floor(size / 2))
    const error = await failureOf(readPriceFile(file))
    expect(error).toBeInstanceOf(ParquetReadError)
    expect(error.message).toContain(file)
    expect(error.message).toMatch(/PAR1|truncated/)
  })

  it("a corrupted file is a ParquetReadError naming the file, and the decoder still works after", async () => {
    const dir = await tempDir()
    const good = join(dir, "good.parquet")
    const bad = join(dir, "corrupted.parquet")
    await writeDuck(good, cases[0].tsExpr, "snappy", 2048)
    await copyFile(good, bad)
    const bytes = new Uint8Array(await readFile(bad))
    // overwrite the first page headers and data (the footer stays intact)
    for (let i = 4; i < 4 + 4096; i++) bytes[i] = 0xff
    await writeFile(bad, bytes)
    for (const decoder of ["parquet-wasm", "hyparquet"] as Decoder[]) {
      const error = await failureOf(readPriceFile(bad, { decoder }))
      expect(error).toBeInstanceOf(ParquetReadError)
      expect(error.message).toContain(bad)
    }
    const after = await run(readPriceFile(good))
    expect(after.series.ts.length).toBe(ROWS)
  })

  it("flights-3m.parquet (not prices) is a NotTickDataError listing what it found", async () => {
    const error = await failureOf(readPriceFile(vegaDataFile("flights-3m.parquet")))
    expect(error).toBeInstanceOf(NotTickDataError)
    expect(error.message).toContain("flights-3m.parquet")
    expect(error.message).toContain("not tick/bar data: no column")
    expect(error.message).toContain("found: date, delay, distance, origin, destination")
  })

  it("a file that is not Parquet at all names the file", async () => {
    const dir = await tempDir()
    const file = join(dir, "notes.parquet")
    await writeFile(file, "this is a text file, not Parquet\n")
    const error = await failureOf(readPriceFile(file))
    expect(error).toBeInstanceOf(ParquetReadError)
    expect(error.message).toContain(file)
  })
})
