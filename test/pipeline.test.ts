/**
 * The pipeline end to end on a real nats-server: a sweep with one scenario stopped in each
 * phase, one slice load per distinct slice, and the batch summary matching the results.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { generateCatalog } from "../src/data/index.js"
import { fetchEquity } from "../src/actors/equity.js"
import { ActorMetrics } from "../src/actors/process-state.js"
import { Bus, publishRaw } from "../src/streams/bus.js"
import { SUBJECT } from "../src/streams/topology.js"
import { systemTestLayer } from "./support/system.js"
import { publishFixture } from "./support/strategies.js"
import { readResults, storedResultCounts, waitForBatch } from "./support/results.js"

const root = mkdtempSync(join(tmpdir(), "tf-pipeline-"))

const sweepConfig = (thrower: string) => ({
  batch_name: "pipeline_test",
  seed: 7,
  defaults: {
    strategy: "trend_baseline",
    freq: "1d",
    start_date: "2016-01-04",
    end_date: "2020-12-31",
    universe: ["AAA"],
    start_capital: 100_000,
    commission_bps: 2
  },
  runs: [
    { id: "bad_dates", start_date: "2020-06-01", end_date: "2019-06-01" },
    { id: "bad_param", params: { fast: 500, slow: 600 } },
    { id: "gap_symbol", universe: ["GAPPY"], params: { fast: 10, slow: 40 } },
    { id: "thrower", strategy: thrower, params: { after: 100 } }
  ],
  sweep: { id: "ema", grid: { fast: [5, 10, 15, 20], slow: [40, 60], symbol: ["AAA", "BBB"] } }
})

describe("pipeline", () => {
  it.scopedLive(
    "a 20-scenario sweep: 16 success, 3 skipped (each with phase and reason), 1 failed; one load per slice",
    () =>
      Effect.gen(function* () {
        const metrics = yield* ActorMetrics
        yield* generateCatalog({
          root,
          symbols: ["AAA", "BBB", "GAPPY"],
          freqs: ["1d"],
          start: "2014-01-01",
          end: "2021-06-30",
          seed: 11,
          gaps: [{ symbol: "GAPPY", from: "2018-03-01", to: "2018-03-31" }]
        })
        const loadsBefore = metrics.loads
        // A user strategy travels as a published module (name@hash), never as a path.
        const thrower = yield* publishFixture("throwing-strategy.ts")
        yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: "sweep20", config: sweepConfig(thrower) }), "submit:sweep20")
        const rec = yield* waitForBatch("sweep20")
        expect(rec.status).toBe("done")
        expect(rec.total).toBe(20)
        expect(rec.counts).toEqual({ success: 16, skipped: 3, failed: 1 })

        const results = yield* readResults("sweep20")
        expect(results).toHaveLength(20)
        const byId = new Map(results.map((r) => [r.scenario_id, r]))
        expect(byId.get("bad_dates")).toMatchObject({ status: "skipped", phase: "availability" })
        expect(byId.get("bad_dates")!.reason).toContain("end_date 2019-06-01 is before start_date 2020-06-01")
        expect(byId.get("bad_param")).toMatchObject({ status: "skipped", phase: "requirements" })
        expect(byId.get("bad_param")!.reason).toContain("params.fast: 500 is above the maximum 200")
        expect(byId.get("gap_symbol")).toMatchObject({ status: "skipped", phase: "quality" })
        expect(byId.get("gap_symbol")!.reason).toMatch(/GAPPY/)
        expect(byId.get("thrower")).toMatchObject({ status: "failed", phase: "execution" })
        expect(byId.get("thrower")!.reason).toContain("deliberate failure at bar 101")
        const successes = results.filter((r) => r.status === "success")
        expect(successes).toHaveLength(16)
        for (const r of successes) {
          expect(r.metrics!.final_equity).toBeGreaterThan(0)
          expect(r.cached).toBe(false)
          expect(r.result_key).toMatch(/^[0-9a-f]{64}$/)
          // thin results: the curve is fetched on demand from its chunk's message
          expect(r.equity).toBeUndefined()
          const curve = yield* fetchEquity(r)
          expect(curve!.nav.length).toBeGreaterThan(1)
          expect(curve!.ts).toHaveLength(curve!.nav.length)
          // NAVs travel rounded to 1/10,000 (equity.ts)
          expect(curve!.nav[curve!.nav.length - 1]).toBeCloseTo(r.metrics!.final_equity, 3)
          expect(JSON.stringify(r).length).toBeLessThan(1_500)
        }

        const bus = yield* Bus
        expect(rec.phases.availability).toMatchObject({ in: 20, skipped: 1 })
        expect(rec.phases.requirements).toMatchObject({ in: 19, skipped: 1 })
        expect(rec.phases.quality).toMatchObject({ skipped: 1 })
        expect(rec.phases.execution).toMatchObject({ in: 17, pass: 16, failed: 1 })

        // One load per distinct slice: the loads equal the objects in the store.
        const loads = metrics.loads - loadsBefore
        const objects = yield* Effect.promise(() => bus.data.list())
        expect(loads).toBe(objects.length)
        // AAA and BBB each in two groups (sweep/thrower warmups differ) would still be <= 6 slices
        expect(loads).toBeLessThanOrEqual(6)

        // The same sweep in a second batch is answered from the result cache: byte-identical
        // metrics, the original timings, nothing loaded, no engine run.
        const loadsBeforeSecond = metrics.loads
        yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: "sweep20b", config: sweepConfig(thrower) }), "submit:sweep20b")
        const rec2 = yield* waitForBatch("sweep20b")
        expect(rec2.counts).toEqual(rec.counts)
        // only the failed scenario (failures are not cached) runs again, on a slice of its own warm-up
        expect(metrics.loads - loadsBeforeSecond).toBeLessThanOrEqual(1)
        const again = new Map((yield* readResults("sweep20b")).map((r) => [r.scenario_id, r]))
        for (const r of successes) {
          const twin = again.get(r.scenario_id)!
          expect(JSON.stringify(twin.metrics)).toBe(JSON.stringify(r.metrics))
          expect(twin).toMatchObject({ cached: true, result_key: r.result_key, timings: r.timings, batch_id: "sweep20b" })
        }

        // No duplicates stored.
        const stored = yield* storedResultCounts("sweep20")
        expect(Object.values(stored).every((n) => n === 1)).toBe(true)
        expect(Object.keys(stored)).toHaveLength(20)
      }).pipe(Effect.provide(systemTestLayer({ settings: { dataRoot: root } })), Effect.ensuring(Effect.sync(() => rmSync(root, { recursive: true, force: true })))),
    90_000
  )
})
