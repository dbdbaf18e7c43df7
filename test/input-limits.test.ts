/**
 * Hostile input on the bus: a 100,000-deep JSON parameter is answered (a `failed` result where
 * the sender listens, one dead letter, no retries), and dates from year 0001 are real dates.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { resolve } from "node:path"
import { publishRaw } from "../src/streams/bus.js"
import { Nats } from "../src/streams/connection.js"
import { STREAM, SUBJECT } from "../src/streams/topology.js"
import { REJECTION_BUCKET } from "../src/security/rejections.js"
import { ScenarioResult } from "../src/schemas/results.js"
import { isRealDate } from "../src/schemas/common.js"
import { IsoDate } from "../src/schemas/common.js"
import { systemTestLayer } from "./support/system.js"

const deep = (n: number) => `${"[".repeat(n)}1${"]".repeat(n)}`

const dlq = Effect.gen(function* () {
  const { js } = yield* Nats
  const c = yield* Effect.promise(() => js.consumers.get(STREAM.dlq, { filter_subjects: "tf.dlq.>" }))
  const out: Array<Record<string, unknown>> = []
  for (;;) {
    const m = yield* Effect.promise(() => c.next({ expires: 1_000 }))
    if (!m) return out
    out.push(m.json())
  }
})

describe("input limits", () => {
  it("year 0001 is a real date; 0001-02-29 is not", () => {
    expect(isRealDate("0001-01-01")).toBe(true)
    expect(isRealDate("0099-12-31")).toBe(true)
    expect(isRealDate("0001-02-29")).toBe(false)
    expect(isRealDate("0004-02-29")).toBe(true)
    expect(IsoDate.safeParse("0001-01-01").success).toBe(true)
  })

  it.scopedLive(
    "a submission with a 100,000-deep parameter is refused by its sequence, naming the field, once, with one dead letter and no result under the ids it names",
    () =>
      Effect.gen(function* () {
        const example = JSON.parse(readFileSync(resolve(__dirname, "..", "examples", "scenario.json"), "utf8")) as Record<string, unknown>
        const head = JSON.stringify({ ...example, batch_id: "deep1", scenario_id: "s_deep", params: {} }).replace('"params":{}', `"params":{"fast":${deep(100_000)}}`)
        const ack = yield* publishRaw(SUBJECT.submit, head, "submit:deep1")
        const { kvm, jsm } = yield* Nats
        const rejections = yield* Effect.promise(() => kvm.open(REJECTION_BUCKET))
        const deadline = Date.now() + 480_000
        let rejection: { reason?: string; batch_id?: string } | undefined
        while (!rejection && Date.now() < deadline) {
          const e = yield* Effect.promise(() => rejections.get(String(ack.seq)))
          if (e && e.length > 0) rejection = e.json()
          else yield* Effect.sleep("100 millis")
        }
        expect(rejection).toBeDefined()
        expect(rejection!.reason).toContain("params.fast")
        expect(rejection!.reason).toContain("nested deeper than 64 levels")
        // the reason does not echo the value
        expect(rejection!.reason!.length).toBeLessThan(1_000)
        const dead = yield* dlq
        expect(dead).toHaveLength(1)
        expect(dead[0]).toMatchObject({ stage: "coordinator", deliveries: 1 })
        expect((yield* Effect.promise(() => jsm.streams.info(STREAM.pipeline))).state.messages).toBe(0)
        // a refused submission writes nothing under the ids it names (they may be someone else's)
        const result = yield* Effect.promise(() => jsm.streams.getMessage(STREAM.results, { last_by_subj: SUBJECT.result("deep1", "s_deep") }).catch(() => null))
        expect(result).toBeNull()
      }).pipe(Effect.provide(systemTestLayer({ actors: ["coordinator", "reporter"] }))),
    600_000
  )

  it.scopedLive(
    "a group with a 100,000-deep field on an executor's subject: each readable scenario id gets a failed result",
    () =>
      Effect.gen(function* () {
        const group = {
          v: 1,
          batch_id: "deep2",
          group_id: "g1",
          slice: { universe: ["AAA"], freq: "1d", start_date: "2020-01-02", end_date: "2020-12-31", warmup_bars: 0 },
          base: { strategy: "trend_baseline", params: {}, strict: true, start_capital: 1000, costs: { commission_bps: 0, spread_w: 0, impact_w: 0, slippage_bps: 0 }, batch_seed: 0 },
          items: [{ id: "a" }, { id: "b" }],
          findings: []
        }
        const text = JSON.stringify(group).replace('"findings":[]', `"findings":${deep(100_000)}`)
        yield* publishRaw(SUBJECT.stage("exec", "deep2"), text, "deep2-g1")
        const { jsm: results } = yield* Nats
        for (const id of ["a", "b"]) {
          // the result on the scenario's own subject, once there is one
          const last = () => results.streams.getMessage(STREAM.results, { last_by_subj: SUBJECT.result("deep2", id) }).catch(() => null)
          let m = yield* Effect.promise(last)
          for (const deadline = Date.now() + 480_000; !m && Date.now() < deadline; m = yield* Effect.promise(last)) yield* Effect.sleep("200 millis")
          expect(m && ScenarioResult.parse(m.json())).toMatchObject({ status: "failed", phase: "execution" })
        }
        const { jsm } = yield* Nats
        const stored = yield* Effect.promise(() => jsm.streams.info(STREAM.results, { subjects_filter: SUBJECT.resultsOf("deep2") }))
        expect(stored.state.subjects).toEqual({ "tf.res.deep2.a": 1, "tf.res.deep2.b": 1 })
        expect((yield* dlq).filter((d) => d.stage === "executor")).toHaveLength(1)
      }).pipe(Effect.provide(systemTestLayer({ actors: ["executor", "reporter"] }))),
    600_000
  )
})
