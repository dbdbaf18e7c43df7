/**
 * Loaded data slices, by content key: a small in-process LRU in front of the object store
 * `tf_data`, so a process that loaded or fetched a slice once does not fetch it again.
 */
import { Effect } from "effect"
import { decodeSlice, loadSlice, type SliceRequirement } from "../data/index.js"
import type { PriceSeries } from "../engine/types.js"
import type { SliceRef, SliceSpec } from "../schemas/wire.js"
import { Bus, isTransient } from "../streams/bus.js"
import { BusError } from "../streams/errors.js"

const MAX_CACHE_BYTES = Number(process.env.TICKFLOW_SLICE_CACHE_MB ?? 1024) * 1024 * 1024
const cache = new Map<string, { series: PriceSeries; bytes: number }>()
let cachedBytes = 0

const seriesBytes = (s: PriceSeries) =>
  s.ts.byteLength + s.close.byteLength + (s.open?.byteLength ?? 0) + (s.high?.byteLength ?? 0) + (s.low?.byteLength ?? 0) + (s.volume?.byteLength ?? 0) + (s.synthetic?.byteLength ?? 0)

export const rememberSlice = (key: string, series: PriceSeries) => {
  if (cache.has(key)) return
  const bytes = seriesBytes(series)
  cache.set(key, { series, bytes })
  cachedBytes += bytes
  // Map iteration order is insertion order: the first entries are the least recently used.
  for (const [k, v] of cache) {
    if (cachedBytes <= MAX_CACHE_BYTES || cache.size <= 1) break
    cache.delete(k)
    cachedBytes -= v.bytes
  }
}

const touch = (key: string) => {
  const hit = cache.get(key)
  if (!hit) return undefined
  cache.delete(key)
  cache.set(key, hit)
  return hit.series
}

export const sliceStats = { fetched: 0, cacheHits: 0 }

/** The series behind a slice reference: memory, else the object store. */
export const fetchSlice = (ref: SliceRef) =>
  Effect.gen(function* () {
    const hit = touch(ref.key)
    if (hit) {
      sliceStats.cacheHits++
      return hit
    }
    const bus = yield* Bus
    const bytes = yield* Effect.tryPromise({
      try: () => bus.data.getBlob(ref.key),
      catch: (cause) => new BusError({ op: `object get ${ref.key}`, cause, transient: isTransient(cause) })
    })
    if (!bytes) return yield* Effect.fail(new BusError({ op: `object get ${ref.key}`, cause: "slice is not in the object store", transient: true }))
    const series = decodeSlice(bytes)
    sliceStats.fetched++
    rememberSlice(ref.key, series)
    return series
  })

export const requirementFor = (slice: SliceSpec, symbol: string): SliceRequirement => ({
  symbol,
  freq: slice.freq,
  start: slice.start_date,
  end: slice.end_date,
  warmupBars: slice.warmup_bars
})

/** Direct mode: an executor that can read the catalog loads the slice itself. */
export const loadSliceDirect = (root: string, slice: SliceSpec, ref: SliceRef) =>
  Effect.gen(function* () {
    const hit = touch(ref.key)
    if (hit) return hit
    const loaded = yield* loadSlice(root, requirementFor(slice, ref.symbol))
    rememberSlice(ref.key, loaded.series)
    return loaded.series
  })
