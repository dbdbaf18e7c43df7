/**
 * Typed publish and consume over JetStream, and JSON helpers for KV. Every message is JSON
 * validated by a zod schema on both sides; every publish carries a Nats-Msg-Id so a redelivered
 * message cannot create a duplicate downstream.
 */
import { Context, Duration, Effect, Either, Layer, Option, Schedule, Stream } from "effect"
import type { JsMsg, PubAck, ConsumerMessages, JetStreamManager } from "@nats-io/jetstream"
import { JetStreamApiError } from "@nats-io/jetstream"
import type { KV } from "@nats-io/kv"
import type { NatsConnection } from "@nats-io/transport-node"
import type { z } from "zod"
import { Nats } from "./connection.js"
import { BusError, DecodeError, RequestLostInReconnect } from "./errors.js"
import { ensureOrBindTopology, STREAM, streamOf, type Topology, type TopologyOptions } from "./topology.js"
import { formatIssues } from "../schemas/errors.js"
import { tooDeepAt, tooDeepProblem } from "../schemas/depth.js"
import { iteratorStream } from "./follow.js"

const encoder = new TextEncoder()

/** Errors worth retrying: no responders during a leader election, timeouts, a reconnect. */
export const isTransient = (e: unknown): boolean => {
  if (e instanceof RequestLostInReconnect) return true
  if (e instanceof JetStreamApiError) return e.code === 503 || e.code === 10008
  const text = `${(e as Error)?.name ?? ""} ${(e as Error)?.message ?? ""} ${String((e as { cause?: unknown })?.cause ?? "")}`
  return /timeout|no responders|NoResponders|jetstream is not enabled|disconnect|reconnect|CONNECTION_|closed|TimeoutError|503/i.test(
    text
  )
}

/**
 * 50 ms, 100 ms, ... capped at 500 ms, for up to 30 s: long enough to cover a server restart or
 * a cluster leader election (5–10 s measured), and never more than 0.5 s late once the server is
 * back (an uncapped backoff resumed work up to 6 s after the server's return).
 */
const retryTransient = Schedule.exponential(Duration.millis(50), 2).pipe(
  Schedule.union(Schedule.spaced(Duration.millis(500))),
  Schedule.upTo(Duration.seconds(30)),
  Schedule.whileInput((e: BusError) => e.transient)
)

/**
 * Retry transient faults — but set the retry up only after a first failure: wrapping every call
 * in Effect.retry costs more than the publish itself on the hot path (bench/bus.ts measured
 * typed publish at 0.31× raw with the wrapper on every call).
 */
const withRetry = <A, R>(attempt: Effect.Effect<A, BusError, R>): Effect.Effect<A, BusError, R> =>
  Effect.catchAll(attempt, (e) => (e.transient ? Effect.retry(attempt, retryTransient) : Effect.fail(e)))

export interface PublishOptions {
  /** de-duplication id (Nats-Msg-Id) */
  readonly msgId: string
  readonly timeoutMs?: number
}

/** Validate with the schema, publish as JSON with a Nats-Msg-Id; retries transient faults. */
export const publish = <S extends z.ZodType>(subject: string, schema: S, value: z.input<S>, opts: PublishOptions) =>
  Effect.suspend(() => {
    const checked = schema.safeParse(value, { reportInput: true })
    if (!checked.success) return Effect.die(new DecodeError({ subject, problems: formatIssues(checked.error) }))
    return publishTrusted(subject, checked.data, opts)
  })

/**
 * Publish a value our own typed code built, without the zod pass (hot paths: results, measured
 * at ~70 µs per result with it). Whoever receives it still validates at its own boundary.
 */
export const publishTrusted = (subject: string, value: unknown, opts: PublishOptions): Effect.Effect<PubAck, BusError, Nats> =>
  Effect.map(publishManyTrusted([{ subject, value, msgId: opts.msgId }], { timeoutMs: opts.timeoutMs }), (acks) => acks[0])

/** One message of a bulk publish (publishManyTrusted): a value, or its JSON text already written. */
/** A message to publish: a value to encode, its JSON text, or its encoded bytes (UTF-8 JSON). */
export type OutgoingMessage = { readonly subject: string; readonly msgId: string } & ({ readonly value: unknown } | { readonly json: string } | { readonly payload: Uint8Array })

/** The UTF-8 bytes of an outgoing message. */
export const payloadOf = (m: OutgoingMessage): Uint8Array => ("payload" in m ? m.payload : Buffer.from("json" in m ? m.json : JSON.stringify(m.value), "utf8"))

/**
 * Publish many values our own code built, all in flight at once (the client writes them in one
 * go, their acks come back on one subscription: AckedPublisher) inside one Effect: a fiber per
 * message cost more than the publish (bench/pipeline.ts). A retry sends only the messages not
 * acknowledged yet; their msg-ids make a message that did arrive before its ack was lost a
 * duplicate the server drops.
 */
export const publishManyTrusted = (messages: ReadonlyArray<OutgoingMessage>, opts: { timeoutMs?: number | undefined } = {}): Effect.Effect<PubAck[], BusError, Nats> =>
  Effect.flatMap(Nats, ({ publisher }) => {
    const acks = new Array<PubAck>(messages.length)
    if (messages.length === 0) return Effect.succeed(acks)
    // positions in `messages` still to be acknowledged, and their encoded form
    let todo = messages.map((m, index) => ({ index, subject: m.subject, payload: payloadOf(m), msgId: m.msgId }))
    const attempt = Effect.tryPromise({
      try: async () => {
        const outcomes = await publisher.publishAll(todo, opts.timeoutMs ?? 10_000)
        const failed: typeof todo = []
        let firstError: Error | undefined
        for (let i = 0; i < todo.length; i++) {
          const o = outcomes[i]
          if (o.ok) acks[todo[i].index] = o.ack
          else {
            failed.push(todo[i])
            firstError ??= o.error
          }
        }
        todo = failed
        if (firstError !== undefined) throw firstError
        return acks
      },
      catch: (cause) => new BusError({ op: `publish ${todo.length} message(s) (first ${todo[0]?.subject})`, cause, transient: isTransient(cause) })
    })
    return withRetry(attempt)
  })

/** Publish raw bytes/JSON without a schema (benchmarks, foreign payloads). */
export const publishRaw = (subject: string, payload: Uint8Array | string, msgId?: string) =>
  Effect.flatMap(Nats, ({ js }) =>
    withRetry(
      Effect.tryPromise({
        try: (): Promise<PubAck> =>
          js.publish(subject, typeof payload === "string" ? encoder.encode(payload) : payload, msgId ? { msgID: msgId } : {}),
        catch: (cause) => new BusError({ op: `publish ${subject}`, cause, transient: isTransient(cause) })
      })
    )
  )

/** One message from a durable consumer, decoded, with its acknowledgement verbs. */
export interface Delivery<A> {
  readonly subject: string
  readonly streamSeq: number
  /** 1 on first delivery */
  readonly deliveryCount: number
  readonly decoded: Either.Either<A, DecodeError>
  readonly msg: JsMsg
  /** ack and wait for the server to confirm it (so a crash right after cannot redeliver) */
  readonly ack: Effect.Effect<void, BusError>
  /** ack without waiting for the server's confirmation (a lost ack only means a redelivery) */
  readonly ackNoWait: Effect.Effect<void>
  /** negative ack: redeliver after `delayMs` */
  readonly nak: (delayMs?: number) => Effect.Effect<void>
  /** stop redelivery for good (2.9: reason strings are not supported, record it yourself) */
  readonly term: Effect.Effect<void>
  /** still working: resets the ack-wait timer */
  readonly working: Effect.Effect<void>
}

export const decodeMessage = <S extends z.ZodType>(schema: S, subject: string, bytes: Uint8Array): Either.Either<z.output<S>, DecodeError> => {
  let raw: unknown
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes))
  } catch (e) {
    return Either.left(new DecodeError({ subject, problems: [`not JSON: ${(e as Error).message}`] }))
  }
  const deep = tooDeepAt(raw)
  if (deep !== undefined) return Either.left(new DecodeError({ subject, problems: [tooDeepProblem(deep)], raw }))
  const r = schema.safeParse(raw, { reportInput: true })
  return r.success ? Either.right(r.data) : Either.left(new DecodeError({ subject, problems: formatIssues(r.error), raw }))
}

const ACK = encoder.encode("+ACK")

/**
 * An ack the server confirms: "+ACK" sent as a request to the message's reply subject (what
 * `ackAck()` sends), through `nc.request` so that an ack lost in a reconnect fails at once
 * (connection.ts) and is sent again, instead of waiting out its timeout and then the ack wait.
 * `ackAck()` itself cannot be repeated (it sends only once per message). Acking twice is
 * harmless: the server answers and ignores the second.
 */
const confirmedAck = (nc: NatsConnection, m: JsMsg): Effect.Effect<void, BusError> => {
  // JsMsgImpl has the reply subject; its published type does not say so
  const reply = (m as JsMsg & { readonly reply?: string }).reply
  const attempt: Effect.Effect<unknown, BusError> = reply
    ? Effect.tryPromise({
        try: () => nc.request(reply, ACK, { timeout: 10_000 }),
        catch: (cause) => new BusError({ op: `ack ${m.subject}`, cause, transient: isTransient(cause) })
      })
    : Effect.tryPromise({
        try: () => m.ackAck({ timeout: 10_000 }),
        catch: (cause) => new BusError({ op: `ack ${m.subject}`, cause, transient: false })
      })
  return Effect.asVoid(reply ? withRetry(attempt) : attempt)
}

const toDelivery = <S extends z.ZodType>(schema: S, m: JsMsg, nc: NatsConnection): Delivery<z.output<S>> => ({
  subject: m.subject,
  streamSeq: m.seq,
  deliveryCount: m.info.deliveryCount,
  decoded: decodeMessage(schema, m.subject, m.data),
  msg: m,
  ack: confirmedAck(nc, m),
  ackNoWait: Effect.sync(() => m.ack()),
  nak: (delayMs) => Effect.sync(() => m.nak(delayMs)),
  term: Effect.sync(() => m.term()),
  working: Effect.sync(() => m.working())
})

/**
 * How long one pull waits at the server for a message. Short, so that a pull lost with a
 * server that went away without a "reconnect" (a cluster node's leader change) is asked again
 * soon; an idle executor sends one tiny request per period.
 */
const PULL_EXPIRES_MS = 2_000

/**
 * How long each of `consume()`'s pulls lives at the server (its idle heartbeat is half of it).
 * When a cluster's consumer leader dies, the pull it held dies with it while this client stays
 * connected to another node: the client notices only after two missed heartbeats. With the
 * client's default (30 s) a stage sat idle ~30 s after a leader kill (measured, test/cluster.test.ts);
 * with 5 s it asks the new leader within ~5 s. Cost: one pull request per 5 s per idle actor.
 */
export const CONSUME_EXPIRES_MS = 5_000

export interface ConsumeOptions {
  readonly stream?: string
  /**
   * how many messages the client buffers ahead (`consume()` mode). Competing consumers
   * (executors) use `oneAtATime` instead, so one process never holds work another could run.
   */
  readonly maxMessages?: number
  /** pull exactly one message when ready (`next()`), nothing buffered */
  readonly oneAtATime?: boolean
}

/**
 * A durable consumer as a Stream of deliveries. The pull subscription lives in the stream's
 * scope; un-acked messages are redelivered by the server after ack_wait.
 *
 * The iterator is read through Effect.async (iteratorStream), not Stream.fromAsyncIterable:
 * interrupting a pull that waits on an idle queue must return at once (fromAsyncIterable waits
 * for the iterator's return(), which waits for a message that may never come).
 */
export const consume = <S extends z.ZodType>(durable: string, schema: S, opts: ConsumeOptions = {}) =>
  Stream.unwrapScoped(
    Effect.gen(function* () {
      const { js, nc } = yield* Nats
      const consumer = yield* Effect.tryPromise({
        try: () => js.consumers.get(opts.stream ?? STREAM.pipeline, durable),
        catch: (cause) => new BusError({ op: `get consumer ${durable}`, cause, transient: isTransient(cause) })
      })
      if (opts.oneAtATime) {
        // A pull request lives at the server: when the connection drops, it is gone, and a
        // `next()` would sit out its expiry before asking again (executors paused ~5 s after a
        // server restart). So each pull also ends, empty, on the connection's "reconnect" status
        // and the next one is sent at once.
        const onReconnect = new Set<() => void>()
        const status = nc.status()
        yield* Effect.acquireRelease(
          Effect.sync(() =>
            (async () => {
              for await (const st of status) if (st.type === "reconnect") for (const f of [...onReconnect]) f()
            })().catch(() => undefined)
          ),
          () => Effect.sync(() => (status as { stop?: () => void }).stop?.())
        )
        // A pull interrupted by shutdown (or by a reconnect) stays open at the server; if a
        // message arrives for it after we stopped listening, nak it at once so a consumer gets it
        // now, not after ack_wait.
        const pullOne = Effect.async<JsMsg | null, Option.Option<BusError>>((resume) => {
          let abandoned = false
          const reconnected = () => {
            if (abandoned) return
            abandoned = true
            onReconnect.delete(reconnected)
            resume(Effect.succeed(null))
          }
          onReconnect.add(reconnected)
          consumer.next({ expires: PULL_EXPIRES_MS }).then(
            (m) => {
              onReconnect.delete(reconnected)
              if (abandoned) m?.nak()
              else resume(Effect.succeed(m))
            },
            (cause) => {
              onReconnect.delete(reconnected)
              if (!abandoned) resume(Effect.fail(Option.some(new BusError({ op: `next ${durable}`, cause, transient: isTransient(cause) }))))
            }
          )
          return Effect.sync(() => {
            abandoned = true
            onReconnect.delete(reconnected)
          })
        })
        return Stream.repeatEffect(pullOne).pipe(
          Stream.filterMap((m) => (m ? Option.some(toDelivery(schema, m, nc)) : Option.none())),
          Stream.catchAll((e) => (Option.isSome(e) ? Stream.fail(e.value) : Stream.empty))
        )
      }
      const messages: ConsumerMessages = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => consumer.consume({ max_messages: opts.maxMessages ?? 64, expires: CONSUME_EXPIRES_MS }),
          catch: (cause) => new BusError({ op: `consume ${durable}`, cause, transient: isTransient(cause) })
        }),
        (m) => Effect.sync(() => m.stop())
      )
      return iteratorStream(messages, `consume ${durable}`).pipe(Stream.map((m) => toDelivery(schema, m, nc)))
    })
  )

/**
 * The last message a stream holds on a subject (or a wildcard filter): a result, a chunk's
 * curves, the end of a replay. Null when there is none (the usual "not yet").
 */
export const lastMessageOn = (subject: string, stream: string = streamOf(subject)) =>
  Effect.flatMap(Nats, ({ jsm }) =>
    Effect.tryPromise({
      try: () => jsm.streams.getMessage(stream, { last_by_subj: subject }).catch((e) => (isApiError404(e) ? null : Promise.reject(e))),
      catch: (cause) => new BusError({ op: `last message on ${subject}`, cause, transient: isTransient(cause) })
    })
  )

/** "no message found" (10037) and other not-found answers of a direct get. */
const isApiError404 = (e: unknown): boolean =>
  (e instanceof JetStreamApiError && (e.code === 10037 || e.code === 404)) || /no message found|not found/i.test(String((e as Error)?.message))

// ---------- KV JSON helpers ----------

/**
 * The keys of a KV bucket matching `filter` (a key pattern such as `lease.>`), read from the
 * subjects its stream holds: one stream-info request, paged by nats.js when long. Not
 * `kv.keys()`: nats.js 3 leaves the ordered consumer behind it in place (measured: every call,
 * hit or miss, left one on the bucket's stream, heartbeating, for as long as the connection
 * lived). A key whose last value is a delete marker is listed too: `get` tells.
 */
export const kvKeysAsync = async (jsm: JetStreamManager, bucket: string, filter: string): Promise<string[]> => {
  const prefix = `$KV.${bucket}.`
  const info = await jsm.streams.info(`KV_${bucket}`, { subjects_filter: `${prefix}${filter}` })
  return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length))
}

export const kvGet = <S extends z.ZodType>(kv: KV, key: string, schema: S) =>
  Effect.tryPromise({
    try: () => kv.get(key),
    catch: (cause) => new BusError({ op: `kv get ${key}`, cause, transient: isTransient(cause) })
  }).pipe(
    withRetry,
    Effect.map((e) => {
      if (!e || e.operation !== "PUT" || e.length === 0) return undefined
      const r = schema.safeParse(e.json())
      return r.success ? { value: r.data as z.output<S>, revision: e.revision } : undefined
    })
  )

export const kvPut = (kv: KV, key: string, value: unknown) =>
  withRetry(
    Effect.tryPromise({
      try: () => kv.put(key, JSON.stringify(value)),
      catch: (cause) => new BusError({ op: `kv put ${key}`, cause, transient: isTransient(cause) })
    })
  )

/** Another writer changed the key first (stale revision, or it already exists). */
const isCasConflict = (e: unknown): boolean =>
  (e instanceof JetStreamApiError && e.code === 10071) || /wrong last sequence|key exists/i.test(String((e as Error)?.message))

/** Write `value` at `key` if its revision is still `revision` (undefined: only if absent). */
const casWrite = (kv: KV, key: string, value: unknown, revision: number | undefined) =>
  Effect.tryPromise({
    try: async () => {
      try {
        if (revision !== undefined) await kv.update(key, JSON.stringify(value), revision)
        else await kv.create(key, JSON.stringify(value))
        return true
      } catch (e) {
        if (isCasConflict(e)) return false
        throw e
      }
    },
    catch: (cause) => new BusError({ op: `kv write ${key}`, cause, transient: isTransient(cause) })
  })

/**
 * Create only if absent: true when this call created it (a claim), false when it existed.
 *
 * A create whose answer was lost (a cluster's stream leader died after storing it, or the
 * connection dropped) is retried, and the retry finds the key: that is this call's own write,
 * not a rival's. So after a retry, "exists" with exactly the bytes this call wrote counts as
 * created — otherwise a loader would wait on its own claim until it went stale (120 s).
 */
export const kvCreate = (kv: KV, key: string, value: unknown) =>
  Effect.suspend(() => {
    let attempts = 0
    const attempt = Effect.suspend(() => {
      attempts++
      return casWrite(kv, key, value, undefined)
    })
    return withRetry(attempt).pipe(
      Effect.flatMap((created) =>
        created || attempts === 1
          ? Effect.succeed(created)
          : Effect.tryPromise({
              try: async () => (await kv.get(key))?.string() === JSON.stringify(value),
              catch: (cause) => new BusError({ op: `kv get ${key}`, cause, transient: isTransient(cause) })
            }).pipe(withRetry)
      )
    )
  })

/**
 * Compare-and-set: read, let `decide` compute the next value (or `undefined` to leave the key
 * as it is), write it with the read revision; on a conflict read again and decide again.
 * Returns what was written, or undefined when `decide` declined.
 */
export const kvModify = <S extends z.ZodType>(
  kv: KV,
  key: string,
  schema: S,
  decide: (current: z.output<S> | undefined) => z.output<S> | undefined
) =>
  Effect.gen(function* () {
    for (let attempt = 0; ; attempt++) {
      const cur = yield* kvGet(kv, key, schema)
      const next = decide(cur?.value)
      if (next === undefined) return undefined
      if (yield* withRetry(casWrite(kv, key, next, cur?.revision))) return next
      if (attempt > 50) return yield* Effect.fail(new BusError({ op: `kv update ${key}`, cause: "too many conflicts", transient: true }))
    }
  })

/** kvModify whose `f` always writes. */
export const kvUpdate = <S extends z.ZodType>(kv: KV, key: string, schema: S, f: (current: z.output<S> | undefined) => z.output<S>) =>
  kvModify(kv, key, schema, f) as Effect.Effect<z.output<S>, BusError, never>

// ---------- the topology as a service ----------

/** Handles to the KV buckets and object store, created (idempotently) when the layer starts. */
export class Bus extends Context.Tag("tickflow/Bus")<Bus, Topology>() {}

export const busLayer = (options: TopologyOptions = {}) => Layer.effect(Bus, ensureOrBindTopology(options))
