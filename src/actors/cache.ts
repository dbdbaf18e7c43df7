/**
 * The result cache (KV `tf_cache`): thin results by result key, one entry per execution chunk
 * under `<slice hash>.<batch>.<chunk>` (see result-key.ts). Executors write an entry per chunk;
 * the requirements phase lists a group's slice once and answers every scenario whose key it
 * finds, so a resubmission, a resume or a re-run never loads data or runs the engine again.
 */
import { Effect } from "effect"
import { z } from "zod"
import { Bus, kvKeysAsync } from "../streams/bus.js"
import { Nats } from "../streams/connection.js"
import { BUCKET } from "../streams/topology.js"
import { BusError } from "../streams/errors.js"
import { isTransient } from "../streams/bus.js"
import type { ScenarioResult } from "../schemas/results.js"
import { WIRE_VERSION } from "../schemas/common.js"
import { cacheEntryKey } from "./result-key.js"

/** Most entries one lookup reads: beyond that the slice is a hot spot better recomputed in part. */
const MAX_ENTRIES_PER_LOOKUP = 5_000

const CacheEntry = z.object({ v: z.literal(1), results: z.record(z.string(), z.unknown()) })

const ENTRY_HEAD = Buffer.from(`{"v":1,"results":{`)
const ENTRY_TAIL = Buffer.from("}}")

/** A published result as the cache entry needs it: the fields that decide whether it is stored, and its bytes. */
export interface CacheCandidate {
  readonly result: Pick<ScenarioResult, "status" | "result_key" | "cached">
  readonly payload: Uint8Array
}

/**
 * Store the successful results of one execution chunk (once per chunk, not per scenario). Each
 * result comes with the UTF-8 JSON it was published as (`payload`): the entry is put together
 * from those bytes, not encoded a second time. The text may carry the submission id; answers
 * from the cache drop it.
 */
export const storeCached = (
  sliceKey: string,
  batchId: string,
  groupId: string,
  results: ReadonlyArray<CacheCandidate>
) =>
  Effect.gen(function* () {
    const parts: Uint8Array[] = [ENTRY_HEAD]
    const seen = new Set<string>()
    for (const { result: r, payload } of results) {
      if (r.status !== "success" || !r.result_key || r.cached || seen.has(r.result_key)) continue
      parts.push(Buffer.from(`${seen.size === 0 ? "" : ","}${JSON.stringify(r.result_key)}:`), payload)
      seen.add(r.result_key)
    }
    if (seen.size === 0) return
    parts.push(ENTRY_TAIL)
    const { cache } = yield* Bus
    yield* Effect.tryPromise({
      try: () => cache.put(cacheEntryKey(sliceKey, batchId, groupId), Buffer.concat(parts)),
      catch: (cause) => new BusError({ op: "cache put", cause, transient: isTransient(cause) })
    })
  })

/**
 * The cheapest check that still catches a wrong shape (entries are written by executors only;
 * the full result schema cost ~50 µs a result, most of answering a cached sweep): this wire
 * version, a success with its metrics and result key, and the fields an answer copies.
 */
const isStoredSuccess = (v: unknown): v is ScenarioResult => {
  if (v === null || typeof v !== "object") return false
  const r = v as Record<string, unknown>
  return (
    r.v === WIRE_VERSION &&
    r.status === "success" &&
    typeof r.result_key === "string" &&
    typeof r.engine_version === "string" &&
    typeof r.strategy === "string" &&
    r.metrics !== null &&
    typeof r.metrics === "object" &&
    Array.isArray(r.warnings) &&
    r.params !== null &&
    typeof r.params === "object" &&
    Array.isArray(r.universe) &&
    r.timings !== null &&
    typeof r.timings === "object"
  )
}

/**
 * Every cached result of a slice, by result key. A miss costs one stream-info request (the
 * subjects stored under the slice's prefix); a hit one get per stored chunk of that slice.
 * (kvKeysAsync: not kv.keys(), whose consumer nats.js leaves behind).
 */
export const lookupCached = (sliceKey: string) =>
  Effect.gen(function* () {
    const { cache } = yield* Bus
    const { jsm } = yield* Nats
    const found = new Map<string, ScenarioResult>()
    const keys = yield* Effect.tryPromise({
      try: async () => (await kvKeysAsync(jsm, BUCKET.cache, `${sliceKey}.>`)).slice(0, MAX_ENTRIES_PER_LOOKUP),
      catch: (cause) => new BusError({ op: "cache keys", cause, transient: isTransient(cause) })
    })
    yield* Effect.forEach(
      keys,
      (k) =>
        Effect.tryPromise({
          try: () => cache.get(k),
          catch: (cause) => new BusError({ op: `cache get ${k}`, cause, transient: isTransient(cause) })
        }).pipe(
          Effect.map((e) => {
            if (!e || e.operation !== "PUT" || e.length === 0) return
            let raw: unknown
            try {
              raw = e.json()
            } catch {
              return // not JSON: passed over like any entry of a wrong shape
            }
            const entry = CacheEntry.safeParse(raw)
            if (!entry.success) return
            for (const [key, value] of Object.entries(entry.data.results)) if (isStoredSuccess(value)) found.set(key, value)
          })
        ),
      { concurrency: 16, discard: true }
    )
    return found
  })
