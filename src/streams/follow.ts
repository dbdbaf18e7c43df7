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

/** Replay then follow one subject filter of a limits stream (default TF_RESULTS). */
export const follow = (filter: string, opts: { stream?: string; lastPerSubject?: boolean; deliverNew?: boolean } = {}) =>
  Stream.unwrapScoped(
    Effect.gen(function* () {
      const { js } = yield* Nats
      const consumer = yield* Effect.tryPromise({
        try: () =>
          js.consumers.get(opts.stream ?? STREAM.results, {
            filter_subjects: filter,
            deliver_policy: opts.deliverNew ? DeliverPolicy.New : opts.lastPerSubject ? DeliverPolicy.LastPerSubject : DeliverPolicy.All
          }),
        catch: (cause) => new BusError({ op: `follow ${filter}`, cause, transient: isTransient(cause) })
      })
      const messages = yield* Effect.acquireRelease(
        Effect.tryPromise({
          // short pulls: an ordered consumer lost with a cluster node is recreated within ~5 s, not ~30 s
          try: () => consumer.consume({ max_messages: 1_000, expires: CONSUME_EXPIRES_MS }),
          catch: (cause) => new BusError({ op: `follow ${filter}`, cause, transient: isTransient(cause) })
        }),
        (m) => Effect.sync(() => m.stop())
      )
      return iteratorStream(messages, `follow ${filter}`)
    })
  )

/**
 * Replay then follow, handed over in batches: the consumer runs in callback mode and collects
 * messages in a plain array, and the Stream emits that array every `everyMs` (when not empty).
 * One Effect step per batch instead of several per message: a reporter folding 10,000 results a
 * few seconds apart spent most of its CPU in per-message Stream machinery (bench/pipeline.ts).
 */
export const followBatches = (
  filter: string,
  opts: { stream?: string; lastPerSubject?: boolean; deliverNew?: boolean; everyMs?: number } = {}
): Stream.Stream<ReadonlyArray<JsMsg>, BusError, Nats> =>
  Stream.asyncScoped<ReadonlyArray<JsMsg>, BusError, Nats>((emit) =>
    Effect.gen(function* () {
      const { js } = yield* Nats
      const op = `follow ${filter}`
      const consumer = yield* Effect.tryPromise({
        try: () =>
          js.consumers.get(opts.stream ?? STREAM.results, {
            filter_subjects: filter,
            deliver_policy: opts.deliverNew ? DeliverPolicy.New : opts.lastPerSubject ? DeliverPolicy.LastPerSubject : DeliverPolicy.All
          }),
        catch: (cause) => new BusError({ op, cause, transient: isTransient(cause) })
      })
      let inbox: JsMsg[] = []
      const messages = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => consumer.consume({ max_messages: 1_000, expires: CONSUME_EXPIRES_MS, callback: (m) => void inbox.push(m) }),
          catch: (cause) => new BusError({ op, cause, transient: isTransient(cause) })
        }),
        (m) => Effect.sync(() => m.stop())
      )
      const timer = yield* Effect.acquireRelease(
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
      void timer
      // An ordered consumer recreates itself after a hiccup; when it gives up, the Stream fails
      // and its owner restarts it (replaying from where it stands is the owner's business).
      void messages.closed().then((err) => void (err ? emit.fail(new BusError({ op, cause: err, transient: true })) : emit.end()))
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
