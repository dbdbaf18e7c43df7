/**
 * Reading a whole object of an object store with stream gets, no consumer.
 *
 * nats.js 3's `getBlob` reads an object's chunks through an ordered push consumer and never
 * deletes it: measured, every get left one consumer on the bucket's stream (and its subscription
 * in the client) for as long as the connection lived, so an executor fetching a slice per new
 * data range piled them up (26 after a few batches of the pipeline benchmark). Here the object's
 * info is read as nats.js reads it (the last message on its meta subject), then its chunks by
 * sequence: the first with `next_by_subj`, the rest at the sequences after it (a writer stores
 * an object's chunks one after another), each checked to be on the object's chunk subject, with
 * a `next_by_subj` walk when another writer's messages sit between them. The bytes are checked
 * against the object's size and SHA-256 digest, as nats.js does.
 */
import { createHash } from "node:crypto"
import type { JetStreamManager, StoredMsg } from "@nats-io/jetstream"
import type { ObjectStore } from "@nats-io/obj"

/** Chunks requested at once. */
const IN_FLIGHT = 16

export class ObjectReadError extends Error {
  override readonly name = "ObjectReadError"
}

/** The digest nats.js stores (`SHA-256=` + base64url, padded or not) as bytes. */
const digestBytes = (digest: string): Buffer | undefined => {
  if (!digest.startsWith("SHA-256=")) return undefined
  return Buffer.from(digest.slice("SHA-256=".length).replace(/-/g, "+").replace(/_/g, "/"), "base64")
}

const getMessage = (jsm: JetStreamManager, stream: string, query: { seq: number; next_by_subj?: string }): Promise<StoredMsg | null> =>
  jsm.streams.getMessage(stream, query).catch((e: unknown) => (/no message found|not found|10037/i.test(String((e as Error)?.message)) ? null : Promise.reject(e)))

/** The bytes of object `name` of `store` (bucket `bucket`), or null when there is none (or it is deleted). */
export const readObjectAsync = async (jsm: JetStreamManager, store: ObjectStore, bucket: string, name: string): Promise<Uint8Array | null> => {
  const info = await store.info(name)
  if (info === null || info.deleted) return null
  // links are not used by tickflow; nats.js resolves them
  if (info.options?.link) return store.getBlob(name)
  const expected = digestBytes(info.digest)
  if (expected === undefined) throw new ObjectReadError(`object ${name}: unknown digest ${info.digest.slice(0, 40)}`)
  const stream = `OBJ_${bucket}`
  const subject = `$O.${bucket}.C.${info.nuid}`
  const out = new Uint8Array(info.size)
  const hash = createHash("sha256")
  let at = 0
  let seq = 0
  let read = 0
  const take = (m: StoredMsg) => {
    if (at + m.data.length > info.size) throw new ObjectReadError(`object ${name}: more bytes than its size ${info.size}`)
    out.set(m.data, at)
    at += m.data.length
    hash.update(m.data)
    seq = m.seq
    read++
  }
  while (read < info.chunks) {
    const first = await getMessage(jsm, stream, { seq: seq + 1, next_by_subj: subject })
    if (first === null) throw new ObjectReadError(`object ${name}: chunk ${read + 1} of ${info.chunks} is missing`)
    take(first)
    // the chunks right after, as long as they are this object's
    while (read < info.chunks) {
      const n = Math.min(IN_FLIGHT, info.chunks - read)
      const batch = await Promise.all(Array.from({ length: n }, (_, i) => getMessage(jsm, stream, { seq: seq + 1 + i })))
      const run = batch.findIndex((m) => m === null || m.subject !== subject)
      for (const m of run < 0 ? batch : batch.slice(0, run)) take(m!)
      if (run >= 0) break // something else in between: find the next chunk by subject
    }
  }
  if (at !== info.size) throw new ObjectReadError(`object ${name}: ${at} bytes read, its size is ${info.size}`)
  if (!hash.digest().equals(expected)) throw new ObjectReadError(`object ${name}: the bytes read do not match its SHA-256 digest`)
  return out
}
