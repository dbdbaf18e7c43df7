/**
 * The bus across a nats-server restart (SIGTERM or SIGKILL, same store):
 * - a request whose answer is lost with the server (its bytes went to the old connection) fails
 *   as `RequestLostInReconnect` when the connection is back, instead of waiting out its
 *   timeout; bus.ts retries it at once. Requests go to a plain subscriber of this test that
 *   keeps silent the first time it sees a payload, so the request is certainly in flight when
 *   the server stops. Long timeouts (120 s): without the mechanism each request ends in a
 *   TimeoutError, which the assertions tell apart; no duration is asserted;
 * - a work-queue message taken before the restart is acked after it, confirmed by the server;
 * - followers (ordered consumers: `follow`, `followInto`, and the iterable tickflow/client
 *   reads) see every message stored after they began, once, in order, nothing older — also
 *   a "new" one that had seen nothing when the server went. How soon is printed
 *   (`RECOVERY followers ...`), not asserted.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Layer, Stream } from "effect"
import { nanos, type Msg } from "@nats-io/transport-node"
import { AckPolicy, RetentionPolicy, StorageType, type JsMsg } from "@nats-io/jetstream"
import { z } from "zod"
import { consume, isTransient, publishRaw, publishTrusted } from "../src/streams/bus.js"
import { follow, followInto } from "../src/streams/follow.js"
import { orderedFollowerIterable } from "../src/streams/ordered.js"
import { Nats } from "../src/streams/connection.js"
import { RequestLostInReconnect } from "../src/streams/errors.js"
import { restartableServer } from "./support/restartable.js"
import { until } from "./support/child.js"

/** A subscriber that answers each request except the first one with each payload. */
const silentOnce = (subject: string, answer: (m: Msg) => string) =>
  Effect.gen(function* () {
    const { nc } = yield* Nats
    const seen: string[] = []
    const sub = nc.subscribe(subject, {
      callback: (_err, m) => {
        const payload = m.string()
        const first = !seen.includes(payload)
        seen.push(payload)
        if (!first) m.respond(answer(m))
      }
    })
    yield* Effect.addFinalizer(() => Effect.sync(() => sub.unsubscribe()))
    // the subscription is at the server before anything is sent to it
    yield* Effect.promise(() => nc.flush())
    return seen
  })

describe("requests across a nats-server restart", () => {
  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    it.scopedLive(`a request in flight when nats-server gets ${signal} fails as lost at the reconnect; a request sent after it is answered`, () =>
      Effect.gen(function* () {
        const server = yield* restartableServer
        yield* Effect.gen(function* () {
          const { nc } = yield* Nats
          const seen = yield* silentOnce("tf.test.echo", (m) => `echo ${m.string()}`)
          const inFlight = nc.request("tf.test.echo", "lost", { timeout: 120_000 }).then(
            (m) => Either.right(m.string()),
            (e: unknown) => Either.left(e)
          )
          yield* Effect.promise(() => until(async () => seen.includes("lost"), "the request at the subscriber", 60_000))
          yield* server.kill(signal)
          yield* server.start
          const outcome = yield* Effect.promise(() => inFlight)
          expect(Either.isLeft(outcome)).toBe(true)
          const error = Either.isLeft(outcome) ? outcome.left : undefined
          expect(error).toBeInstanceOf(RequestLostInReconnect)
          expect((error as RequestLostInReconnect).subject).toBe("tf.test.echo")
          // the same request again reaches the subscriber, which now answers
          const again = yield* Effect.promise(() => nc.request("tf.test.echo", "lost", { timeout: 120_000 }))
          expect(again.string()).toBe("echo lost")
        }).pipe(Effect.provide(Nats.Default.pipe(Layer.provide(server.settings))))
      })
    )
  }

  it.scopedLive("a JetStream publish whose answer is lost in a restart fails as lost, transient; sent again with its msg-id it is answered", () =>
    Effect.gen(function* () {
      const server = yield* restartableServer
      yield* Effect.gen(function* () {
        const { js } = yield* Nats
        const msgIds: string[] = []
        // stands in for a stream: records each publish's msg-id and answers as JetStream does (a PubAck)
        const seen = yield* silentOnce("tf.test.stored", (m) => {
          msgIds.push(m.headers?.get("Nats-Msg-Id") ?? "")
          return JSON.stringify({ stream: "TEST", seq: 1 })
        })
        const first = js.publish("tf.test.stored", JSON.stringify("result"), { msgID: "result-1", timeout: 120_000 }).then(
          (a) => Either.right(a),
          (e: unknown) => Either.left(e)
        )
        yield* Effect.promise(() => until(async () => seen.length >= 1, "the publish at the subscriber", 60_000))
        yield* server.kill("SIGTERM")
        yield* server.start
        const outcome = yield* Effect.promise(() => first)
        const error = Either.isLeft(outcome) ? outcome.left : undefined
        expect(error).toBeInstanceOf(RequestLostInReconnect)
        expect(isTransient(error)).toBe(true)
        // bus.ts's publish (the same JSON bytes), as its retry sends it
        const ack = yield* publishTrusted("tf.test.stored", "result", { msgId: "result-1", timeoutMs: 120_000 })
        expect(ack.seq).toBe(1)
        expect(seen).toHaveLength(2)
        expect(msgIds).toEqual(["result-1"])
      }).pipe(Effect.provide(Nats.Default.pipe(Layer.provide(server.settings))))
    })
  )

  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    it.scopedLive(`a work-queue message taken before a nats-server ${signal} is acked after the restart (confirmed by the server) and leaves the stream`, () =>
      Effect.gen(function* () {
        const server = yield* restartableServer
        yield* Effect.gen(function* () {
          const { js, jsm } = yield* Nats
          yield* Effect.promise(() => jsm.streams.add({ name: "TEST_WQ", subjects: ["tf.test.wq"], retention: RetentionPolicy.Workqueue, storage: StorageType.File }))
          yield* Effect.promise(() => jsm.consumers.add("TEST_WQ", { durable_name: "w", ack_policy: AckPolicy.Explicit, ack_wait: nanos(120_000), filter_subject: "tf.test.wq" }))
          yield* Effect.promise(() => js.publish("tf.test.wq", JSON.stringify({ n: 1 }), { msgID: "wq-1" }))
          const taken = yield* consume("w", z.object({ n: z.number() }), { stream: "TEST_WQ", oneAtATime: true }).pipe(Stream.take(1), Stream.runCollect)
          const d = Chunk.unsafeHead(taken)
          expect(d.decoded).toEqual(Either.right({ n: 1 }))
          yield* server.kill(signal)
          yield* server.start
          yield* d.ack
          const info = yield* Effect.promise(() => jsm.consumers.info("TEST_WQ", "w"))
          expect(info.num_ack_pending).toBe(0)
          expect((yield* Effect.promise(() => jsm.streams.info("TEST_WQ"))).state.messages).toBe(0)
        }).pipe(Effect.provide(Nats.Default.pipe(Layer.provide(server.settings))))
      })
    )
  }

  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    it.scopedLive(`followers across a nats-server ${signal}: every message stored after they began, once, in order, and nothing older`, () =>
      Effect.gen(function* () {
        const server = yield* restartableServer
        yield* Effect.gen(function* () {
          const { jsm } = yield* Nats
          yield* Effect.promise(() => jsm.streams.add({ name: "TEST_RES", subjects: ["tf.test.res.>"], storage: StorageType.File }))
          const send = (ids: ReadonlyArray<string>) => Effect.forEach(ids, (id) => publishRaw(`tf.test.res.${id}`, id, `res-${id}`), { discard: true })
          const range = (p: string, n: number) => Array.from({ length: n }, (_, i) => `${p}${i + 1}`)
          // stored before the followers begin: a "new" follower must never see these
          yield* send(range("old", 5))
          const early: string[] = []
          const idle: string[] = []
          const all: string[] = []
          const collect = (into: string[], stream: Stream.Stream<ReadonlyArray<JsMsg> | JsMsg, unknown, Nats>) =>
            Effect.forkScoped(Stream.runForEach(stream, (m) => Effect.sync(() => (Array.isArray(m) ? m : [m]).forEach((x: JsMsg) => into.push(x.string())))))
          // a follower's consumer exists at the server once it has fixed where it starts
          const followers = () => jsm.streams.info("TEST_RES").then((i) => i.state.consumer_count)
          // what the reporter follows with (a callback, no Stream)
          const into = (list: string[]) => followInto("tf.test.res.>", { stream: "TEST_RES", deliverNew: true }, (m) => void list.push(m.string()), () => undefined)
          yield* into(early)
          yield* collect(all, follow("tf.test.res.>", { stream: "TEST_RES" }))
          // what tickflow/client iterates (plain nats.js, no Effect)
          const { nc, js } = yield* Nats
          const iterable = yield* Effect.acquireRelease(
            Effect.promise(() => orderedFollowerIterable({ nc, js, stream: "TEST_RES", filter: "tf.test.res.>", start: "all", maxMessages: 16, expiresMs: 5_000 })),
            (f) => Effect.sync(() => f.stop())
          )
          const iterated: string[] = []
          void (async () => {
            for await (const m of iterable) iterated.push(m.string())
          })()
          yield* Effect.promise(() => until(async () => (await followers()) >= 3, "three followers", 60_000))
          yield* send(range("a", 3))
          yield* Effect.promise(() => until(async () => early.length >= 3 && all.length >= 8 && iterated.length >= 8, "the first messages at the followers", 60_000))
          // this one has seen nothing when the server goes
          yield* into(idle)
          yield* Effect.promise(() => until(async () => (await followers()) >= 4, "the fourth follower", 60_000))
          yield* server.kill(signal)
          yield* server.start
          const back = Date.now()
          const after = range("b", 20)
          yield* send(after)
          yield* Effect.promise(() =>
            until(async () => early.length >= 23 && idle.length >= 20 && all.length >= 28 && iterated.length >= 28, "every message at the followers", 120_000)
          )
          console.log(`RECOVERY followers after nats-server ${signal}: all 20 new messages at all four followers ${Date.now() - back} ms after the server was back`)
          yield* Effect.sleep("300 millis")
          expect(early).toEqual([...range("a", 3), ...after])
          expect(idle).toEqual(after)
          expect(all).toEqual([...range("old", 5), ...range("a", 3), ...after])
          expect(iterated).toEqual(all)
        }).pipe(Effect.provide(Nats.Default.pipe(Layer.provide(server.settings))))
      })
    )
  }
})
