/**
 * AckedPublisher (bulk JetStream publishes, acks gathered on one inbox) against a real
 * nats-server: every message acknowledged with its own stream sequence, de-duplication by
 * msg-id reported as the server reports it, an error reply or "no stream" as a failed outcome,
 * and acks lost with a server restart failing at the reconnect rather than at the timeout.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Nats } from "../src/streams/connection.js"
import { publishManyTrusted } from "../src/streams/bus.js"
import { isTransient } from "../src/streams/bus.js"
import { natsTestLayer } from "./support/nats.js"
import { restartableServer } from "./support/restartable.js"

const enc = (s: string) => new TextEncoder().encode(s)

describe("AckedPublisher", () => {
  it.scopedLive("acknowledges each message with its own sequence; a repeated msg-id is a duplicate; an unknown subject fails", () =>
    Effect.gen(function* () {
      const { jsm, publisher } = yield* Nats
      yield* Effect.promise(() => jsm.streams.add({ name: "ACKT", subjects: ["ackt.>"], duplicate_window: 60_000_000_000 }))
      const messages = Array.from({ length: 1_000 }, (_, i) => ({ subject: `ackt.${i % 7}`, payload: enc(JSON.stringify({ i })), msgId: `m${i}` }))
      const first = yield* Effect.promise(() => publisher.publishAll(messages, 10_000))
      expect(first.every((o) => o.ok)).toBe(true)
      const seqs = first.map((o) => (o.ok ? o.ack.seq : -1))
      expect(new Set(seqs).size).toBe(1_000)
      expect(first.every((o) => o.ok && o.ack.stream === "ACKT" && !o.ack.duplicate)).toBe(true)
      // the stream holds them in publish order (one connection)
      const stored = yield* Effect.promise(() => jsm.streams.getMessage("ACKT", { seq: seqs[500] }))
      expect(stored!.json<{ i: number }>().i).toBe(500)

      const again = yield* Effect.promise(() => publisher.publishAll([messages[3], { subject: "ackt.x", payload: enc("{}"), msgId: "new" }], 10_000))
      expect(again[0]).toMatchObject({ ok: true, ack: { duplicate: true, seq: seqs[3] } })
      expect(again[1]).toMatchObject({ ok: true, ack: { duplicate: false } })
      expect((yield* Effect.promise(() => jsm.streams.info("ACKT"))).state.messages).toBe(1_001)

      // no stream listens on this subject: the server answers "no responders", a transient failure
      const none = yield* Effect.promise(() => publisher.publishAll([{ subject: "nostream.here", payload: enc("{}"), msgId: "x" }], 5_000))
      expect(none[0].ok).toBe(false)
      if (!none[0].ok) expect(isTransient(none[0].error)).toBe(true)

      // an error reply from the stream (a message above the stream's max size) fails that message only
      yield* Effect.promise(() => jsm.streams.add({ name: "ACKSMALL", subjects: ["acksmall.>"], max_msg_size: 64 }))
      const mixed = yield* Effect.promise(() =>
        publisher.publishAll(
          [
            { subject: "acksmall.a", payload: enc("x".repeat(200)), msgId: "big" },
            { subject: "acksmall.b", payload: enc("{}"), msgId: "small" }
          ],
          10_000
        )
      )
      expect(mixed[0].ok).toBe(false)
      if (!mixed[0].ok) expect(mixed[0].error.message).toMatch(/maximum|size/i)
      expect(mixed[1].ok).toBe(true)
    }).pipe(Effect.provide(natsTestLayer()))
  )

  it.scopedLive(
    "publishes across a server restart: nothing lost, nothing stored twice",
    () =>
      Effect.gen(function* () {
        const server = yield* restartableServer
        const nats = Nats.Default.pipe(Layer.provide(server.settings))
        yield* Effect.gen(function* () {
          const { jsm } = yield* Nats
          yield* Effect.promise(() => jsm.streams.add({ name: "ACKR", subjects: ["ackr.>"], duplicate_window: 120_000_000_000 }))
          const bulk = (from: number) => Array.from({ length: 200 }, (_, i) => ({ subject: `ackr.${from + i}`, value: { i: from + i }, msgId: `r${from + i}` }))
          yield* publishManyTrusted(bulk(0))
          // the next bulks are published while the server is gone; they complete once it is back
          yield* server.kill("SIGTERM")
          const fiber = yield* Effect.forEach([200, 400, 600], (from) => publishManyTrusted(bulk(from)), { discard: true }).pipe(Effect.fork)
          yield* Effect.sleep("500 millis")
          yield* server.start
          const back = Date.now()
          const exit = yield* fiber.await
          expect(exit._tag).toBe("Success")
          console.log(`RECOVERY acked publish: 600 messages published during the outage acknowledged ${Date.now() - back} ms after the server was back`)
          const info = yield* Effect.promise(() => jsm.streams.info("ACKR", { subjects_filter: "ackr.>" }))
          const perSubject = Object.values(info.state.subjects ?? {})
          expect(perSubject).toHaveLength(800)
          expect(perSubject.every((n) => n === 1)).toBe(true)
        }).pipe(Effect.provide(nats))
      }),
    120_000
  )
})
