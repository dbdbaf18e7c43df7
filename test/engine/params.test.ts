import { describe, expect, it } from "vitest"
import { z } from "zod"
import { getStrategy, validateParams } from "../../src/engine/index.js"
import type { StrategyDefinition } from "../../src/engine/index.js"

const trend = getStrategy("trend_baseline") as StrategyDefinition
const meanReversion = getStrategy("mean_reversion") as StrategyDefinition
const breakout = getStrategy("breakout") as StrategyDefinition

describe("validateParams", () => {
  it("applies defaults", () => {
    const v = validateParams(trend, {}, { strict: true })
    expect(v).toEqual({ ok: true, params: { fast: 10, slow: 30, allow_short: false }, errors: [], warnings: [] })
    expect(validateParams(trend, undefined, { strict: true }).params).toEqual({ fast: 10, slow: 30, allow_short: false })
  })

  const strictCases: Array<[StrategyDefinition, unknown, string[]]> = [
    [trend, { fast: 500 }, ["params.fast: 500 is above the maximum 200"]],
    [trend, { fast: 1 }, ["params.fast: 1 is below the minimum 2"]],
    [trend, { fast: 20, slow: 10 }, ["params.fast (20) must be smaller than params.slow (10)"]],
    [trend, { fast: "ten" }, ['params.fast: "ten" is not an integer; expected an integer between 2 and 200']],
    [trend, { fast: 2.5 }, ["params.fast: 2.5 is not an integer; expected an integer between 2 and 200"]],
    [trend, { allow_short: "yes" }, ['params.allow_short: "yes" is not a boolean; expected true or false']],
    [trend, { speed: 3 }, ["params.speed: unknown parameter (value 3); trend_baseline accepts fast, slow, allow_short"]],
    [meanReversion, { mode: "macd" }, ['params.mode: "macd" is not allowed; expected one of "bollinger", "rsi"']],
    [meanReversion, { num_std: Number.NaN }, ["params.num_std: NaN is not a number; expected a number between 0.1 and 10"]],
    [
      meanReversion,
      { mode: "rsi", rsi_oversold: 60, rsi_exit: 50 },
      ["params.rsi_oversold (60) must be smaller than params.rsi_exit (50)"]
    ],
    [breakout, { entry_window: 10, exit_window: 20 }, ["params.exit_window (20) must not be larger than params.entry_window (10)"]],
    [trend, [1, 2], ["params: [1,2] is not an object of named parameters"]]
  ]
  it.each(strictCases)("strict: %#", (def, raw, errors) => {
    const v = validateParams(def, raw, { strict: true })
    expect(v.ok).toBe(false)
    expect(v.errors).toEqual(errors)
  })

  it("non-strict: bounds are clamped and unknown params dropped, with warnings", () => {
    const v = validateParams(trend, { fast: 500, slow: 1000, speed: 3 }, { strict: false })
    expect(v.ok).toBe(true)
    expect(v.params).toEqual({ fast: 200, slow: 1000, allow_short: false })
    expect(v.warnings).toEqual([
      "params.speed: unknown parameter (value 3); trend_baseline accepts fast, slow, allow_short; ignored",
      "params.fast: 500 is above the maximum 200; clamped to 200"
    ])
  })

  it("non-strict: a type error still fails", () => {
    const v = validateParams(trend, { fast: "x" }, { strict: false })
    expect(v.ok).toBe(false)
    expect(v.errors[0]).toMatch(/^params\.fast: "x" is not an integer/)
  })

  it("non-strict: clamping can still fail the structural check", () => {
    const v = validateParams(trend, { fast: 500, slow: 100 }, { strict: false })
    expect(v.ok).toBe(false)
    expect(v.errors).toEqual(["params.fast (200) must be smaller than params.slow (100)"])
  })

  it("user schemas: exclusive bounds, required fields and refinements", () => {
    const def: StrategyDefinition = {
      name: "custom",
      description: "",
      params: z.object({
        rate: z.number().positive(),
        level: z.number().int().gt(0).default(3),
        label: z.string().refine((s) => s.length <= 3, "at most 3 characters").default("ab")
      }),
      validateConfig: () => [],
      calculateRequirements: (_p, freq) => ({ warmupBars: 0, indicators: [], intervals: [freq] }),
      create: () => ({ onBar: () => 0 })
    }
    expect(validateParams(def, {}, { strict: true }).errors).toEqual(["params.rate: missing; expected a number > 0"])
    expect(validateParams(def, { rate: 0 }, { strict: false }).errors).toEqual(["params.rate: 0 must be greater than 0"])
    const clamped = validateParams(def, { rate: 1, level: 0 }, { strict: false })
    expect(clamped.params.level).toBe(1)
    expect(clamped.warnings).toEqual(["params.level: 0 must be greater than 0; clamped to 1"])
    expect(validateParams(def, { rate: 1, label: "abcd" }, { strict: true }).errors).toEqual([
      'params.label: "abcd": at most 3 characters'
    ])
  })
})
