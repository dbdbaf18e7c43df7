import { afterAll, describe, expect, it } from "vitest"
import { readFile, stat, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { Effect } from "effect"
import { catalogRelPath, CsvImportError, ImportCheckError, importCsv, loadSlice, ensureSampleCatalog, buildCoverage, coverageFor } from "../../src/data/index.js"
import { readCatalogRows } from "../../src/data/catalog.js"
import { cleanupTempDirs, duckRows, failureOf, run, tempDir } from "./helpers.js"

afterAll(cleanupTempDirs)

// A broker-style export: US dates, New York wall-clock times with nanoseconds, split date/time.
const BROKER_CSV = `Date,Time,Last,Qty,Bid,Ask
03/06/2020,09:30:00.123456789,297.51,100,297.50,297.52
03/06/2020,09:30:00.5,297.55,200,297.54,297.56
03/06/2020,15:59:59.999999999,297.20,300,297.19,297.21
03/09/2020,09:30:00.000000001,285.10,50,285.09,285.11
`

describe("importCsv", () => {
  it("turns New York wall-clock times into exact UTC nanoseconds (across the DST change)", async () => {
    const dir = await tempDir()
    const file = join(dir, "broker.csv")
    await writeFile(file, BROKER_CSV)
    const root = join(dir, "catalog")
    const summary = await run(
      importCsv({ file, root, symbol: "SPY", freq: "tick", timezone: "America/New_York", columns: { date: "Date", time: "Time", price: "Last", size: "Qty" } })
    )
    expect(summary.rows).toBe(4)
    expect(summary.files).toBe(2)
    // read back with hyparquet's raw int64 (DuckDB maps TIMESTAMP(NANOS, UTC) to µs TIMESTAMPTZ)
    const read = async (day: string) => {
      const rows = await readCatalogRows(join(root, catalogRelPath("tick", "SPY", day)))
      if (rows.kind !== "tick") throw new Error("expected ticks")
      return Array.from(rows.ts, (t, i) => [String(t), rows.price[i], rows.size[i], rows.bid![i], rows.ask![i]])
    }
    // 2020-03-06 is EST (UTC-5); 2020-03-09 is EDT (UTC-4)
    expect(await read("2020-03-06")).toEqual([
      ["1583505000123456789", 297.51, 100, 297.5, 297.52],
      ["1583505000500000000", 297.55, 200, 297.54, 297.56],
      ["1583528399999999999", 297.2, 300, 297.19, 297.21]
    ])
    expect(await read("2020-03-09")).toEqual([["1583760600000000001", 285.1, 50, 285.09, 285.11]])
  })

  it("is idempotent: a second import leaves the same bytes and mtimes", async () => {
    const dir = await tempDir()
    const file = join(dir, "broker.csv")
    await writeFile(file, BROKER_CSV)
    const root = join(dir, "catalog")
    const opts = { file, root, symbol: "SPY", freq: "tick" as const, timezone: "America/New_York", columns: { date: "Date", time: "Time", price: "Last", size: "Qty" } }
    await run(importCsv(opts))
    const path = join(root, catalogRelPath("tick", "SPY", "2020-03-06"))
    const [bytes, mtime] = [await readFile(path), (await stat(path)).mtimeMs]
    const again = await run(importCsv(opts))
    expect(again.written).toBe(0)
    expect(Buffer.compare(await readFile(path), bytes)).toBe(0)
    expect((await stat(path)).mtimeMs).toBe(mtime)
  })

  it("a bad row names the line, the column and the value", async () => {
    const dir = await tempDir()
    const file = join(dir, "bad.csv")
    await writeFile(file, "Date,Open,High,Low,Close,Volume\n2020-01-02,1,2,0.5,1.5,10\n2020-01-03,1,2,0.5,n/a,10\n")
    const error = await failureOf(importCsv({ file, root: join(dir, "c"), symbol: "X", freq: "1d" }))
    expect(error).toBeInstanceOf(CsvImportError)
    expect(error).toMatchObject({ line: 3, column: "Close", value: "n/a" })
    expect(error.message).toContain("bad.csv line 3, column Close")
    expect(error.message).toContain('"n/a"')

    await writeFile(file, "Date,Close\n2020-01-02,1.5\n2020-13-45,1.6\n")
    const dateError = await failureOf(importCsv({ file, root: join(dir, "c"), symbol: "X", freq: "1d" }))
    expect(dateError).toMatchObject({ line: 3, column: "Date", value: "2020-13-45" })
  })

  it("parses a custom date format and monthly-style 'Jan 1 2000' dates", async () => {
    const dir = await tempDir()
    const file = join(dir, "custom.csv")
    await writeFile(file, "when;px\n2020/03/06-14:30:00.25;10\n")
    const root = join(dir, "c")
    await run(importCsv({ file, root, symbol: "Z", freq: "1min", columns: { ts: "when", close: "px" }, dateFormat: "YYYY/MM/DD-HH:mm:ss.SSS", delimiter: ";" }))
    const rows = await readCatalogRows(join(root, catalogRelPath("1min", "Z", "2020-03-06")))
    expect(rows.kind === "bar" && [String(rows.ts[0]), rows.open[0], rows.close[0]]).toEqual(["1583505000250000000", 10, 10])
    // DuckDB reads the same instant (to the µs it keeps for UTC timestamps)
    expect(await duckRows(`SELECT epoch_us(ts)::VARCHAR FROM read_parquet('${join(root, catalogRelPath("1min", "Z", "2020-03-06"))}')`)).toEqual([["1583505000250000"]])
    const monthly = join(dir, "m.csv")
    await writeFile(monthly, "symbol,date,price\nMSFT,Jan 1 2000,39.81\nAAPL,Jan 1 2000,25.94\nMSFT,Feb 1 2000,36.35\n")
    // monthly prices are refused as daily bars, naming the frequency the timestamps show; nothing is written
    const refused = await failureOf(importCsv({ file: monthly, root, symbol: "MSFT", freq: "1d", columns: { symbol: "symbol" } }))
    expect(refused).toBeInstanceOf(ImportCheckError)
    expect(refused.message).toContain("timestamps are monthly (median step 31 days")
    expect((await buildCoverage(root).pipe(Effect.runPromise)).entries.map((e) => e.symbol)).toEqual(["Z"])
  })
})

describe("ensureSampleCatalog", () => {
  it("imports the real SPX daily series and synthetic symbols, idempotently", async () => {
    const root = await tempDir()
    const { symbols } = await run(ensureSampleCatalog(root))
    expect(symbols).toEqual(["SPX", "SYN1", "SYN2", "SYN3", "SYN4"])
    const report = await run(buildCoverage(root))
    const spx = coverageFor(report, "SPX", "1d")!
    expect(spx.first).toBe("2000-01-03T00:00:00.000Z")
    expect(spx.last).toBe("2020-04-17T00:00:00.000Z")
    // the market was closed 2001-09-11 → 2001-09-14
    expect(spx.gaps.some((g) => g.from.startsWith("2001-09-10") && g.to.startsWith("2001-09-17"))).toBe(true)
    const slice = await run(loadSlice(root, { symbol: "SPX", freq: "1d", start: "2000-01-03", end: "2000-01-04", warmupBars: 0 }))
    expect(Array.from(slice.series.close)).toEqual([1455.219971, 1399.420044])
    expect(slice.series.open![0]).toBe(1469.25)
    expect(coverageFor(report, "SYN1", "5min")?.derivedFromTicks).toBe(true)
    const again = await run(buildCoverage(root))
    await run(ensureSampleCatalog(root))
    expect((await run(buildCoverage(root))).dataVersion).toBe(again.dataVersion)
  })
})
