/**
 * The result cache's own round trip on a real nats-server: what an execution chunk stores (from
 * the JSON texts its results went out as) is what the requirements phase finds by result key;
 * entries of a wrong shape are passed over, never answered from.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { lookupCached, storeCached } from "../src/actors/cache.js"
import { resultFor } from "../src/actors/common.js"
import { Bus } from "../src/streams/bus.js"
import { Nats } from "../src/streams/connection.js"
import { BUCKET } from "../src/streams/topology.js"
import { Scenario } from "../src/schemas/batch.js"
import type { ScenarioResult } from "../src/schemas/results.js"
import { busTestLayer } from "./support/nats.js"

const SLICE = "0123456789abcdef0123456789abcdef"

const success = (id: string, key: string): ScenarioResult => ({
  ...resultFor(
    Scenario.parse({ batch_id: "B1", scenario_id: id, strategy: "sma_cross", freq: "1d", start_date: "2020-01-01", end_date: "2020-12-31", universe: ["AAA"], start_capital: 1_000 }),
    "success"
  ),
  metrics: { sharpe: 1.25, total_return: 0.1 } as ScenarioResult["metrics"],
  result_key: `${SLICE}${key}`,
  cached: false,
  timings: { exec_ms: 1.5 }
})

describe("result cache", () => {
  it.scopedLive("stores a chunk's successes from their published JSON and finds them by key; ignores failures, cached answers and wrong shapes", () =>
    Effect.gen(function* () {
      const a = success("a", "k1")
      const b = success("b", "k2")
      const failed: ScenarioResult = { ...success("c", "k3"), status: "failed", reason: "x" }
      const again: ScenarioResult = { ...success("d", "k4"), cached: true }
      yield* storeCached(
        SLICE,
        "B1",
        "g1",
        [a, b, failed, again].map((r) => ({ result: r, payload: new TextEncoder().encode(JSON.stringify({ ...r, submission: "7" })) }))
      )
      const { cache } = yield* Bus
      // entries another writer could have left: each is passed over, the good one in the same entry kept
      const wrong = [
        { ...a, v: 99, result_key: `${SLICE}w1` },
        { ...a, metrics: undefined, result_key: `${SLICE}w2` },
        { ...a, status: "skipped", result_key: `${SLICE}w3` },
        "not an object",
        { ...a, warnings: "none", result_key: `${SLICE}w5` }
      ]
      const good = success("e", "k5")
      yield* Effect.promise(() =>
        cache.put(
          `${SLICE}.B2.g9`,
          JSON.stringify({ v: 1, results: { ...Object.fromEntries(wrong.map((w, i) => [`${SLICE}w${i + 1}`, w])), [`${SLICE}k5`]: good } })
        )
      )
      yield* Effect.promise(() => cache.put(`${SLICE}.B3.g1`, "{not json"))

      const found = yield* lookupCached(SLICE)
      expect([...found.keys()].sort()).toEqual([`${SLICE}k1`, `${SLICE}k2`, `${SLICE}k5`])
      expect(found.get(`${SLICE}k1`)).toEqual({ ...a, submission: "7" })
      expect(found.get(`${SLICE}k5`)!.scenario_id).toBe("e")
      // a key removed from the bucket is no answer
      yield* Effect.promise(() => cache.delete(`${SLICE}.B2.g9`))
      expect([...(yield* lookupCached(SLICE)).keys()].sort()).toEqual([`${SLICE}k1`, `${SLICE}k2`])
    }).pipe(Effect.provide(busTestLayer()))
  )

  it.scopedLive("a lookup, hit or miss, leaves no consumer on the bucket's stream", () =>
    Effect.gen(function* () {
      const { jsm } = yield* Nats
      yield* storeCached(SLICE, "B1", "g1", [success("a", "k1")].map((r) => ({ result: r, payload: new TextEncoder().encode(JSON.stringify(r)) })))
      expect((yield* lookupCached(SLICE)).size).toBe(1)
      for (let i = 0; i < 5; i++) expect((yield* lookupCached(`${i}`.repeat(32))).size).toBe(0)
      const consumers = yield* Effect.promise(() => jsm.consumers.list(`KV_${BUCKET.cache}`).next())
      expect(consumers.map((c) => c.name)).toEqual([])
    }).pipe(Effect.provide(busTestLayer()))
  )
})
