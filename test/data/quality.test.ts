import { describe, expect, it } from "vitest"
import { checkQuality, qualityFindingsFor, qualityPasses, type QualityFinding } from "../../src/data/index.js"
import type { PriceSeries } from "../../src/engine/types.js"
import type { Freq } from "../../src/schemas/common.js"

const T0 = Date.parse("2021-03-01T14:30:00Z")
const MIN = 60_000

const series = (freq: Freq, ts: number[], close?: number[], extra: Partial<PriceSeries> = {}): PriceSeries => ({
  symbol: "XYZ",
  freq,
  ts: Float64Array.from(ts),
  close: Float64Array.from(close ?? ts.map(() => 100)),
  startIndex: 0,
  ...extra
})
const minutes = (n: number, from = T0) => Array.from({ length: n }, (_, i) => from + i * MIN)
const only = (findings: QualityFinding[], code: QualityFinding["code"]) => findings.filter((f) => f.code === code)

describe("checkQuality", () => {
  it("a clean series has no findings", () => {
    const f = checkQuality(series("1min", minutes(300), undefined, { startIndex: 50 }), { strict: true, warmupBarsRequired: 50 })
    expect(f).toEqual([])
    expect(qualityPasses(f)).toBe(true)
  })

  it("empty: error", () => {
    const [f] = checkQuality(series("1d", []), { strict: false, warmupBarsRequired: 0 })
    expect(f).toMatchObject({ code: "empty", severity: "error", symbol: "XYZ" })
  })

  it("tick_gap: a pause within the session, not overnight", () => {
    const day1 = minutes(60)
    const day1b = minutes(30, T0 + 60 * MIN + 45 * MIN) // 46-minute pause at 15:29 → 16:15
    const day2 = minutes(30, T0 + 86_400_000) // overnight: not a gap
    const f = checkQuality(series("tick", [...day1, ...day1b, ...day2]), { strict: false, warmupBarsRequired: 0, maxGapMinutes: 30 })
    const gaps = only(f, "tick_gap")
    expect(gaps).toHaveLength(1)
    expect(gaps[0]).toMatchObject({ severity: "warning", symbol: "XYZ", time: "2021-03-01T15:29:00.000Z", value: 46 })
    expect(gaps[0].message).toContain("XYZ")
    expect(gaps[0].message).toContain("46 minutes")
    expect(only(checkQuality(series("tick", [...day1, ...day1b]), { strict: true, warmupBarsRequired: 0, maxGapMinutes: 30 }), "tick_gap")[0].severity).toBe("error")
  })

  it("tick_gap for daily bars: more than 5 trading days missing", () => {
    const d = (iso: string) => Date.parse(`${iso}T00:00:00Z`)
    const ts = [d("2021-03-01"), d("2021-03-02"), d("2021-03-12"), d("2021-03-15"), d("2021-03-19")] // 7 weekdays missing, then 3
    const gaps = only(checkQuality(series("1d", ts), { strict: false, warmupBarsRequired: 0 }), "tick_gap")
    expect(gaps).toHaveLength(1)
    expect(gaps[0]).toMatchObject({ time: "2021-03-02T00:00:00.000Z", value: 7 })
  })

  it("insufficient_warmup: warning with the bars present", () => {
    const f = only(checkQuality(series("1min", minutes(100), undefined, { startIndex: 20 }), { strict: true, warmupBarsRequired: 50 }), "insufficient_warmup")
    expect(f[0]).toMatchObject({ severity: "warning", value: 20, time: "2021-03-01T14:50:00.000Z" })
    expect(f[0].message).toContain("50 required")
  })

  it("one scan answers every warm-up: the warm-up finding in its place, between the row checks and the gaps", () => {
    // synthetic bars (a row check, before the warm-up check) and a 46-minute gap (after it)
    const ts = [...minutes(60), ...minutes(30, T0 + 105 * MIN)]
    const synthetic = new Uint8Array(ts.length)
    synthetic[3] = 1
    const s = series("1min", ts, undefined, { startIndex: 40, synthetic })
    const check = qualityFindingsFor(s, { strict: false, maxGapMinutes: 30 })
    expect(check(40).map((f) => f.code)).toEqual(["synthetic_bars", "tick_gap"])
    expect(check(64).map((f) => f.code)).toEqual(["synthetic_bars", "insufficient_warmup", "tick_gap"])
    expect(check(64)[1]).toMatchObject({ value: 40, time: "2021-03-01T15:10:00.000Z" })
    expect(check(64)[1].message).toContain("64 required")
    expect(check(40).map((f) => f.code)).toEqual(["synthetic_bars", "tick_gap"])
  })

  it("synthetic_bars: error in strict mode, warning otherwise", () => {
    const synthetic = new Uint8Array(10)
    synthetic[4] = 1
    synthetic[6] = 1
    const s = series("1min", minutes(10), undefined, { synthetic })
    const strict = only(checkQuality(s, { strict: true, warmupBarsRequired: 0 }), "synthetic_bars")[0]
    expect(strict).toMatchObject({ severity: "error", value: 2, time: "2021-03-01T14:34:00.000Z", symbol: "XYZ" })
    expect(only(checkQuality(s, { strict: false, warmupBarsRequired: 0 }), "synthetic_bars")[0].severity).toBe("warning")
  })

  it("non_monotonic: error at the first backwards step", () => {
    const ts = minutes(10)
    ts[5] = ts[3]
    const f = only(checkQuality(series("1min", ts), { strict: false, warmupBarsRequired: 0 }), "non_monotonic")
    expect(f[0]).toMatchObject({ severity: "error", time: "2021-03-01T14:33:00.000Z", value: MIN })
  })

  it("bad_price: NaN, zero and negative prices are errors", () => {
    for (const bad of [Number.NaN, 0, -1.5]) {
      const close = Array.from({ length: 10 }, () => 100)
      close[7] = bad
      const [f] = only(checkQuality(series("1min", minutes(10), close), { strict: false, warmupBarsRequired: 0 }), "bad_price")
      expect(f).toMatchObject({ severity: "error", time: "2021-03-01T14:37:00.000Z", value: Number.isNaN(bad) ? null : bad })
      expect(f.message).toContain(String(bad))
    }
  })

  it("duplicate_ts: warning with the count", () => {
    const ts = minutes(10)
    ts[2] = ts[1]
    ts[8] = ts[7]
    const [f] = only(checkQuality(series("1min", ts), { strict: false, warmupBarsRequired: 0 }), "duplicate_ts")
    expect(f).toMatchObject({ severity: "warning", value: 2, time: "2021-03-01T14:31:00.000Z" })
  })
})

describe("synthesised opens", () => {
  const DAY = 86_400_000
  const walk = (n: number, seed: number): number[] => {
    let x = 100
    let state = seed
    return Array.from({ length: n }, () => {
      state = (state * 1103515245 + 12345) % 2 ** 31
      x *= 1 + ((state / 2 ** 31) - 0.5) * 0.02
      return x
    })
  }
  const days = (n: number) => Array.from({ length: n }, (_, i) => Date.UTC(2004, 0, 5) + i * DAY)

  it("opens equal to the previous close on most rows: a warning saying next-open fills are same-close fills", () => {
    const close = walk(100, 7)
    // 69 of 99 opens copied from the previous close (i % 10 in 0..6, row 0 has none), the rest real
    const open = close.map((c, i) => (i === 0 ? c : i % 10 < 7 ? close[i - 1] : close[i - 1] * 1.001))
    const f = only(checkQuality(series("1d", days(100), close, { open: Float64Array.from(open) }), { strict: true, warmupBarsRequired: 0 }), "synthesised_opens")
    expect(f).toHaveLength(1)
    expect(f[0]).toMatchObject({ severity: "warning", symbol: "XYZ", value: 69, time: "2004-01-06T00:00:00.000Z" })
    expect(f[0].message).toContain("same-close fills")
    expect(f[0].message).toContain("69 of 99 rows")
  })

  it("real opens (or only some copied) and series without opens: no warning", () => {
    const close = walk(100, 9)
    const halfCopied = close.map((c, i) => (i === 0 ? c : i % 2 === 0 ? close[i - 1] : c * 0.999))
    const none = (extra: Partial<PriceSeries>) => only(checkQuality(series("1d", days(100), close, extra), { strict: false, warmupBarsRequired: 0 }), "synthesised_opens")
    expect(none({ open: Float64Array.from(halfCopied) })).toEqual([]) // 50% is not "most"
    expect(none({ open: Float64Array.from(close.map((c) => c * 1.0005)) })).toEqual([])
    expect(none({})).toEqual([])
  })
})
