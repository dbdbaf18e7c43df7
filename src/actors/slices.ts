/**
 * Loaded data slices, by content key: the process's LRU (SliceCache) in front of the object
 * store `tf_data`, so a process that loaded or fetched a slice once does not fetch it again.
 */
import { Effect } from "effect"
import { decodeSlice, loadSlice, type SliceRequirement } from "../data/index.js"
import type { PriceSeries } from "../engine/types.js"
import type { SliceRef, SliceSpec } from "../schemas/wire.js"
import { Bus, isTransient } from "../streams/bus.js"
import { BusError } from "../streams/errors.js"
import { Nats } from "../streams/connection.js"
import { readObjectAsync } from "../streams/objects.js"
import { OBJECT_STORE } from "../streams/topology.js"
import { ActorMetrics, FileFooters, SliceCache } from "./process-state.js"

/** Keep a series this process loaded (loader, direct executors) for its next use. */
export const rememberSlice = (key: string, series: PriceSeries) => Effect.map(SliceCache, (cache) => cache.set(key, series))

/** The series behind a slice reference: memory, else the object store. */
export const fetchSlice = (ref: SliceRef) =>
  Effect.gen(function* () {
    const cache = yield* SliceCache
    const metrics = yield* ActorMetrics
    const hit = cache.get(ref.key)
    if (hit) {
      metrics.sliceCacheHits++
      return hit
    }
    const bus = yield* Bus
    const { jsm } = yield* Nats
    const bytes = yield* Effect.tryPromise({
      try: () => readObjectAsync(jsm, bus.data, OBJECT_STORE, ref.key),
      catch: (cause) => new BusError({ op: `object get ${ref.key}`, cause, transient: isTransient(cause) })
    })
    if (!bytes) return yield* Effect.fail(new BusError({ op: `object get ${ref.key}`, cause: "slice is not in the object store", transient: true }))
    const series = decodeSlice(bytes)
    metrics.slicesFetched++
    cache.set(ref.key, series)
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
    const cache = yield* SliceCache
    const hit = cache.get(ref.key)
    if (hit) return hit
    const loaded = yield* loadSlice(root, requirementFor(slice, ref.symbol), { footers: yield* FileFooters })
    cache.set(ref.key, loaded.series)
    return loaded.series
  })
