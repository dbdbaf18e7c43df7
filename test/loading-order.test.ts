/**
 * How a sweep's slices get loaded: its groups reach the loader taking turns between slices, and
 * groups of one process that need the same slice share one load (the others await it instead
 * of polling the claim). On a real nats-server and a generated Parquet catalog.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { groupScenarios } from "../src/actors/coordinator.js"
import { ensureSliceFor } from "../src/actors/loader.js"
import { ActorMetrics } from "../src/actors/process-state.js"
import { actorSettingsLayer } from "../src/actors/common.js"
import { generateCatalog } from "../src/data/index.js"
import { expandBatch, parseBatchConfig } from "../src/schemas/batch.js"
import { Bus } from "../src/streams/bus.js"
import { busTestLayer } from "./support/nats.js"

const sliceOf = (g: { slice: { universe: ReadonlyArray<string> } }) => g.slice.universe.join(",")

describe("loading order", () => {
  it("a sweep's groups take turns between slices; each slice's groups keep their order", () => {
    const scenarios = expandBatch(
      parseBatchConfig({
        batch_name: "turns",
        defaults: { strategy: "sma_cross", freq: "1d", start_date: "2020-01-01", end_date: "2020-12-31", start_capital: 1_000 },
        sweep: { id: "g", grid: { fast: Array.from({ length: 30 }, (_, i) => i + 2), slow: Array.from({ length: 40 }, (_, i) => i + 40), symbol: ["AAA", "BBB", "CCC"] } }
      }),
      { batchId: "B" }
    )
    const groups = groupScenarios(scenarios)
    // 1,200 scenarios a symbol: 3 groups of up to 500 for each of the 3 slices
    expect(groups.length).toBe(9)
    expect(groups.map(sliceOf)).toEqual(["AAA", "BBB", "CCC", "AAA", "BBB", "CCC", "AAA", "BBB", "CCC"])
    for (const sym of ["AAA", "BBB", "CCC"]) {
      const own = groups.filter((g) => sliceOf(g) === sym)
      expect(own.map((g) => g.group_id.slice(-2))).toEqual(["-0", "-1", "-2"])
      expect(own.reduce((n, g) => n + g.items.length, 0)).toBe(1_200)
    }
    // nothing lost or doubled on the way
    expect(new Set(groups.flatMap((g) => g.items.map((it) => it.scenario.scenario_id))).size).toBe(scenarios.length)
  })

  it.scopedLive("groups of one process needing the same slice share one load; another process finds it stored", () =>
    Effect.gen(function* () {
      const root = yield* Effect.acquireRelease(
        Effect.promise(() => mkdtemp(join(tmpdir(), "tickflow-loading-order-"))),
        (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
      )
      yield* generateCatalog({ root, symbols: ["AAA", "BBB"], freqs: ["1d"], start: "2018-01-01", end: "2020-12-31", seed: 5 })
      const slice = { universe: ["AAA"], freq: "1d" as const, start_date: "2019-01-01", end_date: "2020-12-31", warmup_bars: 50 }
      const load = (symbol: string) => ensureSliceFor({ ...slice, universe: [symbol] }, "v1", symbol, root, "test")

      // one process: three groups on AAA at once, one on BBB
      const first = yield* Effect.gen(function* () {
        const refs = yield* Effect.all([load("AAA"), load("AAA"), load("AAA"), load("BBB")], { concurrency: "unbounded" })
        return { refs, metrics: { ...(yield* ActorMetrics) } }
      }).pipe(Effect.provide(actorSettingsLayer({ dataRoot: root })))
      expect(first.metrics.loads).toBe(2)
      // the two other AAA groups awaited the load itself, not the claim in KV
      expect(first.metrics.sharedLoads).toBe(2)
      expect(first.metrics.waitedForOtherLoader).toBe(0)
      expect(first.refs[1]).toEqual(first.refs[0])
      expect(first.refs[2]).toEqual(first.refs[0])
      expect(first.refs[0].rows).toBeGreaterThan(500)
      expect(first.refs[3].key).not.toBe(first.refs[0].key)
      const { data } = yield* Bus
      expect((yield* Effect.promise(() => data.info(first.refs[0].key)))?.size).toBe(first.refs[0].bytes)

      // another process (its own state): the slice is reused from the object store, not loaded
      const second = yield* Effect.gen(function* () {
        const ref = yield* load("AAA")
        return { ref, metrics: { ...(yield* ActorMetrics) } }
      }).pipe(Effect.provide(actorSettingsLayer({ dataRoot: root })))
      expect(second.metrics.loads).toBe(0)
      expect(second.metrics.reused).toBe(1)
      expect(second.ref.key).toBe(first.refs[0].key)
    }).pipe(Effect.provide(Layer.fresh(busTestLayer())))
  )
})
