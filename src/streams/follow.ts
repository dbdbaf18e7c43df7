/**
 * Live views: an ordered consumer replays what a limits stream holds for a subject and then
 * follows it. Used by `tickflow run` / `tickflow watch` to show results as they arrive; a late
 * subscriber sees the whole batch.
 */
import { Effect, Option, Stream } from "effect"
import { DeliverPolicy, type ConsumerMessages, type JsMsg } from "@nats-io/jetstream"
import type { z } from "zod"
import { Nats } from "./connection.js"
import { BusError } from "./errors.js"
import { CONSUME_EXPIRES_MS, decodeMessage, isTransient } from "./bus.js"
import { STREAM } from "./topology.js"

/**
 * Messages of an iterator as a Stream whose pull can be interrupted at once (an idle ordered
 * consumer would otherwise hold up the scope's close).
 */
export const iteratorStream = (messages: ConsumerMessages, op: string): Stream.Stream<JsMsg, BusError> => {
  const iterator = messages[Symbol.asyncIterator]()
  const pull = Effect.async<JsMsg, Option.Option<BusError>>((resume) => {
    iterator.next().then(
      (r) => resume(r.done ? Effect.fail(Option.none()) : Effect.succeed(r.value)),
      (cause) => resume(Effect.fail(Option.some(new BusError({ op, cause, transient: isTransient(cause) }))))
    )
  })
  return Stream.repeatEffectOption(pull)
}

export interface FollowOptions {
  readonly stream?: string
  /** the last message of each subject, then new ones */
  readonly lastPerSubject?: boolean
  /** only messages stored from now on */
  readonly deliverNew?: boolean
}

/** How long to wait before opening a follower again when opening it failed. */
const REOPEN_DELAY_MS = 250

/**
 * An ordered consumer on `filter` in callback mode, which this code — not nats.js — starts
 * again after a reconnect or missed heartbeats, from the message after the last one handed to
 * `onMessage`.
 *
 * Why not nats.js's own recovery: in @nats-io/jetstream 3.4, when an ordered consumer is gone
 * after a reconnect (it lives in the server's memory: a restarted nats-server, a dead cluster
 * node), `consume()` recreates it without clearing what it counts as pulled but not received,
 * so its first pull asks for `batch: 0`: one message arrives, then nothing until two idle
 * heartbeats are missed (measured: 7.5 s with 5 s pulls; a reporter counted a batch done 6 s
 * after its last result). A fresh consumer pulls a full batch at once.
 *
 * `deliverNew` is turned into "from the stream's next sequence at the start", so a restart
 * before any message arrived misses nothing stored in the meantime (a restarted New consumer
 * would start at the time of the restart).
 */
const followOrdered = (filter: string, opts: FollowOptions & { maxMessages: number }, onMessage: (m: JsMsg) => void, onEnd: (e?: BusError) => void) =>
  Effect.gen(function* () {
    const { js, jsm, nc } = yield* Nats
    const stream = opts.stream ?? STREAM.results
    const op = `follow ${filter}`
    let nextSeq: number | undefined
    if (opts.deliverNew)
      nextSeq =
        (yield* Effect.tryPromise({
          try: () => jsm.streams.info(stream),
          catch: (cause) => new BusError({ op, cause, transient: isTransient(cause) })
        })).state.last_seq + 1
    const deliver = (): { deliver_policy: DeliverPolicy; opt_start_seq?: number } =>
      nextSeq !== undefined
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: Math.max(1, nextSeq) }
        : { deliver_policy: opts.lastPerSubject ? DeliverPolicy.LastPerSubject : DeliverPolicy.All }
    let current: ConsumerMessages | undefined
    // which opening is the live one: messages of a follower stopped for a restart are dropped
    let generation = 0
    let stopped = false
    let opening = false
    const open = async (): Promise<void> => {
      opening = true
      const mine = ++generation
      try {
        const consumer = await js.consumers.get(stream, { filter_subjects: filter, ...deliver() })
        const messages = await consumer.consume({
          max_messages: opts.maxMessages,
          // short pulls: an ordered consumer lost with a cluster node is recreated within ~5 s, not ~30 s
          expires: CONSUME_EXPIRES_MS,
          callback: (m) => {
            if (mine !== generation) return
            nextSeq = m.seq + 1
            onMessage(m)
          }
        })
        if (stopped) return void messages.stop()
        current = messages
        void (async () => {
          for await (const st of messages.status()) if (st.type === "heartbeats_missed" && mine === generation) return restart()
        })().catch(() => undefined)
        // An ordered consumer that gives up (e.g. its stream is gone) ends the follow; its
        // owner decides what next. One stopped here for a restart does not.
        void messages.closed().then((err) => {
          if (mine === generation && !stopped) onEnd(err ? new BusError({ op, cause: err, transient: true }) : undefined)
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
    yield* Effect.acquireRelease(
      Effect.tryPromise({ try: open, catch: (cause) => new BusError({ op, cause, transient: isTransient(cause) }) }),
      () =>
        Effect.sync(() => {
          stopped = true
          current?.stop()
        })
    )
    const status = nc.status()
    yield* Effect.acquireRelease(
      Effect.sync(() =>
        (async () => {
          for await (const st of status) if (st.type === "reconnect") restart()
        })().catch(() => undefined)
      ),
      () => Effect.sync(() => (status as { stop?: () => void }).stop?.())
    )
  })

/** Replay then follow one subject filter of a limits stream (default TF_RESULTS), message by message. */
export const follow = (filter: string, opts: FollowOptions = {}): Stream.Stream<JsMsg, BusError, Nats> =>
  Stream.asyncScoped<JsMsg, BusError, Nats>((emit) =>
    followOrdered(
      filter,
      { ...opts, maxMessages: 1_000 },
      (m) => void emit.single(m),
      (e) => void (e ? emit.fail(e) : emit.end())
    ),
    // in arrival order, however fast they come (the client library buffers them the same way)
    "unbounded"
  )

/**
 * Replay then follow, handed over in batches: the consumer runs in callback mode and collects
 * messages in a plain array, and the Stream emits that array every `everyMs` (when not empty).
 * One Effect step per batch instead of several per message: a reporter folding 10,000 results a
 * few seconds apart spent most of its CPU in per-message Stream machinery (bench/pipeline.ts).
 */
export const followBatches = (filter: string, opts: FollowOptions & { everyMs?: number } = {}): Stream.Stream<ReadonlyArray<JsMsg>, BusError, Nats> =>
  Stream.asyncScoped<ReadonlyArray<JsMsg>, BusError, Nats>((emit) =>
    Effect.gen(function* () {
      let inbox: JsMsg[] = []
      yield* Effect.acquireRelease(
        Effect.sync(() =>
          setInterval(() => {
            if (inbox.length === 0) return
            const batch = inbox
            inbox = []
            void emit.single(batch)
          }, opts.everyMs ?? 50)
        ),
        (t) => Effect.sync(() => clearInterval(t))
      )
      // An ordered consumer recreates itself after a hiccup; when it gives up, the Stream fails
      // and its owner restarts it (replaying from where it stands is the owner's business).
      yield* followOrdered(
        filter,
        { ...opts, maxMessages: 1_000 },
        (m) => void inbox.push(m),
        (e) => void (e ? emit.fail(e) : emit.end())
      )
    })
  )

/** Follow and decode; messages that do not match the schema are dropped (and counted). */
export const followDecoded = <S extends z.ZodType>(filter: string, schema: S, opts: { stream?: string; lastPerSubject?: boolean } = {}) =>
  follow(filter, opts).pipe(
    Stream.filterMap((m) => {
      const d = decodeMessage(schema, m.subject, m.data)
      return d._tag === "Right" ? Option.some(d.right as z.output<S>) : Option.none()
    })
  )
