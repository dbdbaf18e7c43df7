/**
 * Faults on a real nats-server: poison messages, handlers that keep failing, and messages whose
 * consumers keep dying. In each case the work is answered for (a `failed` result) and recorded
 * in the dead-letter stream; nothing stays stuck in the work queue.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { publishRaw } from "../src/streams/bus.js"
import { publishGroup } from "../src/actors/common.js"
import { Nats } from "../src/streams/connection.js"
import { STREAM, SUBJECT } from "../src/streams/topology.js"
import type { GroupMessage as GroupMessageT } from "../src/schemas/wire.js"
import { ScenarioResult } from "../src/schemas/results.js"
import { systemTestLayer } from "./support/system.js"

const group = (batch: string): GroupMessageT => ({
  v: 1,
  batch_id: batch,
  group_id: "g1",
  slice: { universe: ["AAA"], freq: "1d", start_date: "2020-01-02", end_date: "2020-12-31", warmup_bars: 0 },
  items: [
    {
      scenario: {
        v: 1,
        batch_id: batch,
        scenario_id: "s1",
        strategy: "trend_baseline",
        params: {},
        strict: true,
        freq: "1d",
        start_date: "2020-01-02",
        end_date: "2020-12-31",
        universe: ["AAA"],
        start_capital: 1000,
        costs: { commission_bps: 0, spread_w: 0, impact_w: 0, slippage_bps: 0 },
        batch_seed: 0
      },
      warnings: []
    }
  ],
  // a slice that is not in the object store: fetching it fails every time
  slices: [{ symbol: "AAA", key: "missing-slice", rows: 10, warmup_rows: 0, resampled_from_ticks: false, bytes: 10 }],
  findings: []
})

const dlqMessages = (stage: string) =>
  Effect.gen(function* () {
    const { js } = yield* Nats
    const c = yield* Effect.promise(() => js.consumers.get(STREAM.dlq, { filter_subjects: SUBJECT.dlq(stage) }))
    const out: Array<Record<string, unknown>> = []
    for (;;) {
      const m = yield* Effect.promise(() => c.next({ expires: 1_000 }))
      if (!m) return out
      out.push(m.json())
    }
  })

/** The scenario's result as stored on its subject, once there is one (generous: loaded machines). */
const waitForResult = (batch: string, scenario: string, timeoutMs = 480_000) =>
  Effect.gen(function* () {
    const { jsm } = yield* Nats
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const m = yield* Effect.promise(() => jsm.streams.getMessage(STREAM.results, { last_by_subj: SUBJECT.result(batch, scenario) }).catch(() => null))
      if (m) return ScenarioResult.parse(m.json())
      if (Date.now() > deadline) throw new Error(`no result for ${batch}.${scenario} in ${timeoutMs} ms`)
      yield* Effect.sleep("100 millis")
    }
  })

const pipelineMessages = Effect.gen(function* () {
  const { jsm } = yield* Nats
  return (yield* Effect.promise(() => jsm.streams.info(STREAM.pipeline))).state.messages
})

describe("faults", () => {
  it.scopedLive(
    "a poison message is termed and dead-lettered, the actor goes on",
    () =>
      Effect.gen(function* () {
        yield* publishRaw(SUBJECT.stage("exec", "p1"), "this is not JSON", "poison-1")
        yield* publishRaw(SUBJECT.stage("exec", "p1"), JSON.stringify({ v: 1, batch_id: "p1" }), "poison-2")
        let dead: Array<Record<string, unknown>> = []
        for (const deadline = Date.now() + 480_000; dead.length < 2 && Date.now() < deadline; ) {
          yield* Effect.sleep("100 millis")
          dead = yield* dlqMessages("executor")
        }
        expect(dead).toHaveLength(2)
        expect(dead[0]).toMatchObject({ stage: "executor", subject: "tf.scn.exec.p1", payload: "this is not JSON" })
        expect(String(dead[0].reason)).toContain("not JSON")
        expect(String(dead[1].reason)).toContain("group_id: is required")
        expect(yield* pipelineMessages).toBe(0)
      }).pipe(Effect.provide(systemTestLayer({ actors: ["executor"] }))),
    600_000
  )

  it.scopedLive(
    "a handler that keeps failing is retried with backoff, then its scenarios fail and it is dead-lettered",
    () =>
      Effect.gen(function* () {
        yield* publishGroup("exec", group("t1"))
        const st = yield* waitForResult("t1", "s1")
        expect(st).toMatchObject({ status: "failed", phase: "execution" })
        expect(st.reason).toContain("gave up after repeated failures")
        expect(st.reason).toContain("slice is not in the object store")
        const dead = yield* dlqMessages("executor")
        expect(dead).toHaveLength(1)
        expect(dead[0]).toMatchObject({ stage: "executor", deliveries: 3 })
        expect(yield* pipelineMessages).toBe(0)
      }).pipe(
        Effect.provide(
          systemTestLayer({ actors: ["executor", "reporter"], settings: { maxDeliver: 3 }, topology: { maxDeliver: 3 } })
        )
      ),
    600_000
  )

  it.scopedLive(
    "a message whose consumer dies on every delivery is answered for after max_deliver (advisory)",
    () =>
      Effect.gen(function* () {
        const { js } = yield* Nats
        yield* publishGroup("exec", group("d1"))
        // Play an executor that takes the message and dies before acking, twice.
        const consumer = yield* Effect.promise(() => js.consumers.get(STREAM.pipeline, "executor"))
        for (let delivery = 1; delivery <= 2; delivery++) {
          const m = yield* Effect.promise(() => consumer.next({ expires: 60_000 }))
          expect(m?.info.deliveryCount).toBe(delivery)
        }
        // A surviving executor keeps pulling: the server does not deliver a third time, it emits
        // the max-deliveries advisory instead (only when someone pulls: measured on 2.9.10).
        const third = yield* Effect.promise(() => consumer.next({ expires: 3_000 }))
        expect(third).toBeNull()
        const st = yield* waitForResult("d1", "s1")
        expect(st).toMatchObject({ status: "failed", phase: "execution" })
        expect(st.reason).toContain("gave up after 2 deliveries")
        const dead = yield* dlqMessages("executor")
        expect(dead).toHaveLength(1)
        expect(yield* pipelineMessages).toBe(0)
        const { jsm } = yield* Nats
        const results = yield* Effect.promise(() => jsm.streams.info(STREAM.results, { subjects_filter: "tf.res.d1.>" }))
        expect(results.state.subjects).toEqual({ "tf.res.d1.s1": 1 })
      }).pipe(
        Effect.provide(
          systemTestLayer({ actors: ["reporter"], settings: { maxDeliver: 2, ackWaitMs: 1_000 }, topology: { maxDeliver: 2, ackWaitMs: 1_000 } })
        )
      ),
    600_000
  )
})
