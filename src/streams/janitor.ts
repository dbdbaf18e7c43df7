/**
 * The work-queue janitor. After nats-server is killed (SIGKILL, power loss), a message whose ack
 * the server had taken can come back: the consumer's state (its ack floor) reached the disk, the
 * stream's removal of the message did not. No consumer will deliver it again (it is below the
 * floor), so it would stay in TF_PIPELINE for good — measured: 1–6 messages per crash on 2.9.10.
 *
 * In a work queue every subject belongs to exactly one consumer (their filters are disjoint),
 * so a message at or below its consumer's ack floor has been processed: the janitor deletes it.
 * It runs with the actors (it needs the right to manage streams), at start and periodically.
 */
import { Duration, Effect, Schedule } from "effect"
import { JetStreamApiError } from "@nats-io/jetstream"
import { Nats } from "./connection.js"
import { BusError } from "./errors.js"
import { CONSUMER, STREAM } from "./topology.js"

const isNotFound = (e: unknown) => e instanceof JetStreamApiError && (e.code === 10037 || e.code === 10014 || e.code === 10059)

/** One pass: delete acked leftovers of every pipeline consumer. Returns the deleted sequences. */
export const sweepAckedLeftovers = Effect.gen(function* () {
  const { jsm } = yield* Nats
  return yield* Effect.tryPromise({
    try: async () => {
      const deleted: Array<{ consumer: string; seq: number; subject: string }> = []
      const first = (await jsm.streams.info(STREAM.pipeline)).state.first_seq
      for (const c of Object.values(CONSUMER)) {
        let floor: number
        try {
          floor = (await jsm.consumers.info(STREAM.pipeline, c.name)).ack_floor.stream_seq
        } catch (e) {
          if (isNotFound(e)) continue
          throw e
        }
        for (let cursor = first; cursor <= floor; ) {
          let m
          try {
            // STREAM.MSG.GET takes next_by_subj since 2.9 (the client's type only lists seq/last_by_subj)
            m = await jsm.streams.getMessage(STREAM.pipeline, { next_by_subj: c.filter, seq: cursor } as unknown as { seq: number })
          } catch (e) {
            if (isNotFound(e)) break
            throw e
          }
          if (!m || m.seq > floor) break
          await jsm.streams.deleteMessage(STREAM.pipeline, m.seq, false)
          deleted.push({ consumer: c.name, seq: m.seq, subject: m.subject })
          cursor = m.seq + 1
        }
      }
      return deleted
    },
    catch: (cause) => new BusError({ op: `sweep acked leftovers of ${STREAM.pipeline}`, cause, transient: true })
  })
})

/** Sweep now and every `every`; each deletion is logged. Never fails (a failed pass is logged). */
export const workQueueJanitor = (every: Duration.DurationInput = "10 seconds") =>
  sweepAckedLeftovers.pipe(
    Effect.tap((deleted) =>
      Effect.forEach(deleted, (d) =>
        Effect.logWarning(`deleted an acked message left in ${STREAM.pipeline} after a server crash`).pipe(Effect.annotateLogs({ ...d })),
        { discard: true }
      )
    ),
    Effect.catchAll((e) => Effect.logDebug("work-queue sweep failed; next pass later", e)),
    Effect.repeat(Schedule.spaced(every)),
    Effect.asVoid
  )
