/** Test support: reading what a batch left on the bus. */
import { Effect } from "effect"
import { Bus, kvGet } from "../../src/streams/bus.js"
import { Nats } from "../../src/streams/connection.js"
import { STREAM, SUBJECT } from "../../src/streams/topology.js"
import { BatchRecord, ScenarioResult } from "../../src/schemas/results.js"

/** Every result stored for a batch, replayed with an ordered consumer. */
export const readResults = (batchId: string) =>
  Effect.gen(function* () {
    const { js } = yield* Nats
    const c = yield* Effect.promise(() => js.consumers.get(STREAM.results, { filter_subjects: SUBJECT.resultsOf(batchId) }))
    const out: ScenarioResult[] = []
    for (;;) {
      const m = yield* Effect.promise(() => c.next({ expires: 1_000 }))
      if (!m) return out
      out.push(ScenarioResult.parse(m.json()))
    }
  })

/** Messages stored per result subject: exactly one each means nothing was duplicated. */
export const storedResultCounts = (batchId: string) =>
  Effect.gen(function* () {
    const { jsm } = yield* Nats
    const info = yield* Effect.promise(() => jsm.streams.info(STREAM.results, { subjects_filter: SUBJECT.resultsOf(batchId) }))
    return (info.state.subjects ?? {}) as Record<string, number>
  })

/** The batch record once the reporter marks the batch done or failed. */
export const waitForBatch = (batchId: string, timeoutMs = 480_000) =>
  Effect.gen(function* () {
    const bus = yield* Bus
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const rec = yield* kvGet(bus.batches, batchId, BatchRecord)
      if (rec && (rec.value.status === "done" || rec.value.status === "failed")) return rec.value
      if (Date.now() > deadline) return yield* Effect.die(new Error(`batch ${batchId} not finished after ${timeoutMs} ms: ${JSON.stringify(rec?.value)}`))
      yield* Effect.sleep("100 millis")
    }
  })

/**
 * The batch record once `settled` holds of it (phase counters arrive as their own events and
 * may land just after the last result made the batch done), or a clear failure at the deadline.
 */
export const waitForRecord = (batchId: string, settled: (r: BatchRecord) => boolean, timeoutMs = 30_000) =>
  Effect.gen(function* () {
    const bus = yield* Bus
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const rec = yield* kvGet(bus.batches, batchId, BatchRecord)
      if (rec && settled(rec.value)) return rec.value
      if (Date.now() > deadline) return yield* Effect.die(new Error(`batch ${batchId} record did not settle in ${timeoutMs} ms: ${JSON.stringify(rec?.value)}`))
      yield* Effect.sleep("100 millis")
    }
  })
