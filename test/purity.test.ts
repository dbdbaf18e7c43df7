/**
 * A result is a pure function of its inputs, through the whole pipeline on a real nats-server:
 * the same scenario gives byte-identical metrics alone and beside a scenario that needs a much
 * longer warm-up (so its group's slice starts years earlier), and a benchmark is loaded like any
 * symbol and gives LEAN's statistics equal to the engine's own in-process figures.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ensureSampleCatalog, generateCatalog, loadSlice } from "../src/data/index.js"
import { getStrategy, runBacktest, scenarioSeed, validateParams } from "../src/engine/index.js"
import { dayEndMs, dayStartMs } from "../src/schemas/common.js"
import { publishRaw } from "../src/streams/bus.js"
import { SUBJECT } from "../src/streams/topology.js"
import { systemTestLayer } from "./support/system.js"
import { readResults, waitForBatch } from "./support/results.js"

const base = {
  strategy: "trend_baseline",
  freq: "1d",
  start_date: "2005-01-03",
  end_date: "2019-12-31",
  universe: ["SPX"],
  start_capital: 100_000,
  commission_bps: 1,
  slippage_bps: 1
}

describe("a result is a pure function of its inputs", () => {
  it.scopedLive(
    "SPX 10/100 alone and beside a slow-1000 scenario: byte-identical metrics; a benchmark's statistics match the engine's",
    () => {
      const root = mkdtempSync(join(tmpdir(), "tf-purity-"))
      return Effect.gen(function* () {
        yield* ensureSampleCatalog(root)
        yield* generateCatalog({ root, symbols: ["BMK"], freqs: ["1d"], start: "2000-01-01", end: "2020-06-30", seed: 9 })
        const alone = { batch_name: "alone", defaults: base, runs: [{ id: "spx_10_100", params: { fast: 10, slow: 100 } }] }
        const beside = {
          batch_name: "beside",
          cache: false,
          defaults: base,
          runs: [
            { id: "spx_10_100", params: { fast: 10, slow: 100 } },
            { id: "spx_50_1000", params: { fast: 50, slow: 1000 } }
          ]
        }
        yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: "alone", config: alone }), "submit:alone")
        yield* waitForBatch("alone")
        yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: "beside", config: beside }), "submit:beside")
        yield* waitForBatch("beside")
        const a = (yield* readResults("alone")).find((r) => r.scenario_id === "spx_10_100")!
        const b = (yield* readResults("beside")).find((r) => r.scenario_id === "spx_10_100")!
        expect(a.status).toBe("success")
        expect(b).toMatchObject({ status: "success", cached: false })
        expect(JSON.stringify(b.metrics)).toBe(JSON.stringify(a.metrics))
        expect(b.result_key).toBe(a.result_key)

        // Benchmark: through the phases like any symbol; statistics as the engine computes them.
        const withBenchmark = { batch_name: "bench", defaults: { ...base, benchmark: "BMK" }, runs: [{ id: "spx_bmk", params: { fast: 10, slow: 100 } }, { id: "no_data", benchmark: "NOPE", params: { fast: 10, slow: 100 } }] }
        yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: "with-bmk", config: withBenchmark }), "submit:with-bmk")
        const rec = yield* waitForBatch("with-bmk")
        expect(rec.counts).toEqual({ success: 1, skipped: 1, failed: 0 })
        const results = new Map((yield* readResults("with-bmk")).map((r) => [r.scenario_id, r]))
        expect(results.get("no_data")).toMatchObject({ status: "skipped", phase: "availability" })
        expect(results.get("no_data")!.reason).toContain("benchmark")
        const got = results.get("spx_bmk")!.metrics!
        const def = getStrategy("trend_baseline")!
        const params = validateParams(def, { fast: 10, slow: 100 }, { strict: true })
        if (!params.ok) throw new Error(params.errors.join("; "))
        const warmupBars = def.calculateRequirements(params.params, "1d").warmupBars
        const req = (symbol: string) => ({ symbol, freq: "1d" as const, start: "2005-01-03", end: "2019-12-31", warmupBars })
        const spx = yield* loadSlice(root, req("SPX"))
        const bmk = yield* loadSlice(root, req("BMK"))
        const expected = runBacktest(
          {
            strategy: def,
            params: params.params,
            startCapital: 100_000,
            costs: { commission_bps: 1, spread_w: 0, impact_w: 0, slippage_bps: 1 },
            seed: scenarioSeed(0, "spx_bmk"),
            startMs: dayStartMs("2005-01-03"),
            endMs: dayEndMs("2019-12-31"),
            warmupBars,
            benchmark: bmk.series,
            maxEquityPoints: 120
          },
          [spx.series]
        ).metrics
        expect(typeof got.beta).toBe("number")
        for (const k of ["alpha", "beta", "information_ratio", "tracking_error", "treynor_ratio", "sharpe", "final_equity"] as const) expect(got[k]).toBe(expected[k])
      }).pipe(
        Effect.provide(systemTestLayer({ settings: { dataRoot: root } })),
        Effect.ensuring(Effect.sync(() => rmSync(root, { recursive: true, force: true })))
      )
    },
    120_000
  )
})
