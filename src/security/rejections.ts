/**
 * Where rejected submissions are answered: never in the batch they named (that batch may be
 * someone else's), but under the submission's own stream sequence — the `seq` of the PubAck
 * the sender got back — in KV `tf_rejections` (bucket-wide max_age: per-key TTL is ignored on
 * 2.9, so every rejection expires with the bucket's age limit) and live on the core subject
 * `tf.rejected.<seq>` (not stored by any stream).
 */
import { Effect } from "effect"
import { StorageType } from "@nats-io/jetstream"
import type { KV } from "@nats-io/kv"
import { z } from "zod"
import { Id } from "../schemas/batch.js"
import { WIRE_VERSION } from "../schemas/common.js"
import { Nats } from "../streams/connection.js"
import { BusError } from "../streams/errors.js"
import { DEFAULT_TOPOLOGY, ReplicaConfig } from "../streams/topology.js"

export const REJECTION_BUCKET = "tf_rejections"
export const rejectionSubject = (seq: number) => `tf.rejected.${seq}`

export const Rejection = z.object({
  v: z.literal(WIRE_VERSION),
  /** stream sequence of the submission in TF_PIPELINE (the PubAck's seq) */
  seq: z.number().int(),
  /** the ids the submission named, when they were valid ids (nothing was written under them) */
  batch_id: Id.optional(),
  scenario_id: Id.optional(),
  reason: z.string(),
  at: z.string()
})
export type Rejection = z.infer<typeof Rejection>

/** Create the bucket (actor, admin) or open it (roles that only read it). */
export const openRejectionBucket = (ttlMs: number) =>
  Effect.gen(function* () {
    const { kvm } = yield* Nats
    // with the replicas the topology uses (TICKFLOW_REPLICAS), whoever creates it first
    const { replicas } = yield* ReplicaConfig.pipe(Effect.orElseSucceed(() => ({ replicas: DEFAULT_TOPOLOGY.replicas })))
    return yield* Effect.tryPromise({
      try: () =>
        kvm.create(REJECTION_BUCKET, { history: 1, ttl: ttlMs, maxValueSize: 16 * 1024, storage: StorageType.File, replicas }),
      catch: (cause) => cause
    }).pipe(
      Effect.orElse(() =>
        Effect.tryPromise({
          try: () => kvm.open(REJECTION_BUCKET),
          catch: (cause) => new BusError({ op: `open KV ${REJECTION_BUCKET}`, cause, transient: true })
        })
      )
    )
  })

/** Store and announce a rejection. */
export const recordRejection = (kv: KV, rejection: Rejection) =>
  Effect.gen(function* () {
    const { nc } = yield* Nats
    const body = JSON.stringify(rejection)
    yield* Effect.tryPromise({
      try: () => kv.put(String(rejection.seq), body),
      catch: (cause) => new BusError({ op: `kv put ${REJECTION_BUCKET}.${rejection.seq}`, cause, transient: true })
    })
    yield* Effect.sync(() => nc.publish(rejectionSubject(rejection.seq), body))
  })

/** The rejection of the submission stored at `seq`, if it was rejected (and has not expired). */
export const rejectionOf = (kv: KV, seq: number) =>
  Effect.tryPromise({
    try: async () => {
      const e = await kv.get(String(seq))
      if (!e || e.operation !== "PUT" || e.length === 0) return undefined
      const r = Rejection.safeParse(e.json())
      return r.success ? r.data : undefined
    },
    catch: (cause) => new BusError({ op: `kv get ${REJECTION_BUCKET}.${seq}`, cause, transient: true })
  })
