/**
 * Live views: an ordered consumer replays what a limits stream holds for a subject and then
 * follows it. Used by `tickflow run` / `tickflow watch` to show results as they arrive; a late
 * subscriber sees the whole batch.
 */
import { Effect, Option, Stream } from "effect"
import type { ConsumerMessages, JsMsg } from "@nats-io/jetstream"
import type { z } from "zod"
import { Nats } from "./connection.js"
import { BusError } from "./errors.js"
import { CONSUME_EXPIRES_MS, decodeMessage, isTransient } from "./bus.js"
import { streamOf } from "./topology.js"
import { startOrderedFollower } from "./ordered.js"

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

/**
 * An ordered consumer on `filter` in callback mode that restarts itself after a reconnect or
 * missed heartbeats (`startOrderedFollower`, ordered.ts: nats.js's own recovery stalled ~7.5 s
 * after a nats-server restart). `deliverNew` becomes "from the stream's next sequence at the
 * start", so a restart before any message arrived misses nothing stored in the meantime.
 */
const followOrdered = (filter: string, opts: FollowOptions & { maxMessages: number }, onMessage: (m: JsMsg) => void, onEnd: (e?: BusError) => void) =>
  Effect.gen(function* () {
    const { js, jsm, nc } = yield* Nats
    const stream = opts.stream ?? streamOf(filter)
    const op = `follow ${filter}`
    const start = opts.deliverNew
      ? {
          fromSeq:
            (yield* Effect.tryPromise({
              try: () => jsm.streams.info(stream),
              catch: (cause) => new BusError({ op, cause, transient: isTransient(cause) })
            })).state.last_seq + 1
        }
      : opts.lastPerSubject
        ? ("lastPerSubject" as const)
        : ("all" as const)
    yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          startOrderedFollower({
            nc,
            js,
            stream,
            filter,
            start,
            maxMessages: opts.maxMessages,
            // short pulls: an ordered consumer lost with a cluster node is recreated within ~5 s, not ~30 s
            expiresMs: CONSUME_EXPIRES_MS,
            onMessage,
            onEnd: (err) => onEnd(err ? new BusError({ op, cause: err, transient: true }) : undefined)
          }),
        catch: (cause) => new BusError({ op, cause, transient: isTransient(cause) })
      }),
      (f) => Effect.sync(() => f.stop())
    )
  })

/**
 * Follow one subject filter into a callback for as long as the scope lives: no Stream between
 * the consumer and the caller (the reporter folds what arrived every 100 ms; Stream.mergeAll and
 * groupedWithin over its followers cost it more CPU than its fold, bench/actor-cpu.ts).
 * `onEnd` is called when the consumer gives up.
 */
export const followInto = (filter: string, opts: FollowOptions, onMessage: (m: JsMsg) => void, onEnd: (e?: BusError) => void) =>
  followOrdered(filter, { ...opts, maxMessages: 1_000 }, onMessage, onEnd)

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

/** Follow and decode; messages that do not match the schema are dropped (and counted). */
export const followDecoded = <S extends z.ZodType>(filter: string, schema: S, opts: { stream?: string; lastPerSubject?: boolean } = {}) =>
  follow(filter, opts).pipe(
    Stream.filterMap((m) => {
      const d = decodeMessage(schema, m.subject, m.data)
      return d._tag === "Right" ? Option.some(d.right as z.output<S>) : Option.none()
    })
  )
