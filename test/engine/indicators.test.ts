import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { indicators } from "../../src/engine/index.js"

// ---- reference implementations, written the plain way ----------------------------------------
const refSma = (xs: number[], n: number): number[] =>
  xs.map((_, i) => (i + 1 < n ? NaN : xs.slice(i + 1 - n, i + 1).reduce((a, b) => a + b, 0) / n))

const refEma = (xs: number[], n: number): number[] => {
  const a = 2 / (n + 1)
  const out: number[] = []
  xs.forEach((x, i) => out.push(i === 0 ? x : out[i - 1] + a * (x - out[i - 1])))
  return out
}

const refRsi = (xs: number[], n: number): number[] => {
  const out = xs.map(() => NaN)
  let avgGain = 0
  let avgLoss = 0
  for (let i = 1; i < xs.length; i++) {
    const change = xs[i] - xs[i - 1]
    const gain = Math.max(change, 0)
    const loss = Math.max(-change, 0)
    if (i <= n) {
      avgGain += gain / n
      avgLoss += loss / n
    } else {
      avgGain = (avgGain * (n - 1) + gain) / n
      avgLoss = (avgLoss * (n - 1) + loss) / n
    }
    if (i >= n) out[i] = avgLoss === 0 ? (avgGain === 0 ? 50 : 100) : 100 - 100 / (1 + avgGain / avgLoss)
  }
  return out
}

const refBollinger = (xs: number[], n: number, k: number) =>
  xs.map((_, i) => {
    if (i + 1 < n) return { middle: NaN, upper: NaN, lower: NaN }
    const w = xs.slice(i + 1 - n, i + 1)
    const m = w.reduce((a, b) => a + b, 0) / n
    const sd = Math.sqrt(w.reduce((a, b) => a + (b - m) ** 2, 0) / n)
    return { middle: m, upper: m + k * sd, lower: m - k * sd }
  })

const refAtr = (h: number[], l: number[], c: number[], n: number): number[] => {
  const tr = h.map((_, i) =>
    i === 0 ? h[i] - l[i] : Math.max(h[i] - l[i], Math.abs(h[i] - c[i - 1]), Math.abs(l[i] - c[i - 1]))
  )
  const out = tr.map(() => NaN)
  for (let i = n - 1; i < tr.length; i++) {
    out[i] = i === n - 1 ? tr.slice(0, n).reduce((a, b) => a + b, 0) / n : (out[i - 1] * (n - 1) + tr[i]) / n
  }
  return out
}

const refHighest = (xs: number[], n: number) => xs.map((_, i) => (i + 1 < n ? NaN : Math.max(...xs.slice(i + 1 - n, i + 1))))
const refLowest = (xs: number[], n: number) => xs.map((_, i) => (i + 1 < n ? NaN : Math.min(...xs.slice(i + 1 - n, i + 1))))

const close = (actual: ArrayLike<number>, expected: number[]): void => {
  expect(actual.length).toBe(expected.length)
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]
    const a = actual[i]
    if (Number.isNaN(e)) expect(a, `index ${i}`).toBeNaN()
    else expect(Math.abs(a - e), `index ${i}: ${a} vs ${e}`).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(e)))
  }
}

const prices = fc.array(fc.double({ min: 1, max: 1e5, noNaN: true, noDefaultInfinity: true }), { minLength: 0, maxLength: 120 })
const window = fc.integer({ min: 1, max: 30 })

describe("indicators match plain reference implementations", () => {
  it("sma", () => fc.assert(fc.property(prices, window, (xs, n) => close(indicators.sma(xs, n), refSma(xs, n)))))
  it("ema", () => fc.assert(fc.property(prices, window, (xs, n) => close(indicators.ema(xs, n), refEma(xs, n)))))
  it("rsi", () => fc.assert(fc.property(prices, window, (xs, n) => close(indicators.rsi(xs, n), refRsi(xs, n)))))
  it("bollinger", () =>
    fc.assert(
      fc.property(prices, window, fc.double({ min: 0.5, max: 3, noNaN: true }), (xs, n, k) => {
        const b = indicators.bollinger(xs, n, k)
        const r = refBollinger(xs, n, k)
        close(b.middle, r.map((x) => x.middle))
        // band width is a square root of a variance: compare with an absolute tolerance scaled by price
        const scale = Math.max(1, ...xs)
        r.forEach((x, i) => {
          if (Number.isNaN(x.upper)) expect(b.upper[i]).toBeNaN()
          else {
            expect(Math.abs(b.upper[i] - x.upper)).toBeLessThan(1e-6 * scale)
            expect(Math.abs(b.lower[i] - x.lower)).toBeLessThan(1e-6 * scale)
          }
        })
      })
    ))
  it("atr", () =>
    fc.assert(
      fc.property(prices, window, (xs, n) => {
        const h = xs.map((x) => x * 1.01)
        const l = xs.map((x) => x * 0.98)
        close(indicators.atr(h, l, xs, n), refAtr(h, l, xs, n))
      })
    ))
  it("highest / lowest / donchian", () =>
    fc.assert(
      fc.property(prices, window, (xs, n) => {
        close(indicators.highest(xs, n), refHighest(xs, n))
        close(indicators.lowest(xs, n), refLowest(xs, n))
        const d = indicators.donchian(xs, xs, n)
        close(d.upper, refHighest(xs, n))
        close(d.lower, refLowest(xs, n))
      })
    ))

  it("incremental classes agree with the array helpers", () => {
    const xs = Array.from({ length: 500 }, (_, i) => 100 + Math.sin(i / 7) * 10 + (i % 13))
    const sma = new indicators.Sma(20)
    const ema = new indicators.Ema(20)
    const rsi = new indicators.Rsi(14)
    const smaArr = indicators.sma(xs, 20)
    const emaArr = indicators.ema(xs, 20)
    const rsiArr = indicators.rsi(xs, 14)
    xs.forEach((x, i) => {
      expect(Object.is(sma.update(x), smaArr[i])).toBe(true)
      expect(ema.update(x)).toBe(emaArr[i])
      expect(Object.is(rsi.update(x), rsiArr[i])).toBe(true)
    })
    expect(sma.ready && ema.ready && rsi.ready).toBe(true)
  })
})

describe("indicator edge cases", () => {
  it("constant series: sma = ema = value, rsi = 50, bands collapse, atr = 0", () => {
    const xs = Array(50).fill(42)
    expect(indicators.sma(xs, 10)[49]).toBe(42)
    expect(indicators.ema(xs, 10)[49]).toBe(42)
    expect(indicators.rsi(xs, 14)[49]).toBe(50)
    const b = indicators.bollinger(xs, 10, 2)
    expect(b.upper[49]).toBe(42)
    expect(b.lower[49]).toBe(42)
    expect(indicators.atr(xs, xs, xs, 5)[49]).toBe(0)
  })
  it("series shorter than the window: all NaN (ema excepted: it is seeded)", () => {
    const xs = [1, 2, 3]
    expect([...indicators.sma(xs, 5)].every(Number.isNaN)).toBe(true)
    expect([...indicators.rsi(xs, 5)].every(Number.isNaN)).toBe(true)
    expect([...indicators.highest(xs, 5)].every(Number.isNaN)).toBe(true)
    expect([...indicators.atr(xs, xs, xs, 5)].every(Number.isNaN)).toBe(true)
    expect([...indicators.ema(xs, 5)]).toEqual(refEma(xs, 5))
  })
  it("rising series: rsi = 100", () => {
    expect(indicators.rsi([1, 2, 3, 4, 5, 6], 3)[5]).toBe(100)
  })
  it("long runs do not drift (ring-wrap recompute)", () => {
    const xs = Array.from({ length: 200_000 }, (_, i) => 1e6 + ((i * 7919) % 1000) / 1000)
    const n = 50
    const s = indicators.sma(xs, n)
    const b = indicators.bollinger(xs, n, 2)
    const ref = refSma(xs.slice(-n), n)[n - 1]
    expect(Math.abs(s[xs.length - 1] - ref)).toBeLessThan(1e-9 * ref)
    expect(Math.abs(b.middle[xs.length - 1] - ref)).toBeLessThan(1e-9 * ref)
  })
  it("rejects a window that is not a positive integer", () => {
    expect(() => indicators.sma([1], 0)).toThrow("sma: window must be a positive integer, got 0")
    expect(() => new indicators.Ema(2.5)).toThrow(/positive integer/)
  })
})
