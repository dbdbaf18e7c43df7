import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { readdir, readFile } from "node:fs/promises"
import { join } from "node:path"
import {
  buildCoverage,
  decodeSlice,
  encodeSlice,
  generateCatalog,
  loadSlice,
  readPriceFile,
  sliceContentKey,
  DataRequestError,
  type SliceRequirement
} from "../../src/data/index.js"
import type { PriceSeries } from "../../src/engine/types.js"
import { dayToIso, isWeekday, isoToDay } from "../../src/data/time.js"
import { cleanupTempDirs, duck, failureOf, run, tempDir } from "./helpers.js"

afterAll(cleanupTempDirs)

let root: string
beforeAll(async () => {
  root = await tempDir()
  await run(generateCatalog({ root, symbols: ["DAY"], freqs: ["1d"], start: "2019-01-01", end: "2021-06-30", seed: 11 }))
  await run(generateCatalog({ root, symbols: ["TCK"], freqs: ["tick"], start: "2021-03-01", end: "2021-03-05", seed: 11, ticksPerMinute: 5, rowGroupSize: 500 }))
})

describe("loadSlice", () => {
  it("takes warmup bars before the start, reaching back across yearly files", async () => {
    const req: SliceRequirement = { symbol: "DAY", freq: "1d", start: "2021-01-04", end: "2021-01-29", warmupBars: 300 }
    const slice = await run(loadSlice(root, req))
    const s = slice.series
    expect(slice.warmupRows).toBe(300)
    expect(s.startIndex).toBe(300)
    expect(new Date(s.ts[300]).toISOString()).toBe("2021-01-04T00:00:00.000Z")
    // 300 weekdays before 2021-01-04 lands in the 2019 file
    const before: string[] = []
    for (let d = isoToDay("2021-01-03"); before.length < 300; d--) if (isWeekday(d)) before.unshift(dayToIso(d))
    expect(before[0] < "2020-01-01").toBe(true)
    expect(new Date(s.ts[0]).toISOString().slice(0, 10)).toBe(before[0])
    expect(new Date(s.ts[s.ts.length - 1]).toISOString().slice(0, 10)).toBe("2021-01-29")
    expect(slice.rowGroupsRead).toBe(3)
    expect(s.open && s.high && s.low && s.volume && s.synthetic).toBeTruthy()
    for (let i = 1; i < s.ts.length; i++) expect(s.ts[i]).toBeGreaterThan(s.ts[i - 1])
  })

  it("reports fewer warmup rows when the catalog has fewer", async () => {
    const slice = await run(loadSlice(root, { symbol: "DAY", freq: "1d", start: "2019-01-10", end: "2019-02-01", warmupBars: 50 }))
    expect(slice.warmupRows).toBe(7) // weekdays Jan 1..9 2019 (the generator has no holidays)
    expect(slice.series.startIndex).toBe(7)
  })

  it("skips row groups by their ts statistics and still returns the same rows", async () => {
    const slice = await run(loadSlice(root, { symbol: "TCK", freq: "tick", start: "2021-03-03", end: "2021-03-03", warmupBars: 10 }))
    expect(slice.rowGroupsSkipped).toBeGreaterThan(0)
    expect(slice.warmupRows).toBe(10)
    // reference: the previous and the same day's whole files
    const dir = join(root, "tick", "TCK", "2021")
    const prev = (await run(readPriceFile(join(dir, "2021-03-02.parquet")))).series
    const day = (await run(readPriceFile(join(dir, "2021-03-03.parquet")))).series
    const s = slice.series
    expect(s.ts.length).toBe(10 + day.ts.length)
    expect(Array.from(s.ts.subarray(0, 10))).toEqual(Array.from(prev.ts.subarray(prev.ts.length - 10)))
    expect(Array.from(s.ts.subarray(10))).toEqual(Array.from(day.ts))
    expect(Array.from(s.close.subarray(10))).toEqual(Array.from(day.close))
  })

  it("skips row groups inside one foreign file by statistics", async () => {
    const dir = await tempDir()
    const file = join(dir, "days.parquet")
    await (await duck()).run(`COPY (SELECT make_timestamp_ms((1609459200000 + i * 60000)::BIGINT) AS ts, 100 + (i % 50) * 0.5 AS price
      FROM range(20000) t(i)) TO '${file}' (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 2048)`)
    const loaded = await run(readPriceFile(file, { start: "2021-01-05", end: "2021-01-05" }))
    expect(loaded.rowGroupsSkipped).toBeGreaterThan(0)
    expect(loaded.series.ts.length).toBe(1440)
    expect(new Date(loaded.series.ts[0]).toISOString()).toBe("2021-01-05T00:00:00.000Z")
  })

  /** Straightforward reference: group ticks by floor(ts / width) in a Map. */
  const referenceBars = (ticks: PriceSeries, widthMs: number) => {
    const buckets = new Map<number, { o: number; h: number; l: number; c: number; v: number }>()
    for (let i = 0; i < ticks.ts.length; i++) {
      const key = Math.floor(ticks.ts[i] / widthMs) * widthMs
      const p = ticks.close[i]
      const b = buckets.get(key)
      if (!b) buckets.set(key, { o: p, h: p, l: p, c: p, v: ticks.volume![i] })
      else {
        b.h = Math.max(b.h, p)
        b.l = Math.min(b.l, p)
        b.c = p
        b.v += ticks.volume![i]
      }
    }
    return [...buckets.entries()].sort((a, b) => a[0] - b[0])
  }

  for (const [freq, width] of [["1min", 60_000], ["1d", 86_400_000]] as const) {
    it(`resamples ticks to ${freq} bars like a straightforward reference`, async () => {
      const ticks = (await run(loadSlice(root, { symbol: "TCK", freq: "tick", start: "2021-03-01", end: "2021-03-05", warmupBars: 0 }))).series
      const slice = await run(loadSlice(root, { symbol: "TCK", freq, start: "2021-03-02", end: "2021-03-05", warmupBars: freq === "1d" ? 1 : 30 }))
      expect(slice.resampledFromTicks).toBe(true)
      const ref = referenceBars(ticks, width).filter(([t]) => t >= Date.parse("2021-03-02T00:00:00Z"))
      const s = slice.series
      const warm = freq === "1d" ? 1 : 30
      expect(s.startIndex).toBe(warm)
      const all = referenceBars(ticks, width)
      const firstIn = all.findIndex(([t]) => t >= Date.parse("2021-03-02T00:00:00Z"))
      const expected = all.slice(firstIn - warm)
      expect(s.ts.length).toBe(expected.length)
      expected.forEach(([t, b], i) => {
        expect([s.ts[i], s.open![i], s.high![i], s.low![i], s.close[i], s.volume![i]]).toEqual([t, b.o, b.h, b.l, b.c, b.v])
      })
      expect(Array.from(s.synthetic!).every((x) => x === 0)).toBe(true)
      expect(ref.length).toBe(s.ts.length - warm)
    })
  }

  it("a symbol with no data is a DataRequestError that says what to do", async () => {
    const error = await failureOf(loadSlice(root, { symbol: "NOPE", freq: "1d", start: "2021-01-04", end: "2021-01-05", warmupBars: 0 }))
    expect(error).toBeInstanceOf(DataRequestError)
    expect(error.message).toContain("NOPE")
    expect(error.message).toContain("tickflow data coverage")
    const bad = await failureOf(loadSlice(root, { symbol: "DAY", freq: "1d", start: "2021-02-30", end: "2021-03-05", warmupBars: 0 }))
    expect(bad.message).toContain("2021-02-30")
  })
})

describe("slices for the object store", () => {
  it("encode/decode round-trips exactly, including NaN, synthetic and sub-ms timestamps", async () => {
    const slice = await run(loadSlice(root, { symbol: "DAY", freq: "1d", start: "2020-01-02", end: "2020-12-31", warmupBars: 20 }))
    const series: PriceSeries = { ...slice.series, synthetic: Uint8Array.from(slice.series.synthetic!, (_, i) => (i % 7 === 0 ? 1 : 0)) }
    series.close[3] = Number.NaN
    const back = decodeSlice(encodeSlice(series))
    expect(back.symbol).toBe("DAY")
    expect(back.freq).toBe("1d")
    expect(back.startIndex).toBe(series.startIndex)
    for (const key of ["ts", "close", "open", "high", "low", "volume", "synthetic"] as const) {
      const a = series[key]!
      const b = back[key]!
      expect(b.constructor).toBe(a.constructor)
      expect(b.length).toBe(a.length)
      for (let i = 0; i < a.length; i++) expect(Object.is(a[i], b[i])).toBe(true)
    }
    const ticks = (await run(loadSlice(root, { symbol: "TCK", freq: "tick", start: "2021-03-01", end: "2021-03-01", warmupBars: 0 }))).series
    const tb = decodeSlice(encodeSlice(ticks))
    expect(Array.from(tb.ts)).toEqual(Array.from(ticks.ts))
    expect(tb.open).toBeUndefined()
  })

  it("content keys are sha256 hex, stable, and change with the data version", async () => {
    const req: SliceRequirement = { symbol: "DAY", freq: "1d", start: "2020-01-02", end: "2020-12-31", warmupBars: 20 }
    const { dataVersion } = await run(buildCoverage(root))
    const key = sliceContentKey(req, dataVersion)
    expect(key).toMatch(/^[0-9a-f]{64}$/)
    expect(sliceContentKey({ warmupBars: 20, end: "2020-12-31", start: "2020-01-02", freq: "1d", symbol: "DAY" }, dataVersion)).toBe(key)
    expect(sliceContentKey(req, "other")).not.toBe(key)
    expect(sliceContentKey({ ...req, warmupBars: 21 }, dataVersion)).not.toBe(key)
  })
})

describe("generateCatalog", () => {
  it("same seed → same bytes; another seed → other bytes", async () => {
    const opts = { symbols: ["A", "B"], freqs: ["1d", "tick", "5min"] as const, start: "2022-01-03", end: "2022-01-07", seed: 5, gaps: [{ from: "2022-01-05", to: "2022-01-05" }], ticksPerMinute: 2 }
    const [r1, r2, r3] = [await tempDir(), await tempDir(), await tempDir()]
    await run(generateCatalog({ ...opts, freqs: [...opts.freqs], root: r1 }))
    await run(generateCatalog({ ...opts, freqs: [...opts.freqs], root: r2 }))
    await run(generateCatalog({ ...opts, freqs: [...opts.freqs], root: r3, seed: 6 }))
    const files = async (r: string) => (await readdir(r, { recursive: true })).filter((f) => String(f).endsWith(".parquet")).sort()
    const names = await files(r1)
    expect(names.length).toBe(2 * (1 + 4 + 4)) // per symbol: one 1d year file, 4 tick days, 4 5min days
    expect(await files(r2)).toEqual(names)
    for (const f of names) expect(Buffer.compare(await readFile(join(r1, f)), await readFile(join(r2, f)))).toBe(0)
    let differing = 0
    for (const f of names) if (Buffer.compare(await readFile(join(r1, f)), await readFile(join(r3, f))) !== 0) differing++
    expect(differing).toBe(names.length)
  })
})
