/**
 * Read everything a limits stream holds for one subject filter, then stop: what a reporter
 * needs to rebuild a batch's state exactly from the results stream after a restart.
 */
import { Effect } from "effect"
import { DeliverPolicy, type JsMsg } from "@nats-io/jetstream"
import { Nats } from "./connection.js"
import { BusError } from "./errors.js"
import { isTransient } from "./bus.js"
import { streamOf } from "./topology.js"

/** How long one fetch waits for more (the client's minimum). */
const FETCH_WAIT_MS = 1_000

export const replayAll = (filter: string, opts: { stream?: string; lastPerSubject?: boolean; fromSeq?: number } = {}) =>
  Effect.flatMap(Nats, ({ js, jsm }) =>
    Effect.tryPromise({
      try: async (): Promise<JsMsg[]> => {
        const stream = opts.stream ?? streamOf(filter)
        // The last message matching the filter marks where the replay ends (none: nothing to read).
        const last = await jsm.streams.getMessage(stream, { last_by_subj: filter }).catch(() => null)
        if (!last || (opts.fromSeq !== undefined && last.seq < opts.fromSeq)) return []
        const consumer = await js.consumers.get(stream, {
          filter_subjects: filter,
          // from a sequence: only what came after what the caller already has (the server reads
          // from there, not from the start of a stream holding every batch)
          ...(opts.fromSeq !== undefined
            ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: opts.fromSeq }
            : { deliver_policy: opts.lastPerSubject ? DeliverPolicy.LastPerSubject : DeliverPolicy.All })
        })
        const out: JsMsg[] = []
        for (let caughtUp = false; !caughtUp; ) {
          const batch = await consumer.fetch({ max_messages: 2_000, expires: FETCH_WAIT_MS })
          let seen: JsMsg | undefined
          for await (const m of batch) {
            out.push(m)
            seen = m
            // The end is known (nothing pending, or the last matching message): stop here
            // instead of waiting out the fetch's expiry — that wait made every rebuild of a
            // batch's state take a second, and a reporter seeing many new batches fall behind.
            if (m.info.pending === 0 || m.seq >= last.seq) {
              caughtUp = true
              break
            }
          }
          if (seen === undefined) break
        }
        await consumer.delete().catch(() => undefined)
        return out
      },
      catch: (cause) => new BusError({ op: `replay ${filter}`, cause, transient: isTransient(cause) })
    })
  )
