/**
 * Result summaries (src/actors/summaries.ts): the reporter folds one summary per bulk of
 * results instead of every result. On a real nats-server: a summary says exactly what the
 * stored results say (a duplicate's entry is left out: its stored original may say something
 * else), what is not a summary is passed over, and a result whose summary never went out is
 * still counted, because the reporter replays the results of a batch gone quiet before done.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { publishResults, resultFor, resultMessages } from "../src/actors/common.js"
import { type BatchFold, foldMessage, phasesAccountForAll, recordOf } from "../src/actors/reporter.js"
import { readSummary } from "../src/actors/summaries.js"
import { mulberry32 } from "../src/engine/index.js"
import { Scenario } from "../src/schemas/batch.js"
import type { ScenarioResult } from "../src/schemas/results.js"
import { publishManyTrusted, publishRaw } from "../src/streams/bus.js"
import { replayAll } from "../src/streams/replay.js"
import { SUBJECT } from "../src/streams/topology.js"
import { WIRE_VERSION } from "../src/schemas/common.js"
import { busTestLayer } from "./support/nats.js"
import { systemTestLayer } from "./support/system.js"
import { waitForBatch, waitForRecord } from "./support/results.js"

const scenario = (batch: string, id: string) =>
  Scenario.parse({ batch_id: batch, scenario_id: id, strategy: "sma_cross", freq: "1d", start_date: "2020-01-01", end_date: "2020-12-31", universe: ["AAA"], start_capital: 1_000 })

const randomResult = (rnd: () => number, batch: string, id: string): ScenarioResult => {
  const s = scenario(batch, id)
  const x = rnd()
  if (x < 0.15) return { ...resultFor(s, "skipped"), phase: "requirements", reason: `fast must be < slow (${Math.floor(rnd() * 100)})` }
  if (x < 0.25) return { ...resultFor(s, "failed"), phase: rnd() < 0.5 ? "loading" : "execution", reason: "x".repeat(Math.floor(rnd() * 900)) }
  return { ...resultFor(s, "success"), metrics: { sharpe: rnd() < 0.1 ? null : (rnd() - 0.3) * 3, total_return: rnd() } as ScenarioResult["metrics"] }
}

const submission = (batch: string, total: number) => ({
  subject: SUBJECT.event(batch, "sub-1", "phase"),
  value: { v: WIRE_VERSION, batch_id: batch, subject_id: "sub-1", kind: "phase_result", phase: "submission", at: new Date().toISOString(), data: { in: total, pass: total, skipped: 0, failed: 0, total, groups: 1 } },
  msgId: `${batch}:sub-1:submission:result`
})

describe("result summaries", () => {
  it.scopedLive("a summary says what the stored results say; a duplicate's entry is left out", () =>
    Effect.gen(function* () {
      const rnd = mulberry32(42)
      const batches = ["SA", "SB"]
      const first = batches.flatMap((b) => Array.from({ length: 150 }, (_, i) => randomResult(rnd, b, `s${i}`)))
      // in bulks of various sizes, both batches mixed in one bulk
      for (let i = 0; i < first.length; ) {
        const n = 1 + Math.floor(rnd() * 40)
        yield* publishResults(first.slice(i, i + n))
        i += n
      }
      // the same scenarios again, saying something else: duplicates (same msg-ids), not stored
      yield* publishResults(first.slice(0, 60).map((r) => ({ ...r, status: "failed" as const, phase: "execution" as const, reason: "a second opinion" })))
      // a later submission of some of them: new results, newer than the first
      const later = first.slice(100, 130).map((r) => randomResult(rnd, r.batch_id, r.scenario_id))
      yield* publishResults(later, "2")

      for (const b of batches) {
        const results = yield* replayAll(SUBJECT.resultsOf(b), { lastPerSubject: true })
        const summaries = yield* replayAll(SUBJECT.resultSummary(b, "*"))
        expect(results.length).toBe(150)
        const byResults = new Map<string, BatchFold>()
        const bySummaries = new Map<string, BatchFold>()
        for (const m of results) foldMessage(byResults, m, true)
        for (const m of summaries) foldMessage(bySummaries, m, true)
        const a = byResults.get(b)!
        const z = bySummaries.get(b)!
        expect(z.scenarios.size).toBe(150)
        expect(Object.fromEntries(z.scenarios)).toEqual(Object.fromEntries(a.scenarios))
        const { updated_at: _u1, created_at: _c1, ...ra } = recordOf(a, undefined)
        const { updated_at: _u2, created_at: _c2, ...rz } = recordOf(z, undefined)
        expect(rz).toEqual(ra)
        // every entry names a stored result: as many entries as new results, none for duplicates
        const entries = summaries.flatMap((m) => readSummary(m)?.entries ?? [])
        expect(entries.length).toBe(150 + later.filter((r) => r.batch_id === b).length)
        expect(entries.some((e) => e.reason === "a second opinion")).toBe(false)
      }
    }).pipe(Effect.provide(Layer.fresh(busTestLayer())))
  )

  it.scopedLive("what is not a summary is passed over", () =>
    Effect.gen(function* () {
      const subject = SUBJECT.resultSummary("SX", "rbad")
      const bad = [
        "not json",
        JSON.stringify({ kind: "results", batch_id: "SY", data: { entries: [{ id: "a", seq: 1, status: "success" }] } }), // another batch than its subject
        JSON.stringify({ kind: "phase_result", batch_id: "SX", data: { entries: [] } }),
        JSON.stringify({ kind: "results", batch_id: "SX", data: { entries: "none" } })
      ]
      for (const [i, text] of bad.entries()) yield* publishRaw(subject, text, `bad-${i}`)
      yield* publishRaw(
        subject,
        JSON.stringify({
          kind: "results",
          batch_id: "SX",
          data: {
            entries: [{ id: "ok", seq: 7, status: "success", sharpe: 1.5 }, { id: "neg", seq: -1, status: "success" }, { id: "st", seq: 3, status: "maybe" }, null, { id: "r", seq: 4, status: "failed", reason: "y".repeat(2_000) }]
          }
        }),
        "mixed"
      )
      const read = (yield* replayAll(subject)).map(readSummary)
      expect(read.slice(0, 4)).toEqual([undefined, undefined, undefined, undefined])
      expect(read[4]!.entries.map((e) => e.id)).toEqual(["ok", "r"])
      expect(read[4]!.entries[1]!.reason!.length).toBe(500)
    }).pipe(Effect.provide(Layer.fresh(busTestLayer())))
  )

  it.scopedLive("a result whose summary never went out is counted once the batch goes quiet", () =>
    Effect.gen(function* () {
      const batch = "quiet1"
      yield* publishManyTrusted([submission(batch, 3)])
      const summarised = [0, 1].map((i) => ({ ...resultFor(scenario(batch, `s${i}`), "success"), metrics: { sharpe: i } as ScenarioResult["metrics"] }))
      yield* publishResults(summarised)
      // the reporter knows the batch (a batch new to it is read from its results at once)
      yield* waitForRecord(batch, (r) => r.counts.success === 2)
      // a publisher that died between its result and the summary: the result alone
      const t0 = Date.now()
      yield* publishManyTrusted(resultMessages([{ ...resultFor(scenario(batch, "s2"), "success"), metrics: { sharpe: 5 } as ScenarioResult["metrics"] }]))
      const rec = yield* waitForBatch(batch, 30_000)
      expect(rec.status).toBe("done")
      expect(rec.counts).toEqual({ success: 3, skipped: 0, failed: 0 })
      expect(rec.best).toEqual({ scenario_id: "s2", metric: "sharpe", value: 5 })
      // counted by the replay of a quiet batch, not at once
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1_500)
    }).pipe(Effect.provide(Layer.fresh(systemTestLayer({ actors: ["reporter"] }))))
  )

  it.scopedLive("phase events account for every scenario only when each ended in some phase or passed execution (the reporter then replays after 250 ms, not the quiet time)", () =>
    Effect.gen(function* () {
      const phase = (batch: string, group: string, name: string, counts: Record<string, number>, data: Record<string, unknown> = {}) => ({
        subject: SUBJECT.event(batch, group, "phase"),
        value: { v: WIRE_VERSION, batch_id: batch, subject_id: group, kind: "phase_result", phase: name, at: new Date().toISOString(), data: { ...counts, ...data } },
        msgId: `${batch}:${group}:${name}:result`
      })
      const foldOf = (batch: string) =>
        Effect.gen(function* () {
          const folds = new Map<string, BatchFold>()
          for (const m of [...(yield* replayAll(SUBJECT.phaseEventsOf(batch))), ...(yield* replayAll(SUBJECT.resultsOf(batch)))]) foldMessage(folds, m, true)
          return folds.get(batch)!
        })
      const n = (inn: number, pass: number, skipped = 0, failed = 0) => ({ in: inn, pass, skipped, failed })
      // three scenarios: two through execution, one skipped by quality; one result stored
      yield* publishManyTrusted([submission("acc1", 3), phase("acc1", "g1", "quality", n(3, 2, 1)), phase("acc1", "g1-e0", "execution", n(2, 2))])
      yield* publishManyTrusted(resultMessages([resultFor(scenario("acc1", "s0"), "success")]))
      expect(phasesAccountForAll(yield* foldOf("acc1"))).toBe(true)
      // every result in: nothing to wait for
      yield* publishManyTrusted(resultMessages(["s1", "s2"].map((id) => resultFor(scenario("acc1", id), "success"))))
      expect(phasesAccountForAll(yield* foldOf("acc1"))).toBe(false)
      // execution has not said it for every scenario yet
      yield* publishManyTrusted([submission("acc2", 3), phase("acc2", "g1-e0", "execution", n(2, 2))])
      expect(phasesAccountForAll(yield* foldOf("acc2"))).toBe(false)
      // answered from the cache in requirements (never executed): the phases do not account for it
      yield* publishManyTrusted([submission("acc3", 2), phase("acc3", "g1", "requirements", n(2, 2), { cached: 2 })])
      expect(phasesAccountForAll(yield* foldOf("acc3"))).toBe(false)
    }).pipe(Effect.provide(busTestLayer()))
  )
})
