/**
 * An ordered consumer that survives a nats-server restart or the loss of the cluster node it
 * lived on: plain TypeScript on nats.js (no Effect), shared by the actors' followers
 * (`follow.ts`) and `tickflow/client`.
 *
 * Ordered consumers live in the server's memory, so after a restart they are gone. nats.js 3.4
 * recreates one on `reconnect` (or after two missed idle heartbeats), but without clearing
 * what it counts as pulled and not yet received: its first pull then asks for `batch: 0`, one
 * message arrives, and nothing more until two heartbeats are missed again (~7.5 s measured
 * with 5 s pulls; a reporter counted a batch done 6 s after its last result). And a consumer
 * started with `DeliverPolicy.New` that had seen nothing is recreated from sequence 1 (the
 * whole stream again). So this code starts the consumer again itself on `reconnect` and on
 * missed heartbeats, from the message after the last one it handed over; a fresh consumer
 * pulls a full batch at once.
 */
import type { NatsConnection } from "@nats-io/transport-node"
import { DeliverPolicy, type ConsumerMessages, type JetStreamClient, type JsMsg } from "@nats-io/jetstream"

/** How long to wait before opening the consumer again when opening it failed. */
const REOPEN_DELAY_MS = 250

export interface OrderedFollowSpec {
  readonly nc: NatsConnection
  readonly js: JetStreamClient
  readonly stream: string
  readonly filter: string
  /**
   * where to begin: everything, the last message of each subject, or a stream sequence (a
   * "new messages only" follower passes the stream's last sequence + 1, read when it starts:
   * a restart before any message arrived then misses nothing stored meanwhile)
   */
  readonly start: "all" | "lastPerSubject" | { readonly fromSeq: number }
  readonly maxMessages: number
  /** how long each pull lives at the server (its idle heartbeat is half of it) */
  readonly expiresMs: number
  readonly onMessage: (m: JsMsg) => void
  /** the consumer gave up (e.g. its stream is gone): the follow is over */
  readonly onEnd: (err?: Error) => void
}

export interface OrderedFollower {
  readonly stop: () => void
}

/** Open the follower; resolves once its first consumer is created. */
export const startOrderedFollower = async (spec: OrderedFollowSpec): Promise<OrderedFollower> => {
  let nextSeq = typeof spec.start === "object" ? Math.max(1, spec.start.fromSeq) : undefined
  const deliver = (): { deliver_policy: DeliverPolicy; opt_start_seq?: number } =>
    nextSeq !== undefined
      ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: nextSeq }
      : { deliver_policy: spec.start === "lastPerSubject" ? DeliverPolicy.LastPerSubject : DeliverPolicy.All }
  let current: ConsumerMessages | undefined
  // which opening is the live one: messages of a consumer stopped for a restart are dropped
  let generation = 0
  let stopped = false
  let opening = false

  const open = async (): Promise<void> => {
    opening = true
    const mine = ++generation
    try {
      const consumer = await spec.js.consumers.get(spec.stream, { filter_subjects: spec.filter, ...deliver() })
      const messages = await consumer.consume({
        max_messages: spec.maxMessages,
        expires: spec.expiresMs,
        callback: (m) => {
          if (mine !== generation) return
          nextSeq = m.seq + 1
          spec.onMessage(m)
        }
      })
      if (stopped || mine !== generation) return void messages.stop()
      current = messages
      void (async () => {
        for await (const st of messages.status()) if (st.type === "heartbeats_missed" && mine === generation) return restart()
      })().catch(() => undefined)
      void messages.closed().then((err) => {
        if (mine === generation && !stopped) spec.onEnd(err ?? undefined)
      })
    } finally {
      opening = false
    }
  }
  const restart = (): void => {
    if (stopped || opening) return
    generation++
    current?.stop()
    current = undefined
    open().catch(() => {
      if (!stopped) setTimeout(restart, REOPEN_DELAY_MS)
    })
  }

  await open()
  const status = spec.nc.status()
  void (async () => {
    for await (const st of status) if (st.type === "reconnect") restart()
  })().catch(() => undefined)
  return {
    stop: () => {
      stopped = true
      generation++
      current?.stop()
      current = undefined
      ;(status as { stop?: () => void }).stop?.()
    }
  }
}

/**
 * The follower as an async iterable (what `consume()` hands out): messages in arrival order,
 * buffered without bound like nats.js's own iterator; `stop()` ends the iteration, a consumer
 * that gives up fails it.
 */
export const orderedFollowerIterable = async (
  spec: Omit<OrderedFollowSpec, "onMessage" | "onEnd">
): Promise<AsyncIterable<JsMsg> & OrderedFollower> => {
  let queue: JsMsg[] = []
  let head = 0
  let ended: { err?: Error } | undefined
  let wake: (() => void) | undefined
  const notify = () => {
    const w = wake
    wake = undefined
    w?.()
  }
  const follower = await startOrderedFollower({
    ...spec,
    onMessage: (m) => {
      queue.push(m)
      notify()
    },
    onEnd: (err) => {
      ended = err ? { err } : {}
      notify()
    }
  })
  const stop = () => {
    follower.stop()
    ended ??= {}
    notify()
  }
  return {
    stop,
    [Symbol.asyncIterator]: () => ({
      next: async (): Promise<IteratorResult<JsMsg>> => {
        for (;;) {
          if (head < queue.length) {
            const m = queue[head++]!
            if (head >= 1_024 && head * 2 >= queue.length) {
              queue = queue.slice(head)
              head = 0
            }
            return { done: false, value: m }
          }
          if (ended) {
            if (ended.err) throw ended.err
            return { done: true, value: undefined }
          }
          await new Promise<void>((resolve) => (wake = resolve))
        }
      },
      return: async (): Promise<IteratorResult<JsMsg>> => {
        stop()
        return { done: true, value: undefined }
      }
    })
  }
}
