import { describe, expect, it } from "vitest"
import { evaluateFormula, FormulaParseError, parseFormula, processBatch, scanSeries } from "../../src/engine/index.js"
import type { PriceSeries } from "../../src/engine/index.js"
import { closesSeries, DAY, T0 } from "./helpers.js"

const parseError = (src: string): FormulaParseError => {
  try {
    parseFormula(src)
  } catch (e) {
    if (e instanceof FormulaParseError) return e
    throw e
  }
  throw new Error(`expected ${src} to fail`)
}

describe("parseFormula", () => {
  it.each([
    ["close > sma(close, 50))", 23, "unexpected ')' at column 23; expected an operator or the end of the formula"],
    ["close > ", 9, "unexpected end of formula at column 9; expected a number, a column, a function or '('"],
    ["close >> 3", 8, "unexpected '>' at column 8; expected a number, a column, a function or '('"],
    ["close = 3", 7, "unexpected character '=' at column 7; use == to compare"],
    ["closes > 3", 1, "unknown name 'closes' at column 1; columns are open, high, low, close, volume; functions are sma, ema, rsi, highest, lowest, atr, abs, prev, crossover, crossunder"],
    ["macd(close) > 1", 1, "unknown function 'macd' at column 1; functions are sma, ema, rsi, highest, lowest, atr, abs, prev, crossover, crossunder"],
    ["sma(close) > 1", 4, "sma takes 2 arguments (sma(x, n)), got 1 at column 4"],
    ["sma(close, 2.5) > 1", 12, "sma: the window must be a positive whole number (sma(x, n)) at column 12"],
    ["1 < close < 3", 11, "comparisons cannot be chained at column 11; combine them with and"],
    ["close + 1", 1, "the formula must be a condition such as close > sma(close, 50), but it is a number (column 1)"],
    ["close and open > 1", 1, "'and' combines conditions, but the expression at column 1 is a number"],
    ["(close > 1", 11, "unexpected end of formula at column 11; expected ')'"],
    ["", 1, "empty formula at column 1"]
  ])("%j → column %i", (src, column, message) => {
    const e = parseError(src)
    expect(e.message).toBe(message)
    expect(e.column).toBe(column)
  })

  it("accepts the documented language", () => {
    const f = parseFormula("close > sma(close, 50) and rsi(close, 14) < 30 or not (volume >= 2 * prev(volume, 1)) AND crossover(ema(close, 5), ema(close, 20))")
    expect(f.columns).toEqual(["close", "volume"])
    expect(f.lookback).toBe(50)
    expect(parseFormula("atr(14) > 2").columns).toEqual(["high", "low", "close"])
  })
})

describe("evaluation", () => {
  const s: PriceSeries = {
    symbol: "AAA",
    freq: "1d",
    ts: Float64Array.from([0, 1, 2, 3, 4, 5].map((i) => T0 + i * DAY)),
    close: Float64Array.from([10, 11, 12, 11, 13, 9]),
    high: Float64Array.from([10.5, 11.5, 12.5, 11.5, 13.5, 10]),
    low: Float64Array.from([9.5, 10.5, 11.5, 10.5, 12.5, 8]),
    volume: Float64Array.from([100, 200, 50, 400, 100, 100]),
    startIndex: 0
  }
  const values = (src: string) => [...evaluateFormula(src, s)]

  it("arithmetic and comparisons, hand-computed", () => {
    expect(values("close * 2 - 1 > 21")).toEqual([0, 0, 1, 0, 1, 0])
    expect(values("-close + 12 >= 1")).toEqual([1, 1, 0, 1, 0, 1])
    expect(values("close / (close - 11) > 5")).toEqual([0, 0, 1, 0, 1, 0]) // 11/0 is NaN, not a match
    expect(values("close == 11 or close != close")).toEqual([0, 1, 0, 1, 0, 0])
  })
  it("rolling functions: sma(close,3) = [·,·,11,11.33,12,11]", () => {
    expect(values("close > sma(close, 3)")).toEqual([0, 0, 1, 0, 1, 0])
    expect(values("highest(close, 2) == 12")).toEqual([0, 0, 1, 1, 0, 0])
    expect(values("lowest(low, 3) < 10")).toEqual([0, 0, 1, 0, 0, 1])
  })
  it("prev and crossover", () => {
    expect(values("close > prev(close, 1)")).toEqual([0, 1, 1, 0, 1, 0])
    expect(values("volume > 2 * prev(volume, 1)")).toEqual([0, 0, 0, 1, 0, 0])
    expect(values("volume >= 2 * prev(volume, 2)")).toEqual([0, 0, 0, 1, 1, 0])
    // close vs 11.5: below, below, above, below, above, below
    expect(values("crossover(close, 11.5)")).toEqual([0, 0, 1, 0, 1, 0])
    expect(values("crossunder(close, 11.5)")).toEqual([0, 0, 0, 1, 0, 1])
    expect(values("not prev(close > 11, 1)")).toEqual([0, 1, 1, 0, 1, 0])
  })
  it("atr and rsi use the engine's indicators", () => {
    // TR: 1, 1, 1, 1.5, 2, 5 → atr(2): ·, 1, 1, 1.25, 1.625, 3.3125
    expect(values("atr(2) > 1.5")).toEqual([0, 0, 0, 0, 1, 1])
    expect(values("rsi(close, 2) > 50")).toEqual([0, 0, 1, 0, 1, 0])
  })
  it("scanSeries returns matching candles from startIndex on", () => {
    expect(scanSeries("close > 10.5", { ...s, startIndex: 2 })).toEqual([
      { ts: T0 + 2 * DAY, close: 12 },
      { ts: T0 + 3 * DAY, close: 11 },
      { ts: T0 + 4 * DAY, close: 13 }
    ])
  })
})

describe("processBatch", () => {
  it("runs symbols in turn, reports progress and keeps going past a failing symbol", async () => {
    const progress: Array<[number, number]> = []
    const result = await processBatch(
      {
        formula: "close > prev(close, 1) and volume > 0",
        symbols: ["AAA", "BAD", "NOVOL", "CCC"],
        load: async (symbol) => {
          if (symbol === "BAD") throw new Error("no data for BAD")
          const series = closesSeries([1, 2, 1, 3], symbol)
          return symbol === "NOVOL" ? series : { ...series, volume: Float64Array.from([1, 1, 1, 1]) }
        }
      },
      (completed, total) => progress.push([completed, total])
    )
    expect(progress).toEqual([
      [1, 4],
      [2, 4],
      [3, 4],
      [4, 4]
    ])
    expect(result.summary).toEqual({ total: 4, succeeded: 2, failed: 2, matches: 4 })
    expect(result.results.map((r) => [r.symbol, r.matches.length, r.error])).toEqual([
      ["AAA", 2, null],
      ["BAD", 0, "no data for BAD"],
      ["NOVOL", 0, "NOVOL: the formula uses volume but the series has no volume column"],
      ["CCC", 2, null]
    ])
    expect(result.results.every((r) => r.processing_time_ms >= 0)).toBe(true)
  })

  it("a formula that does not parse rejects the job", async () => {
    await expect(processBatch({ formula: "close >", symbols: ["A"], load: () => closesSeries([1]) })).rejects.toThrow(
      FormulaParseError
    )
  })
})
