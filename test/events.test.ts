/**
 * Telemetry while a batch runs: every phase announces its start and result per group, and a
 * long scenario streams `started`, `progress` and its equity curve in chunks before its result.
 * (That progress is reported every `progressEvery` rows is checked in the engine's tests:
 * test/engine/backtest.test.ts, "progress is reported every progressEvery rows and at the end".)
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { generateCatalog } from "../src/data/index.js"
import { publishRaw } from "../src/streams/bus.js"
import { Nats } from "../src/streams/connection.js"
import { STREAM, SUBJECT } from "../src/streams/topology.js"
import { PipelineEvent } from "../src/schemas/results.js"
import { systemTestLayer } from "./support/system.js"
import { readResults, waitForBatch } from "./support/results.js"

const readEvents = (batchId: string) =>
  Effect.gen(function* () {
    const { js } = yield* Nats
    const c = yield* Effect.promise(() => js.consumers.get(STREAM.events, { filter_subjects: `tf.evt.${batchId}.>` }))
    const out: Array<{ subject: string; event: PipelineEvent }> = []
    for (;;) {
      const m = yield* Effect.promise(() => c.next({ expires: 1_000 }))
      if (!m) return out
      // tf.evt.<batch>.batch carries the batch summary, not an event
      if (m.subject !== SUBJECT.batchEvent(batchId)) out.push({ subject: m.subject, event: PipelineEvent.parse(m.json()) })
    }
  })

describe("telemetry events", () => {
  it.scopedLive(
    "phases emit phase_start/phase_result per group; a long tick scenario streams started, then progress (done rising to its row count), then equity chunks",
    () => {
      const root = mkdtempSync(join(tmpdir(), "tf-events-"))
      return Effect.gen(function* () {
        yield* generateCatalog({ root, symbols: ["TCK"], freqs: ["tick"], start: "2021-03-01", end: "2021-03-12", seed: 21, ticksPerMinute: 60 })
        const config = {
          batch_name: "events",
          defaults: { strategy: "trend_baseline", freq: "tick", start_date: "2021-03-01", end_date: "2021-03-12", universe: ["TCK"], start_capital: 10_000 },
          runs: [{ id: "long_tick_run", params: { fast: 50, slow: 400 } }]
        }
        yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: "ev1", config }), "submit:ev1")
        const rec = yield* waitForBatch("ev1")
        expect(rec.counts).toEqual({ success: 1, skipped: 0, failed: 0 })
        const events = yield* readEvents("ev1")

        const phases = events.filter((e) => e.subject.endsWith(".phase"))
        for (const phase of ["availability", "requirements", "loading", "quality", "execution"]) {
          expect(phases.filter((e) => e.event.phase === phase).map((e) => e.event.kind).sort()).toEqual(["phase_result", "phase_start"])
        }
        const result = phases.find((e) => e.event.phase === "execution" && e.event.kind === "phase_result")!
        expect(result.event.data).toMatchObject({ in: 1, pass: 1, skipped: 0, failed: 0 })

        const own = events.filter((e) => e.subject.startsWith("tf.evt.ev1.long_tick_run."))
        const kinds = own.map((e) => e.event.kind)
        expect(kinds[0]).toBe("started")
        const rows = (own[0].event.data as { rows: number }).rows
        expect(rows).toBeGreaterThan(100_000)
        // Order: started, progress..., equity... (the executor emits progress at most every
        // 500 ms of a run, so how many depends on the machine; their content does not).
        const firstEquity = kinds.indexOf("equity")
        expect(kinds.slice(1, firstEquity).every((k) => k === "progress")).toBe(true)
        expect(kinds.slice(firstEquity).every((k) => k === "equity")).toBe(true)
        const progress = own.filter((e) => e.event.kind === "progress").map((e) => e.event.data as { done: number; total: number })
        for (const [i, p] of progress.entries()) {
          expect(p.total).toBe(rows)
          expect(p.done).toBeGreaterThan(0)
          expect(p.done).toBeLessThanOrEqual(rows)
          if (i > 0) expect(p.done).toBeGreaterThan(progress[i - 1].done)
        }
        const chunks = own.filter((e) => e.event.kind === "equity").map((e) => e.event.data as { chunk: number; of: number; ts: number[]; nav: number[] })
        expect(chunks.length).toBeGreaterThan(0)
        expect(chunks.map((c) => c.chunk)).toEqual(chunks.map((_, i) => i))
        const points = chunks.reduce((n, c) => n + c.ts.length, 0)
        const [res] = yield* readResults("ev1")
        // the streamed curve is finer than the result's and ends at the same NAV
        expect(points).toBeGreaterThan(res.equity!.ts.length)
        expect(chunks.at(-1)!.nav.at(-1)).toBe(res.equity!.nav.at(-1))
        expect(res.equity!.ts.length).toBeLessThanOrEqual(120)
      }).pipe(
        Effect.provide(systemTestLayer({ settings: { dataRoot: root } })),
        Effect.ensuring(Effect.sync(() => rmSync(root, { recursive: true, force: true })))
      )
    },
    600_000
  )
})
