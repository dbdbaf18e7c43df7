import { existsSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import {
  getStrategy,
  listStrategies,
  loadStrategy,
  runBacktest,
  StrategyNotFoundError,
  validateParams
} from "../../src/engine/index.js"
import { Effect } from "effect"
import { bundleStrategyFile, inspectBundle } from "../../src/strategies-store.js"
import { randomSeries, scenario, DAY, T0 } from "./helpers.js"

describe("strategy registry", () => {
  it("lists the built-ins", () => {
    expect(listStrategies().map((s) => s.name)).toEqual(["trend_baseline", "mean_reversion", "breakout"])
    expect(getStrategy("nope")).toBeUndefined()
  })

  it("requirements: warmup covers the indicators", () => {
    const trend = getStrategy("trend_baseline")!
    expect(trend.calculateRequirements({ fast: 10, slow: 50, allow_short: false }, "1d")).toEqual({
      warmupBars: 150,
      indicators: ["ema(10)", "ema(50)"],
      intervals: ["1d"]
    })
    const mr = getStrategy("mean_reversion")!
    const bb = validateParams(mr, { window: 40 }, { strict: true }).params
    expect(mr.calculateRequirements(bb, "1h").warmupBars).toBe(40)
    const rsi = validateParams(mr, { mode: "rsi", rsi_period: 10 }, { strict: true }).params
    expect(mr.calculateRequirements(rsi, "1h")).toEqual({ warmupBars: 31, indicators: ["rsi(10)"], intervals: ["1h"] })
    const bo = getStrategy("breakout")!
    expect(bo.calculateRequirements({ entry_window: 55, exit_window: 20, allow_short: true }, "1d").warmupBars).toBe(56)
  })

  it("every built-in runs on one and on several symbols", () => {
    const a = randomSeries({ n: 600, seed: 3, startIndex: 200 })
    const b = randomSeries({ n: 600, seed: 4, startIndex: 200, symbol: "BBB" })
    for (const def of listStrategies()) {
      for (const params of [{}, { allow_short: true }]) {
        const scn = scenario(def, params, { startMs: a.ts[200] })
        for (const universe of [[a], [a, b]]) {
          const r = runBacktest(scn, universe)
          expect(r.metrics.trades, `${def.name} ${JSON.stringify(params)}`).toBeGreaterThan(0)
          expect(Number.isFinite(r.metrics.final_equity)).toBe(true)
        }
      }
      if (def.name === "mean_reversion") {
        const r = runBacktest(scenario(def, { mode: "rsi", allow_short: true }, { startMs: a.ts[200] }), [a])
        expect(r.metrics.trades).toBeGreaterThan(0)
      }
    }
  })

  it("loadStrategy: built-in names", async () => {
    expect(await loadStrategy("breakout")).toBe(getStrategy("breakout"))
  })

  it("loadStrategy: unknown names list the built-ins; paths and URLs are refused without touching them", async () => {
    await expect(loadStrategy("macd")).rejects.toThrow(StrategyNotFoundError)
    await expect(loadStrategy("macd")).rejects.toThrow(
      'unknown strategy "macd"; built-in strategies are trend_baseline, mean_reversion, breakout'
    )
    const dir = mkdtempSync(join(tmpdir(), "tickflow-strategy-"))
    const marker = join(dir, "marker")
    writeFileSync(join(dir, "evil.mjs"), `import { writeFileSync } from "node:fs"; writeFileSync(${JSON.stringify(marker)}, "ran")\nexport default {}\n`)
    for (const value of [join(dir, "evil.mjs"), "./evil.mjs", "../evil.mjs", `file://${join(dir, "evil.mjs")}`, "evil.mjs", "data:text/javascript,export default 1"])
      await expect(loadStrategy(value)).rejects.toThrow(/names a module path or URL; modules are never loaded from a path or URL/)
    expect(existsSync(marker)).toBe(false)
  })

  it("a user module bundled for publishing (esbuild) exports its definition and runs", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tickflow-strategy-"))
    writeFileSync(
      join(dir, "always_long.ts"),
      `import { z } from "zod"
export const strategy = {
  name: "always_long",
  description: "long from the start",
  params: z.object({ weight: z.number().min(0).max(1).default(1) }),
  validateConfig: () => [],
  calculateRequirements: (_p: unknown, freq: string) => ({ warmupBars: 0, indicators: [], intervals: [freq] }),
  create: (p: { weight: number }) => ({ onBar: () => p.weight })
}
`
    )
    writeFileSync(join(dir, "not_a_strategy.ts"), `export default { hello: "world" }\n`)
    const code = await Effect.runPromise(bundleStrategyFile(join(dir, "always_long.ts")))
    expect(code).not.toMatch(/from "zod"/) // inlined: the bundle needs no node_modules
    const def = await Effect.runPromise(inspectBundle(code))
    expect(def.name).toBe("always_long")
    const series = randomSeries({ n: 50 })
    const r = runBacktest(scenario(def, {}), [series])
    expect(r.metrics.exposure).toBeCloseTo(49 / 50, 12)
    const bad = await Effect.runPromise(bundleStrategyFile(join(dir, "not_a_strategy.ts")))
    await expect(Effect.runPromise(inspectBundle(bad))).rejects.toThrow(/exports no strategy/)
  })

  it("trend_baseline goes long on an uptrend and short on a downtrend with allow_short", () => {
    const up = Array.from({ length: 100 }, (_, i) => 100 + i)
    const down = Array.from({ length: 100 }, (_, i) => 200 - i)
    const prices = [...up, ...down]
    const series = {
      symbol: "AAA",
      freq: "1d" as const,
      ts: Float64Array.from(prices.map((_, i) => T0 + i * DAY)),
      close: Float64Array.from(prices),
      startIndex: 0
    }
    const trend = getStrategy("trend_baseline")!
    const long = runBacktest(scenario(trend, { fast: 3, slow: 10 }), [series])
    const both = runBacktest(scenario(trend, { fast: 3, slow: 10, allow_short: true }), [series])
    expect(long.metrics.total_return!).toBeGreaterThan(0)
    expect(both.metrics.total_return!).toBeGreaterThan(long.metrics.total_return!)
  })
})
