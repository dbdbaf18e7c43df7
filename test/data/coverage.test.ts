import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { rm, stat, utimes } from "node:fs/promises"
import { join } from "node:path"
import { buildCoverage, coverageFor, footerCounters, generateCatalog, catalogRelPath, type CoverageMemory } from "../../src/data/index.js"
import { COVERAGE_CACHE_FILE } from "../../src/data/layout.js"
import { isWeekday, isoToDay, dayToIso } from "../../src/data/time.js"
import { cleanupTempDirs, run, tempDir } from "./helpers.js"

afterAll(cleanupTempDirs)

const weekdays = (from: string, to: string, skip?: [string, string]) => {
  const out: string[] = []
  for (let d = isoToDay(from); d <= isoToDay(to); d++) {
    const iso = dayToIso(d)
    if (!isWeekday(d) || (skip && iso >= skip[0] && iso <= skip[1])) continue
    out.push(iso)
  }
  return out
}

describe("buildCoverage", () => {
  let root: string
  beforeAll(async () => {
    root = await tempDir()
    const gap = { symbol: "AAA", from: "2021-02-08", to: "2021-02-19" }
    await run(generateCatalog({ root, symbols: ["AAA", "BBB"], freqs: ["1d"], start: "2019-11-01", end: "2021-03-31", seed: 3, gaps: [gap] }))
    await run(generateCatalog({ root, symbols: ["AAA"], freqs: ["tick"], start: "2021-02-01", end: "2021-02-26", seed: 3, gaps: [gap], ticksPerMinute: 2 }))
  })

  it("reports first, last, rows, days and the injected gap of daily bars", async () => {
    const report = await run(buildCoverage(root))
    const days = weekdays("2019-11-01", "2021-03-31", ["2021-02-08", "2021-02-19"])
    const aaa = coverageFor(report, "AAA", "1d")!
    expect(aaa.first).toBe(`${days[0]}T00:00:00.000Z`)
    expect(aaa.last).toBe(`${days[days.length - 1]}T00:00:00.000Z`)
    expect(aaa.rows).toBe(days.length)
    expect(aaa.days).toBe(days.length)
    expect(aaa.files).toBe(3)
    expect(aaa.gaps).toEqual([{ from: "2021-02-05T00:00:00.000Z", to: "2021-02-22T00:00:00.000Z", days: 17 }])
    const bbb = coverageFor(report, "BBB", "1d")!
    expect(bbb.gaps).toEqual([])
    expect(bbb.days).toBe(weekdays("2019-11-01", "2021-03-31").length)
    expect(report.dataVersion).toMatch(/^[0-9a-f]{64}$/)
  })

  it("with a process's memory, a rebuild of an unchanged catalog reads neither the cache file nor a footer", async () => {
    const memory: CoverageMemory = new Map()
    const first = await run(buildCoverage(root, { memory }))
    // the file is gone: a build without memory would summarise every file again and rewrite it
    await rm(join(root, COVERAGE_CACHE_FILE), { force: true })
    const again = await run(buildCoverage(root, { memory }))
    expect(again.entries).toEqual(first.entries)
    expect(again.dataVersion).toBe(first.dataVersion)
    await expect(stat(join(root, COVERAGE_CACHE_FILE))).rejects.toThrow()
    // without memory the cache file is written again
    await run(buildCoverage(root))
    expect((await stat(join(root, COVERAGE_CACHE_FILE))).size).toBeGreaterThan(0)
  })

  it("reports ticks per day file, their gap, and bar frequencies derivable from them", async () => {
    const report = await run(buildCoverage(root))
    const ticks = coverageFor(report, "AAA", "tick")!
    expect(ticks.days).toBe(weekdays("2021-02-01", "2021-02-26", ["2021-02-08", "2021-02-19"]).length)
    expect(ticks.files).toBe(ticks.days)
    expect(ticks.first.startsWith("2021-02-01T14:30")).toBe(true) // 09:30 New York in winter
    expect(ticks.last.startsWith("2021-02-26T20:59")).toBe(true)
    expect(ticks.gaps).toHaveLength(1)
    expect(ticks.gaps[0].from.startsWith("2021-02-05T20:59")).toBe(true)
    expect(ticks.gaps[0].to.startsWith("2021-02-22T14:30")).toBe(true)
    const derived = coverageFor(report, "AAA", "1min")!
    expect(derived.derivedFromTicks).toBe(true)
    expect(derived.first).toBe(ticks.first)
    expect(coverageFor(report, "AAA", "1d")!.derivedFromTicks).toBeUndefined()
    expect(coverageFor(report, "BBB", "tick")).toBeUndefined()
  })

  it("a rebuild of an unchanged catalog reads no footer; a changed file changes the data version", async () => {
    const first = await run(buildCoverage(root))
    const before = footerCounters.reads
    const again = await run(buildCoverage(root))
    expect(footerCounters.reads - before).toBe(0)
    expect(again.dataVersion).toBe(first.dataVersion)
    expect(again.entries).toEqual(first.entries)

    const file = join(root, catalogRelPath("1d", "BBB", "2020-06-01"))
    await utimes(file, new Date("2024-01-01T00:00:00Z"), new Date("2024-01-01T00:00:00Z"))
    const changed = await run(buildCoverage(root))
    expect(changed.dataVersion).not.toBe(first.dataVersion)
    expect(footerCounters.reads - before).toBe(1)
  })

  it("filters by symbol and frequency, and an empty root is an empty report", async () => {
    const report = await run(buildCoverage(root, { symbols: ["BBB"], freqs: ["1d"] }))
    expect(report.entries.map((e) => `${e.symbol}/${e.freq}`)).toEqual(["BBB/1d"])
    const empty = await run(buildCoverage(await tempDir()))
    expect(empty.entries).toEqual([])
  })
})
