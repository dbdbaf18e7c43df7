import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Stream } from "effect"
import { existsSync } from "node:fs"
import { z } from "zod"
import { embeddedNatsServer } from "../src/streams/embedded.js"
import { Nats, NatsSettings } from "../src/streams/connection.js"
import { consume, kvCreate, kvGet, kvUpdate, publish } from "../src/streams/bus.js"
import { ensureTopology, STREAM, SUBJECT } from "../src/streams/topology.js"
import { busTestLayer, natsTestLayer } from "./support/nats.js"

const Ping = z.object({ n: z.number().int() })

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe("embedded nats-server", () => {
  it.live("is gone after its scope closes: no process, no temp dir", () =>
    Effect.gen(function* () {
      const server = yield* Effect.scoped(
        Effect.gen(function* () {
          const s = yield* embeddedNatsServer()
          expect(isAlive(s.pid)).toBe(true)
          expect(existsSync(s.storeDir)).toBe(true)
          return s
        })
      )
      expect(isAlive(server.pid)).toBe(false)
      expect(existsSync(server.storeDir)).toBe(false)
    })
  )

  it.live("refuses a client without credentials (nats.conf users apply)", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const s = yield* embeddedNatsServer()
        const { connect } = yield* Effect.promise(() => import("@nats-io/transport-node"))
        const result = yield* Effect.either(Effect.tryPromise(() => connect({ servers: s.url, reconnect: false })))
        expect(Either.isLeft(result)).toBe(true)
      })
    )
  )
})

describe("topology", () => {
  it.scopedLive("is idempotent: a second and third ensure change nothing", () =>
    Effect.gen(function* () {
      yield* ensureTopology()
      const { jsm } = yield* Nats
      const before = yield* Effect.promise(() => jsm.consumers.info(STREAM.pipeline, "executor"))
      yield* ensureTopology()
      yield* ensureTopology()
      const streams = yield* Effect.promise(async () => {
        const names: string[] = []
        for await (const s of jsm.streams.list()) names.push(s.config.name)
        return names.sort()
      })
      expect(streams).toEqual(
        ["KV_tf_batches", "KV_tf_cache", "KV_tf_claims", "KV_tf_coverage", "KV_tf_rejections", "KV_tf_runs", "KV_tf_sessions", "OBJ_tf_data", "OBJ_tf_strategies", "TF_DLQ", "TF_EVENTS", "TF_PIPELINE", "TF_RESULTS", "TF_SESSIONS"].sort()
      )
      const after = yield* Effect.promise(() => jsm.consumers.info(STREAM.pipeline, "executor"))
      expect(after.config.filter_subject).toBe("tf.scn.exec.>")
      expect(after.created).toBe(before.created)
    }).pipe(Effect.provide(natsTestLayer()))
  )

  it.scopedLive("moves telemetry out of a results stream made before TF_EVENTS: results stay, events go to TF_EVENTS", () =>
    Effect.gen(function* () {
      const { js, jsm } = yield* Nats
      // the results stream as releases before the split made it
      yield* Effect.promise(() => jsm.streams.add({ name: STREAM.results, subjects: ["tf.res.>", "tf.evt.>"] }))
      yield* Effect.promise(() => js.publish(SUBJECT.result("old", "s1"), "{}"))
      yield* ensureTopology()
      const results = yield* Effect.promise(() => jsm.streams.info(STREAM.results))
      const events = yield* Effect.promise(() => jsm.streams.info(STREAM.events))
      expect(results.config.subjects).toEqual(["tf.res.>"])
      expect(results.state.messages).toBe(1)
      expect(events.config.subjects).toEqual(["tf.evt.>"])
      const ack = yield* Effect.promise(() => js.publish(SUBJECT.batchEvent("new"), "{}"))
      expect(ack.stream).toBe(STREAM.events)
    }).pipe(Effect.provide(natsTestLayer()))
  )
})

describe("publish and consume", () => {
  it.scopedLive("a duplicate Nats-Msg-Id is stored once", () =>
    Effect.gen(function* () {
      const { jsm } = yield* Nats
      const a = yield* publish(SUBJECT.result("b1", "s1"), Ping, { n: 1 }, { msgId: "res:b1:s1" })
      const b = yield* publish(SUBJECT.result("b1", "s1"), Ping, { n: 1 }, { msgId: "res:b1:s1" })
      expect(a.duplicate).toBeFalsy()
      expect(b.duplicate).toBe(true)
      const info = yield* Effect.promise(() => jsm.streams.info(STREAM.results))
      expect(info.state.messages).toBe(1)
    }).pipe(Effect.provide(busTestLayer()))
  )

  it.scopedLive("acks remove work, nak redelivers after the delay, term stops redelivery", () =>
    Effect.gen(function* () {
      const { jsm } = yield* Nats
      for (const n of [1, 2, 3]) yield* publish(SUBJECT.stage("avail", "b1"), Ping, { n }, { msgId: `p${n}` })
      const seen: Array<{ n: number; count: number }> = []
      yield* consume("availability", Ping).pipe(
        Stream.mapEffect((d) =>
          Effect.gen(function* () {
            const v = Either.getOrThrow(d.decoded)
            seen.push({ n: v.n, count: d.deliveryCount })
            if (v.n === 1) yield* d.ack
            else if (v.n === 2 && d.deliveryCount === 1) yield* d.nak(200)
            else if (v.n === 2) yield* d.ack
            else yield* d.term
          })
        ),
        Stream.take(4),
        Stream.runDrain
      )
      expect(seen).toContainEqual({ n: 2, count: 2 })
      expect(seen.filter((s) => s.n === 3)).toHaveLength(1)
      // acked and termed messages leave the work queue
      yield* Effect.sleep("300 millis")
      const info = yield* Effect.promise(() => jsm.streams.info(STREAM.pipeline))
      expect(info.state.messages).toBe(0)
    }).pipe(Effect.provide(busTestLayer({ ackWaitMs: 2_000 })))
  )

  it.scopedLive("an undecodable message is delivered as a decode error naming the field", () =>
    Effect.gen(function* () {
      const { js } = yield* Nats
      yield* Effect.promise(() => js.publish(SUBJECT.stage("avail", "b2"), JSON.stringify({ n: "x" })))
      const got = yield* consume("availability", Ping).pipe(Stream.take(1), Stream.runCollect)
      const d = Chunk.unsafeGet(got, 0)
      expect(Either.isLeft(d.decoded)).toBe(true)
      if (Either.isLeft(d.decoded)) expect(d.decoded.left.problems[0]).toBe('n: "x" (string) is not a number')
      yield* d.term
    }).pipe(Effect.provide(busTestLayer()))
  )

  it.scopedLive("KV create is a claim; CAS update survives concurrent writers", () =>
    Effect.gen(function* () {
      const { Bus } = yield* Effect.promise(() => import("../src/streams/bus.js"))
      const bus = yield* Bus
      expect(yield* kvCreate(bus.claims, "slice-1", { by: "a" })).toBe(true)
      expect(yield* kvCreate(bus.claims, "slice-1", { by: "b" })).toBe(false)
      const Counter = z.object({ n: z.number() })
      yield* Effect.all(
        Array.from({ length: 20 }, () => kvUpdate(bus.batches, "counter", Counter, (c) => ({ n: (c?.n ?? 0) + 1 }))),
        { concurrency: 10 }
      )
      const final = yield* kvGet(bus.batches, "counter", Counter)
      expect(final?.value.n).toBe(20)
    }).pipe(Effect.provide(busTestLayer()))
  )

  it.scopedLive("settings point at the embedded server", () =>
    Effect.gen(function* () {
      const s = yield* NatsSettings
      expect(s.servers).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/)
      expect(s.embedded).toBeDefined()
    }).pipe(Effect.provide(natsTestLayer()))
  )
})
