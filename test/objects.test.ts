/**
 * Objects read with stream gets (src/streams/objects.ts) on a real nats-server: what nats.js
 * stored comes back byte for byte, also when another object's chunks sit between its own; a
 * missing chunk or foreign bytes on its subject are errors, not a short or corrupt slice; and no
 * read leaves a consumer behind (nats.js's getBlob left one per read).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { headers } from "@nats-io/transport-node"
import { Nats } from "../src/streams/connection.js"
import { ObjectReadError, readObjectAsync } from "../src/streams/objects.js"
import { natsTestLayer } from "./support/nats.js"

const BUCKET = "objtest"
const STREAM = `OBJ_${BUCKET}`

/** Deterministic bytes that differ from chunk to chunk (a misplaced chunk changes the result). */
const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7 + (i >> 10)) & 0xff)

const setup = Effect.gen(function* () {
  const { objm, jsm } = yield* Nats
  const store = yield* Effect.promise(() => objm.create(BUCKET))
  return { store, jsm }
})

/** The stream sequences of an object's chunks, in order (a scan of the whole test stream). */
const chunkSeqs = (nuid: string) =>
  Effect.flatMap(Nats, ({ jsm }) =>
    Effect.promise(async () => {
      const out: number[] = []
      const s = await jsm.streams.info(STREAM)
      for (let seq = s.state.first_seq; seq <= s.state.last_seq; seq++) {
        const m = await jsm.streams.getMessage(STREAM, { seq }).catch(() => null)
        if (m?.subject === `$O.${BUCKET}.C.${nuid}`) out.push(seq)
      }
      return out
    })
  )

const consumersLeft = Effect.flatMap(Nats, ({ jsm }) => Effect.promise(async () => (await jsm.consumers.list(STREAM).next()).length))

describe("readObjectAsync", () => {
  it.scopedLive("reads objects of 0, 1 and many chunks as stored, chunks of two objects written at once included; no consumer left", () =>
    Effect.gen(function* () {
      const { store, jsm } = yield* setup
      const small = bytes(1_000, 1)
      const big = bytes(300_000, 2) // three 128 KiB chunks
      yield* Effect.promise(() => store.putBlob({ name: "empty" }, new Uint8Array(0)))
      yield* Effect.promise(() => store.putBlob({ name: "small" }, small))
      yield* Effect.promise(() => store.putBlob({ name: "big" }, big))
      // two objects put at once: their chunks interleave in the stream
      const a = bytes(700_000, 3)
      const b = bytes(650_000, 4)
      yield* Effect.promise(() => Promise.all([store.putBlob({ name: "a" }, a), store.putBlob({ name: "b" }, b)]))
      const info = yield* Effect.promise(async () => [await store.info("a"), await store.info("b")])
      const seqs = yield* Effect.promise(async () => {
        const out: string[] = []
        const s = await jsm.streams.info(STREAM)
        for (let seq = s.state.first_seq; seq <= s.state.last_seq; seq++) out.push((await jsm.streams.getMessage(STREAM, { seq }))!.subject)
        return out
      })
      const chunkSubjects = seqs.filter((s) => s === `$O.${BUCKET}.C.${info[0]!.nuid}` || s === `$O.${BUCKET}.C.${info[1]!.nuid}`)
      // the interleaving this test is about did happen (a chunk of b before the last chunk of a)
      expect(chunkSubjects.findIndex((s) => s.endsWith(info[1]!.nuid))).toBeLessThan(chunkSubjects.lastIndexOf(`$O.${BUCKET}.C.${info[0]!.nuid}`))

      for (const [name, want] of [["empty", new Uint8Array(0)], ["small", small], ["big", big], ["a", a], ["b", b]] as const) {
        const got = yield* Effect.promise(() => readObjectAsync(jsm, store, BUCKET, name))
        expect(got, name).not.toBeNull()
        expect(Buffer.from(got!).equals(Buffer.from(want)), name).toBe(true)
      }
      expect(yield* Effect.promise(() => readObjectAsync(jsm, store, BUCKET, "nothing"))).toBeNull()
      expect(yield* consumersLeft).toBe(0)
    }).pipe(Effect.provide(natsTestLayer()))
  )

  it.scopedLive("a bucket whose stream takes no direct gets (made by an older client) is read through stream gets", () =>
    Effect.gen(function* () {
      const { store, jsm } = yield* setup
      const big = bytes(300_000, 7)
      yield* Effect.promise(() => store.putBlob({ name: "big" }, big))
      const info = yield* Effect.promise(() => jsm.streams.info(STREAM))
      yield* Effect.promise(() => jsm.streams.update(STREAM, { ...info.config, allow_direct: false }))
      expect((yield* Effect.promise(() => jsm.streams.info(STREAM))).config.allow_direct).toBe(false)
      const got = yield* Effect.promise(() => readObjectAsync(jsm, store, BUCKET, "big"))
      expect(Buffer.from(got!).equals(Buffer.from(big))).toBe(true)
      expect(yield* consumersLeft).toBe(0)
    }).pipe(Effect.provide(natsTestLayer()))
  )

  it.scopedLive("a missing chunk, or a chunk with other bytes, is an error", () =>
    Effect.gen(function* () {
      const { store, jsm } = yield* setup
      const { js } = yield* Nats
      yield* Effect.promise(() => store.putBlob({ name: "gap" }, bytes(300_000, 5)))
      yield* Effect.promise(() => store.putBlob({ name: "extra" }, bytes(200_000, 6)))
      const gap = (yield* Effect.promise(() => store.info("gap")))!
      const extra = (yield* Effect.promise(() => store.info("extra")))!
      // delete gap's second chunk
      const second = (yield* chunkSeqs(gap.nuid))[1]!
      yield* Effect.promise(() => jsm.streams.deleteMessage(STREAM, second))
      const e1 = yield* Effect.promise(() => readObjectAsync(jsm, store, BUCKET, "gap").then(() => undefined, (e: unknown) => e))
      expect(e1).toBeInstanceOf(ObjectReadError)
      expect(String(e1)).toMatch(/chunk 3 of 3 is missing|bytes read/)
      // its last chunk replaced by one of the same length and other bytes
      const last = yield* Effect.promise(async () => (await jsm.streams.getMessage(STREAM, { last_by_subj: `$O.${BUCKET}.C.${extra.nuid}` }))!)
      yield* Effect.promise(() => jsm.streams.deleteMessage(STREAM, last.seq))
      yield* Effect.promise(() => js.publish(`$O.${BUCKET}.C.${extra.nuid}`, bytes(last.data.length, 9), { headers: headers() }))
      const e2 = yield* Effect.promise(() => readObjectAsync(jsm, store, BUCKET, "extra").then(() => undefined, (e: unknown) => e))
      expect(e2).toBeInstanceOf(ObjectReadError)
      expect(String(e2)).toMatch(/do not match its SHA-256 digest/)
    }).pipe(Effect.provide(natsTestLayer()))
  )
})
