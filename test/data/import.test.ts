/**
 * `data import` of files written by other tools. The oracle is the writer itself: DuckDB reads
 * the source file and the catalog files the import wrote, and rows, first/last and column sums
 * must agree (a DuckDB query per side; nothing here is computed by tickflow's own reader).
 */
import { afterAll, describe, expect, it } from "vitest"
import { readdir, writeFile } from "node:fs/promises"
import { join } from "node:path"
import * as arrow from "apache-arrow"
import { Compression, Table as WasmTable, WriterPropertiesBuilder, WriterVersion, writeParquet } from "parquet-wasm"
import { parquetWriteBuffer } from "hyparquet-writer"
import {
  buildCoverage,
  coverageFor,
  DataRequestError,
  importFile,
  ImportCheckError,
  NotTickDataError,
  ParquetReadError,
  type ImportFileOptions
} from "../../src/data/index.js"
import { catalogRelPath } from "../../src/data/layout.js"
import { readCatalogRows } from "../../src/data/catalog.js"
import { cleanupTempDirs, duck, duckRows, failureOf, run, tempDir } from "./helpers.js"

afterAll(cleanupTempDirs)

const NS0 = 1583159400000000000n // 2020-03-02 14:30 UTC
const ROWS = 6_000

/** Aggregates of a DuckDB relation of ticks: rows, first/last epoch ns, sum of price and size. */
const tickAggregates = async (from: string, where = "TRUE") => {
  const [[n, first, last, sumPrice, sumSize]] = await duckRows(
    // µs: DuckDB reads TIMESTAMP(NANOS, UTC) as a µs TIMESTAMPTZ (ns exactness is checked with raw int64 below)
    `SELECT count(*)::BIGINT, min(epoch_us(ts))::VARCHAR, max(epoch_us(ts))::VARCHAR, round(sum(price::DOUBLE), 6), sum(size::DOUBLE) FROM ${from} WHERE ${where}`
  )
  return { n: Number(n), first, last, sumPrice, sumSize }
}

/** The catalog files of one symbol and frequency as a DuckDB relation. */
const catalogOf = (root: string, freq: string, symbol: string) => `read_parquet('${root}/${freq}/${symbol}/**/*.parquet')`

const listTmp = (dir: string) => listFiles(dir, ".tmp")
const listFiles = async (dir: string, suffix: string): Promise<string[]> => {
  const out: string[] = []
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) await walk(join(d, e.name))
      else if (e.name.endsWith(suffix)) out.push(e.name)
    }
  }
  await walk(dir)
  return out
}

/** the ns value of row i: 3 days of 2,000 ticks, ~1 s apart with sub-µs digits */
const N = `(${NS0} + (i // 2000) * 86400000000000 + (i % 2000) * 1000001234)::BIGINT`
const writerCases: Array<{ name: string; ts: string; compression: string; extra?: string; readNs: string }> = [
  { name: "TIMESTAMP_NS", ts: `make_timestamp_ns(${N})`, compression: "snappy", readNs: "epoch_ns(Timestamp)" },
  { name: "TIMESTAMPTZ (µs, UTC)", ts: `make_timestamp(${N} // 1000)::TIMESTAMPTZ`, compression: "zstd", readNs: "epoch_ns(Timestamp)" },
  { name: "TIMESTAMP_MS", ts: `make_timestamp_ms(${N} // 1000000)`, compression: "gzip", readNs: "epoch_ns(Timestamp)" },
  { name: "TIMESTAMP_S", ts: `make_timestamp(${N} // 1000)::TIMESTAMP_S`, compression: "uncompressed", readNs: "epoch_ns(Timestamp)" },
  { name: "INT64 epoch ns", ts: N, compression: "lz4", readNs: "Timestamp" },
  { name: "INT64 epoch ms, page v2", ts: `${N} // 1000000`, compression: "zstd", extra: ", PARQUET_VERSION V2", readNs: "Timestamp * 1000000" },
  { name: "DOUBLE epoch s", ts: `(${N} // 1000000) / 1000.0`, compression: "brotli", readNs: "round(Timestamp * 1e6)::BIGINT * 1000" }
]

describe("data import: Parquet written by DuckDB", () => {
  for (const c of writerCases) {
    it(`${c.name}, ${c.compression}, DECIMAL prices, dictionary symbols, many row groups: rows, first/last and sums equal DuckDB's`, async () => {
      const dir = await tempDir()
      const file = join(dir, "ticks.parquet")
      const con = await duck()
      // two symbols interleaved (dictionary-encoded VARCHAR), DECIMAL(12,4) prices, INTEGER sizes, 3 days
      await con.run(`COPY (
        SELECT ${c.ts} AS Timestamp,
               CASE WHEN i % 3 = 0 THEN 'bbb' ELSE 'AAA' END AS Ticker,
               (100 + (i % 37) * 0.25 + (i % 7) * 0.0001)::DECIMAL(12,4) AS Price,
               (1 + hash(i) % 900)::INTEGER AS Size
        FROM range(${ROWS}) t(i)) TO '${file}' (FORMAT parquet, COMPRESSION ${c.compression}, ROW_GROUP_SIZE 1000${c.extra ?? ""})`)
      const root = join(dir, "catalog")
      const report = await run(importFile({ file, root, freq: "tick" }))
      expect(report.format).toBe("parquet")
      expect(report.rowsRead).toBe(ROWS)
      expect(report.symbols.map((s) => s.symbol)).toEqual(["AAA", "BBB"])
      // the source as DuckDB reads it, with the time column in ns since the epoch
      const source = `(SELECT make_timestamp_ns((${c.readNs})::BIGINT) AS ts, upper(Ticker) AS sym, Price AS price, Size AS size FROM read_parquet('${file}'))`
      for (const s of report.symbols) {
        const expected = await tickAggregates(source, `sym = '${s.symbol}'`)
        const got = await tickAggregates(catalogOf(root, "tick", s.symbol))
        expect(got).toEqual(expected)
        expect(s.rows).toBe(expected.n)
        expect(s.files).toBe(3)
        expect(s.problems).toEqual({})
        expect(s.inferredFreq).toBe("tick")
      }
      // nanoseconds survive exactly: the first row's raw int64 equals the source's
      const [[firstNs]] = await duckRows(`SELECT min(epoch_ns(ts))::VARCHAR FROM ${source} WHERE sym = 'AAA'`)
      const firstFile = join(root, catalogRelPath("tick", "AAA", "2020-03-02"))
      expect(String((await readCatalogRows(firstFile)).ts[0])).toBe(firstNs)
      // idempotent: the same import again changes no file
      const again = await run(importFile({ file, root, freq: "tick" }))
      expect(again.symbols.map((s) => s.written)).toEqual([0, 0])
      expect(await listTmp(root)).toEqual([])
    })
  }

  it("daily bars: DATE32 dates, Adj Close beside Close, OHLC checks counted, frequency inferred", async () => {
    const dir = await tempDir()
    const file = join(dir, "daily.parquet")
    const con = await duck()
    // weekdays of 2019-2020; row 100 has high below close and row 200 a zero price: both dropped and counted
    await con.run(`COPY (
      SELECT d::DATE AS Date, 100 + i AS Open,
             CASE WHEN i = 100 THEN 50 ELSE 110 + i END AS High, 90 + i AS Low,
             CASE WHEN i = 200 THEN 0 ELSE 105 + i END AS Close, 99 + i AS "Adj Close", 1000 + i AS Volume
      FROM (SELECT d, row_number() OVER (ORDER BY d) - 1 AS i FROM range(DATE '2019-01-01', DATE '2021-01-01', INTERVAL 1 DAY) t(d) WHERE dayofweek(d) BETWEEN 1 AND 5))
      TO '${file}' (FORMAT parquet, ROW_GROUP_SIZE 100)`)
    const root = join(dir, "catalog")
    const report = await run(importFile({ file, root, symbol: "spy" }))
    const [s] = report.symbols
    expect(s.symbol).toBe("SPY")
    expect(s.freq).toBe("1d")
    expect(s.inferredFreq).toBe("1d")
    expect(s.problems.high_below_open_close).toMatchObject({ count: 1, firstRow: 100 })
    expect(s.problems.bad_price).toMatchObject({ count: 1, firstRow: 200 })
    const [[n, first, last, sumClose, sumHigh]] = await duckRows(
      `SELECT count(*)::BIGINT, min(Date)::VARCHAR, max(Date)::VARCHAR, sum(Close)::DOUBLE, sum(High)::DOUBLE FROM read_parquet('${file}') WHERE High >= greatest(Open, Close) AND Close > 0`
    )
    const [[gn, gfirst, glast, gsumClose, gsumHigh]] = await duckRows(
      `SELECT count(*)::BIGINT, min(ts::DATE)::VARCHAR, max(ts::DATE)::VARCHAR, sum(close), sum(high) FROM ${catalogOf(root, "1d", "SPY")}`
    )
    expect([gn, gfirst, glast, gsumClose, gsumHigh]).toEqual([n, first, last, sumClose, sumHigh])
    expect(s.rows).toBe(Number(n))
    expect(s.first).toBe(`${first}T00:00:00.000Z`)
    expect(s.files).toBe(2)
    const cov = coverageFor(await run(buildCoverage(root)), "SPY", "1d")!
    expect([cov.rows, cov.days]).toEqual([Number(n), Number(n)])
  })

  it("a TIMESTAMP without zone is wall-clock time in --tz", async () => {
    const dir = await tempDir()
    const file = join(dir, "ny.parquet")
    await (await duck()).run(
      `COPY (SELECT TIMESTAMP '2020-03-06 09:30:00.123456' + INTERVAL (i) SECOND AS ts, 10.0 + i AS price FROM range(10) t(i)) TO '${file}' (FORMAT parquet)`
    )
    const root = join(dir, "catalog")
    const [s] = (await run(importFile({ file, root, symbol: "X", freq: "tick", timezone: "America/New_York" }))).symbols
    expect(s.first).toBe("2020-03-06T14:30:00.123456Z") // EST = UTC-5
    expect(s.last).toBe("2020-03-06T14:30:09.123456Z")
  })

  it("a monthly file is refused as daily, naming the inferred frequency; nothing is written", async () => {
    const dir = await tempDir()
    const file = join(dir, "monthly.parquet")
    await (await duck()).run(
      `COPY (SELECT (DATE '2000-01-01' + INTERVAL (i) MONTH)::DATE AS date, 'MSFT' AS symbol, 30 + i AS price FROM range(120) t(i)) TO '${file}' (FORMAT parquet)`
    )
    const root = join(dir, "catalog")
    const error = await failureOf(importFile({ file, root, freq: "1d" }))
    expect(error).toBeInstanceOf(ImportCheckError)
    expect(error.message).toContain("--freq 1d was given but the timestamps are monthly")
    expect(error.message).toContain(file)
    expect(await readdir(root).catch(() => [])).toEqual([])
    const inferred = await failureOf(importFile({ file, root }))
    expect(inferred.message).toContain("the timestamps are monthly")
  })
})

describe("data import: Parquet written by arrow-rs (parquet-wasm) and hyparquet-writer", () => {
  const arrowTable = (n: number) => {
    const ts = new BigInt64Array(n)
    const price = new Float64Array(n)
    const size = new Int32Array(n)
    const symbols: string[] = []
    for (let i = 0; i < n; i++) {
      ts[i] = (NS0 + BigInt(i) * 250_000_123n) / 1000n // µs
      price[i] = 50 + (i % 101) * 0.01
      size[i] = 1 + (i % 13)
      symbols.push(i % 2 === 0 ? "EVEN" : "ODD")
    }
    const dict = arrow.vectorFromArray(symbols, new arrow.Dictionary(new arrow.Utf8(), new arrow.Int32()))
    const tsData = arrow.makeData({ type: new arrow.TimestampMicrosecond("UTC"), length: n, data: ts })
    return {
      table: new arrow.Table({ time: arrow.makeVector(tsData), sym: dict, price: arrow.makeVector(price), qty: arrow.makeVector(size) }),
      ts,
      price,
      size,
      symbols
    }
  }

  for (const [label, version, compression] of [
    ["page v1, snappy", WriterVersion.V1, Compression.SNAPPY],
    ["page v2, zstd", WriterVersion.V2, Compression.ZSTD]
  ] as const) {
    it(`arrow-rs ${label}: TIMESTAMP(µs, UTC), dictionary symbols, --columns mapping; sums equal what was written`, async () => {
      const dir = await tempDir()
      const file = join(dir, "arrow.parquet")
      const n = 20_000
      const w = arrowTable(n)
      const props = new WriterPropertiesBuilder().setWriterVersion(version).setCompression(compression).setMaxRowGroupSize(3000).build()
      await writeFile(file, writeParquet(WasmTable.fromIPCStream(arrow.tableToIPC(w.table, "stream")), props))
      const root = join(dir, "catalog")
      const report = await run(importFile({ file, root, freq: "tick", columns: { ts: "time", symbol: "sym", size: "qty" } }))
      for (const s of report.symbols) {
        const idx = [...Array(n).keys()].filter((i) => w.symbols[i] === s.symbol)
        const got = await tickAggregates(catalogOf(root, "tick", s.symbol))
        expect(got.n).toBe(idx.length)
        expect(got.first).toBe(String(w.ts[idx[0]]))
        expect(got.last).toBe(String(w.ts[idx[idx.length - 1]]))
        expect(got.sumPrice).toBeCloseTo(idx.reduce((a, i) => a + w.price[i], 0), 6)
        expect(got.sumSize).toBe(idx.reduce((a, i) => a + w.size[i], 0))
      }
      // --symbol picks one symbol of the column
      const one = await run(importFile({ file, root: join(dir, "one"), freq: "tick", symbol: "odd", columns: { ts: "time", symbol: "sym", size: "qty" } }))
      expect(one.symbols.map((s) => [s.symbol, s.rows])).toEqual([["ODD", n / 2]])
    })
  }

  it("hyparquet-writer: INT64 TIMESTAMP(ms) bars without zone, FLOAT prices, several row groups", async () => {
    const dir = await tempDir()
    const file = join(dir, "hw.parquet")
    const n = 3 * 390
    const t0 = Date.UTC(2021, 5, 1, 13, 30)
    const ts = BigInt64Array.from({ length: n }, (_, i) => BigInt(t0 + (i % 390) * 60_000 + Math.floor(i / 390) * 86_400_000))
    const close = Float32Array.from({ length: n }, (_, i) => 20 + (i % 17) * 0.5)
    const bytes = parquetWriteBuffer({
      columnData: [
        { name: "DateTime", data: ts },
        { name: "Close", data: close }
      ],
      schema: [
        { name: "root", num_children: 2 },
        { name: "DateTime", type: "INT64", repetition_type: "REQUIRED", logical_type: { type: "TIMESTAMP", isAdjustedToUTC: false, unit: "MILLIS" } },
        { name: "Close", type: "FLOAT", repetition_type: "REQUIRED" }
      ],
      rowGroupSize: 400
    })
    await writeFile(file, new Uint8Array(bytes))
    const root = join(dir, "catalog")
    const [s] = (await run(importFile({ file, root, symbol: "QQQ" }))).symbols
    expect([s.freq, s.inferredFreq, s.rows, s.files]).toEqual(["1min", "1min", n, 3])
    expect(s.first).toBe(new Date(t0).toISOString())
    const [[sum, cnt]] = await duckRows(`SELECT sum(close), count(*)::BIGINT FROM ${catalogOf(root, "1min", "QQQ")}`)
    expect(cnt).toBe(BigInt(n))
    expect(sum).toBeCloseTo(close.reduce((a, v) => a + v, 0), 3)
  })
})

describe("data import: CSV formats", () => {
  const table: Array<{ name: string; csv: string; opts?: Partial<ImportFileOptions>; first: string; last: string; rows: number }> = [
    { name: "ISO with Z", csv: "ts,price\n2020-03-02T14:30:00Z,10\n2020-03-02T14:30:01.5Z,11\n", first: "2020-03-02T14:30:00.000Z", last: "2020-03-02T14:30:01.500Z", rows: 2 },
    { name: "ISO with offset", csv: "datetime,price\n2020-03-02 09:30:00-05:00,10\n2020-03-02 09:30:02+0000,11\n", first: "2020-03-02T09:30:02.000Z", last: "2020-03-02T14:30:00.000Z", rows: 2 },
    { name: "US dates in New York", csv: "Date,Time,Price\n03/09/2020,09:30:00,10\n03/09/2020,09:30:00.25,11\n", opts: { timezone: "America/New_York" }, first: "2020-03-09T13:30:00.000Z", last: "2020-03-09T13:30:00.250Z", rows: 2 },
    { name: "London wall clock (BST)", csv: "time,price\n2021-06-01 08:00:00,1\n2021-06-01 08:00:05,2\n", opts: { timezone: "Europe/London" }, first: "2021-06-01T07:00:00.000Z", last: "2021-06-01T07:00:05.000Z", rows: 2 },
    { name: "epoch seconds", csv: "ts,price\n1583159400,10\n1583159401,11\n", first: "2020-03-02T14:30:00.000Z", last: "2020-03-02T14:30:01.000Z", rows: 2 },
    { name: "epoch ms", csv: "ts,price\n1583159400000,10\n1583159400250,11\n", first: "2020-03-02T14:30:00.000Z", last: "2020-03-02T14:30:00.250Z", rows: 2 },
    { name: "epoch µs", csv: "ts,price\n1583159400000001,10\n1583159400000002,11\n", first: "2020-03-02T14:30:00.000001Z", last: "2020-03-02T14:30:00.000002Z", rows: 2 },
    { name: "epoch ns", csv: "ts,price\n1583159400000001000,10\n1583159400000003000,11\n", first: "2020-03-02T14:30:00.000001Z", last: "2020-03-02T14:30:00.000003Z", rows: 2 },
    { name: "YYYYMMDD daily bars", csv: "date,open,high,low,close\n20200302,1,2,0.5,1.5\n20200303,1,2,0.5,1.6\n20200304,1,2,0.5,1.7\n", opts: { freq: "1d" }, first: "2020-03-02T00:00:00.000Z", last: "2020-03-04T00:00:00.000Z", rows: 3 },
    { name: "'Jan 2 2020' dates, unsorted, duplicate", csv: "Date,Close\nJan 3 2020,2\nJan 2 2020,1\nJan 6 2020,3\nJan 6 2020,4\n", opts: { freq: "1d" }, first: "2020-01-02T00:00:00.000Z", last: "2020-01-06T00:00:00.000Z", rows: 3 }
  ]
  for (const c of table) {
    it(c.name, async () => {
      const dir = await tempDir()
      const file = join(dir, "in.csv")
      await writeFile(file, c.csv)
      const root = join(dir, "catalog")
      const report = await run(importFile({ file, root, symbol: "T", freq: "tick", ...c.opts }))
      expect(report.format).toBe("csv")
      const [s] = report.symbols
      expect([s.rows, s.first, s.last]).toEqual([c.rows, c.first, c.last])
      const rel = catalogOf(root, s.freq, "T")
      const [[n, lo, hi]] = await duckRows(`SELECT count(*)::BIGINT, min(epoch_us(ts)), max(epoch_us(ts)) FROM ${rel}`)
      expect([Number(n), new Date(Number(lo) / 1000).toISOString().slice(0, 23), new Date(Number(hi) / 1000).toISOString().slice(0, 23)]).toEqual([
        c.rows,
        c.first.slice(0, 23),
        c.last.slice(0, 23)
      ])
    })
  }

  it("a symbol column imports every symbol; unsorted and repeated rows are counted", async () => {
    const dir = await tempDir()
    const file = join(dir, "multi.csv")
    await writeFile(file, "symbol,date,close\nAAA,2020-01-03,2\nBBB,2020-01-02,5\nAAA,2020-01-02,1\nAAA,2020-01-06,3\nBBB,2020-01-03,6\nAAA,2020-01-06,4\n")
    const report = await run(importFile({ file, root: join(dir, "c"), freq: "1d" }))
    expect(report.symbols.map((s) => [s.symbol, s.rows, s.problems.unsorted?.count ?? 0, s.problems.duplicate_ts?.count ?? 0])).toEqual([
      ["AAA", 3, 1, 1],
      ["BBB", 2, 0, 0]
    ])
    const [[close]] = await duckRows(`SELECT close FROM ${catalogOf(join(dir, "c"), "1d", "AAA")} WHERE ts::DATE = DATE '2020-01-06'`)
    expect(close).toBe(4) // the later row wins
  })

  it("a bad cell late in a large file leaves the catalog untouched (atomic), naming line and value", async () => {
    const dir = await tempDir()
    const file = join(dir, "big.csv")
    const lines = ["ts,price"]
    for (let i = 0; i < 150_000; i++) lines.push(`${1583159400000 + i * 20_000},${10 + (i % 5)}`)
    lines.push("1586000000000,oops")
    await writeFile(file, lines.join("\n"))
    const root = join(dir, "catalog")
    const error = await failureOf(importFile({ file, root, symbol: "X", freq: "tick" }))
    expect(error.message).toContain("line 150002, column price")
    expect(error.message).toContain('"oops"')
    expect(await listFiles(root, ".parquet")).toEqual([])
    expect(await listTmp(root)).toEqual([])
  })
})

describe("data import: broken input", () => {
  const parquetBytes = async (dir: string) => {
    const file = join(dir, "good.parquet")
    await (await duck()).run(`COPY (SELECT make_timestamp_ns((${NS0} + i * 1000000000)::BIGINT) AS ts, 10.0 AS price FROM range(1000) t(i)) TO '${file}' (FORMAT parquet)`)
    return new Uint8Array(await (await import("node:fs/promises")).readFile(file))
  }

  it("zero-length, truncated, wrong-magic and non-price files: typed errors naming the file; the other files of the batch go in", async () => {
    const dir = await tempDir()
    const good = await parquetBytes(dir)
    const files = {
      empty: [join(dir, "empty.parquet"), new Uint8Array(0)],
      truncated: [join(dir, "truncated.parquet"), good.subarray(0, Math.floor(good.length * 0.6))],
      wrongMagic: [join(dir, "magic.parquet"), Uint8Array.from([...good.subarray(0, good.length - 4), 0x50, 0x41, 0x52, 0x32])]
    } as const
    for (const [path, bytes] of Object.values(files)) await writeFile(path, bytes)
    const root = join(dir, "catalog")
    const empty = await failureOf(importFile({ file: files.empty[0], root, symbol: "X" }))
    expect(empty).toBeInstanceOf(DataRequestError)
    expect(empty.message).toContain("empty.parquet")
    for (const key of ["truncated", "wrongMagic"] as const) {
      const e = await failureOf(importFile({ file: files[key][0], root, symbol: "X" }))
      expect(e).toBeInstanceOf(ParquetReadError)
      expect(e.message).toContain(files[key][0])
      expect(e.message).toContain("PAR1")
    }
    const { vegaDataFile } = await import("../../src/data/index.js")
    const flights = await failureOf(importFile({ file: vegaDataFile("flights-3m.parquet"), root, symbol: "X" }))
    expect(flights).toBeInstanceOf(NotTickDataError)
    expect(flights.message).toContain("flights-3m.parquet")
    expect(flights.message).toContain("--columns ts=<time column>,close=<price column>")
    // the good file still imports into the same catalog
    await writeFile(join(dir, "ok.parquet"), good)
    const ok = await run(importFile({ file: join(dir, "ok.parquet"), root, symbol: "X", freq: "tick" }))
    expect(ok.symbols[0].rows).toBe(1000)
  })

  it("--symbol is required for a file without a symbol column, and a symbol the column lacks names the ones it has", async () => {
    const dir = await tempDir()
    const file = join(dir, "s.csv")
    await writeFile(file, "ticker,date,close\nMSFT,2020-01-02,1\nMSFT,2020-01-03,2\n")
    const wrong = await failureOf(importFile({ file, root: join(dir, "c"), symbol: "AAPL", freq: "1d" }))
    expect(wrong.message).toContain("holds MSFT")
    await writeFile(file, "date,close\n2020-01-02,1\n")
    const none = await failureOf(importFile({ file, root: join(dir, "c"), freq: "1d" }))
    expect(none).toBeInstanceOf(DataRequestError)
    expect(none.message).toContain("--symbol")
  })
})
