/**
 * Phase 7, summary: the reporter follows every result (`tf.res.>`) and keeps, per batch, the
 * counts and per-scenario status in KV (`tf_batches`, `tf_runs`); it publishes the summary on
 * `tf.evt.<batch>.batch` as it changes, and marks the batch done when every scenario has its
 * result. Results are handled in bulk (one batch-record update per flush, not per result).
 *
 * Also here: the dead-letter watcher for messages the server gave up on (max_deliver reached
 * while their process kept dying): their scenarios get `failed` results; the message moves to
 * `tf.dlq.<stage>` and leaves the work queue.
 */
import { Chunk, Deferred, Duration, Effect, Either, Schedule, Stream } from "effect"
import type { Msg } from "@nats-io/transport-node"
import { WIRE_VERSION } from "../schemas/common.js"
import { BatchRecord, RunStatus, ScenarioResult, type Phase, type ResultStatus } from "../schemas/results.js"
import { GroupOnWire } from "../schemas/wire.js"
import { Nats } from "../streams/connection.js"
import { Bus, consume, decodeMessage, kvCreate, kvModify, kvUpdate, publish, publishRaw, type Delivery } from "../streams/bus.js"
import { BusError } from "../streams/errors.js"
import { REPORTER_CONSUMER, STREAM, SUBJECT } from "../streams/topology.js"
import { missingBatchRecord, Shutdown, stopGroup } from "./common.js"

const now = () => new Date().toISOString()
const CONSUMER_PHASE: Record<string, Phase> = {
  coordinator: "submission",
  availability: "availability",
  requirements: "requirements",
  loader: "loading",
  quality: "quality",
  executor: "execution"
}
const FINAL = new Set(["success", "skipped", "failed"])

/** Set the scenario's final status once; false when it already had one (a duplicate result). */
const markFinal = (r: ScenarioResult) =>
  Effect.gen(function* () {
    const bus = yield* Bus
    const status: RunStatus = {
      v: WIRE_VERSION,
      batch_id: r.batch_id,
      scenario_id: r.scenario_id,
      status: r.status,
      ...(r.phase ? { phase: r.phase } : {}),
      ...(r.reason ? { reason: r.reason.slice(0, 2000) } : {}),
      updated_at: now()
    }
    const key = `${r.batch_id}.${r.scenario_id}`
    // Usually the key does not exist yet: one round trip. If it does (a duplicate result, or an
    // ad-hoc scenario's `queued` entry), read it and move it to final only once.
    if (yield* kvCreate(bus.runs, key, status)) return true
    const written = yield* kvModify(bus.runs, key, RunStatus, (cur) => (cur && FINAL.has(cur.status) ? undefined : status))
    return written !== undefined
  })

interface BatchDelta {
  success: number
  skipped: number
  failed: number
  loadingFailures: number
  /** results that came out of the execution phase (executors do not write batch records) */
  execution: { in: number; pass: number; skipped: number; failed: number }
  best?: { scenario_id: string; value: number }
}

const applyDeltas = (batchId: string, d: BatchDelta) =>
  Effect.gen(function* () {
    const bus = yield* Bus
    const rec = yield* kvUpdate(bus.batches, batchId, BatchRecord, (cur) => {
      const r = cur ?? missingBatchRecord(batchId)
      const counts = { success: r.counts.success + d.success, skipped: r.counts.skipped + d.skipped, failed: r.counts.failed + d.failed }
      const done = counts.success + counts.skipped + counts.failed
      let best = r.best
      if (d.best && (!best || d.best.value > best.value)) best = { scenario_id: d.best.scenario_id, metric: "sharpe", value: d.best.value }
      const exec = r.phases.execution ?? { in: 0, pass: 0, skipped: 0, failed: 0 }
      const phases = d.execution.in === 0 ? r.phases : {
        ...r.phases,
        execution: { in: exec.in + d.execution.in, pass: exec.pass + d.execution.pass, skipped: exec.skipped + d.execution.skipped, failed: exec.failed + d.execution.failed }
      }
      const next: BatchRecord = { ...r, counts, phases, updated_at: now(), ...(best ? { best } : {}) }
      if (r.status !== "failed") next.status = "running"
      if (r.total > 0 && done >= r.total && r.status !== "done") {
        // Batch-level failures: the catalog was unreadable, or no scenario could be loaded.
        const noneLoadable = counts.success === 0 && counts.failed > 0 && (r.phases.loading?.failed ?? 0) + d.loadingFailures >= counts.failed
        next.status = r.error || noneLoadable ? "failed" : "done"
        if (noneLoadable && !r.error) next.error = "no scenario could be loaded"
        next.finished_at = now()
      }
      return next
    })
    const done = rec.counts.success + rec.counts.skipped + rec.counts.failed
    yield* publish(SUBJECT.batchEvent(batchId), BatchRecord, rec, { msgId: `batch:${batchId}:${done}:${rec.status}` })
    if (rec.finished_at && (rec.status === "done" || rec.status === "failed"))
      yield* Effect.logInfo(`Phase 7: batch ${rec.status}: ${rec.counts.success} success, ${rec.counts.skipped} skipped, ${rec.counts.failed} failed`).pipe(
        Effect.annotateLogs({ batch_id: batchId, phase: "summary", ...rec.counts, total: rec.total })
      )
    return rec
  })

const handleChunk = (chunk: ReadonlyArray<Delivery<ScenarioResult>>) =>
  Effect.gen(function* () {
    const deltas = new Map<string, BatchDelta>()
    const good: Array<{ d: Delivery<ScenarioResult>; r: ScenarioResult }> = []
    for (const d of chunk) {
      if (Either.isLeft(d.decoded)) {
        yield* Effect.logError("result message is not valid; ignored").pipe(Effect.annotateLogs({ subject: d.subject, problems: d.decoded.left.problems }))
        yield* d.term
      } else good.push({ d, r: d.decoded.right })
    }
    const fresh = yield* Effect.forEach(good, ({ r }) => markFinal(r), { concurrency: 64 })
    good.forEach(({ r }, i) => {
      if (!fresh[i]) return
      const delta = deltas.get(r.batch_id) ?? { success: 0, skipped: 0, failed: 0, loadingFailures: 0, execution: { in: 0, pass: 0, skipped: 0, failed: 0 } }
      delta[r.status as ResultStatus]++
      if (r.status === "success" || r.phase === "execution") {
        delta.execution.in++
        delta.execution[r.status === "success" ? "pass" : (r.status as "skipped" | "failed")]++
      }
      if (r.status === "failed" && r.phase === "loading") delta.loadingFailures++
      const sharpe = r.metrics?.sharpe
      if (typeof sharpe === "number" && (!delta.best || sharpe > delta.best.value)) delta.best = { scenario_id: r.scenario_id, value: sharpe }
      deltas.set(r.batch_id, delta)
    })
    yield* Effect.forEach(deltas, ([batchId, delta]) => applyDeltas(batchId, delta), { concurrency: 8, discard: true })
    // Acked only after the counts are stored: a crash before this replays the chunk, and
    // markFinal keeps the replay from counting twice — so a lost ack costs nothing and the
    // acks need not wait for the server's confirmation.
    yield* Effect.forEach(good, ({ d }) => d.ackNoWait, { discard: true })
  })

export const reporterActor = Effect.gen(function* () {
  const shutdown = yield* Shutdown
  yield* Effect.logInfo("reporter actor consuming reporter")
  yield* consume(REPORTER_CONSUMER.name, ScenarioResult, { stream: STREAM.results, maxMessages: 2_000 }).pipe(
    Stream.interruptWhen(Deferred.await(shutdown)),
    Stream.groupedWithin(2_000, Duration.millis(100)),
    Stream.mapEffect((c) => handleChunk(Chunk.toReadonlyArray(c))),
    Stream.runDrain,
    Effect.tapError((e) => Effect.logError("reporter failed; restarting", e)),
    Effect.retry(Schedule.exponential(Duration.millis(200)).pipe(Schedule.union(Schedule.spaced(Duration.seconds(5)))))
  )
}).pipe(Effect.annotateLogs({ actor: "reporter" }))

/**
 * Messages that reached max_deliver without an ack (their process died each time) stay in the
 * work queue on 2.9 (NATS.md): we answer for their scenarios, dead-letter and delete them.
 */
export const deadLetterWatcher = Effect.gen(function* () {
  const { nc, jsm } = yield* Nats
  const shutdown = yield* Shutdown
  const advisories = Stream.asyncScoped<Msg, BusError>((emit) =>
    Effect.acquireRelease(
      Effect.sync(() =>
        nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${STREAM.pipeline}.*`, {
          callback: (err, m) => {
            if (err) void emit.fail(new BusError({ op: "advisory subscription", cause: err, transient: true }))
            else void emit.single(m)
          }
        })
      ),
      (sub) => Effect.sync(() => sub.unsubscribe())
    )
  )
  yield* Effect.logInfo("dead-letter watcher listening for max-deliveries advisories")
  yield* advisories.pipe(
    Stream.interruptWhen(Deferred.await(shutdown)),
    Stream.mapEffect((m) =>
      Effect.gen(function* () {
        const adv = m.json<{ stream_seq: number; consumer: string; deliveries: number }>()
        const stored = yield* Effect.tryPromise(() => jsm.streams.getMessage(STREAM.pipeline, { seq: adv.stream_seq })).pipe(
          Effect.orElseSucceed(() => null)
        )
        if (!stored) return
        const decoded = decodeMessage(GroupOnWire, stored.subject, stored.data)
        const reason = `the ${adv.consumer} stage gave up after ${adv.deliveries} deliveries (its process died or timed out each time)`
        if (Either.isRight(decoded)) yield* stopGroup(decoded.right, decoded.right.items, "failed", CONSUMER_PHASE[adv.consumer] ?? "execution", reason)
        yield* publishRaw(
          SUBJECT.dlq(adv.consumer),
          JSON.stringify({ stage: adv.consumer, subject: stored.subject, stream_seq: adv.stream_seq, deliveries: adv.deliveries, reason, at: now(), payload: new TextDecoder().decode(stored.data) }),
          `dlq:${adv.consumer}:${adv.stream_seq}`
        )
        yield* Effect.tryPromise(() => jsm.streams.deleteMessage(STREAM.pipeline, adv.stream_seq)).pipe(Effect.ignore)
        yield* Effect.logError(`dead-lettered: ${reason}`).pipe(Effect.annotateLogs({ subject: stored.subject, stream_seq: adv.stream_seq }))
      }).pipe(Effect.catchAllCause((c) => Effect.logError("dead-letter handling failed", c)))
    ),
    Stream.runDrain
  )
})
