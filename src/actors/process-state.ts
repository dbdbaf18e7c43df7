/**
 * What one actors or executor process keeps in memory between messages, as services (no
 * module-level state): the loaded-slice cache, the catalog coverage index, the Parquet footers
 * read and the counters tests and logs read. They come
 * with the actor settings (`actorSettingsLayer`), one instance per layer, so two systems in one
 * process (tests) never share them.
 */
import { Context, type Deferred, Effect, Layer } from "effect"
import { getHeapStatistics, setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { rootLogger } from "../logging.js"
import { type CoverageMemory, type CoverageReport, type DataError, FooterCache } from "../data/index.js"
import type { PriceSeries } from "../engine/types.js"
import type { SliceRef } from "../schemas/wire.js"
import type { BusError } from "../streams/errors.js"
import type { SliceLoadFailed } from "./loader.js"

const seriesBytes = (s: PriceSeries) =>
  s.ts.byteLength + s.close.byteLength + (s.open?.byteLength ?? 0) + (s.high?.byteLength ?? 0) + (s.low?.byteLength ?? 0) + (s.volume?.byteLength ?? 0) + (s.synthetic?.byteLength ?? 0)

/**
 * Loaded slices by content key, least recently used dropped first once over a byte budget. A
 * Map keeps insertion order, so re-inserting on use makes its first entries the oldest: the
 * whole LRU is these few lines (a library's count-based LRU would not bound bytes).
 */
export class SeriesLru {
  private readonly entries = new Map<string, { series: PriceSeries; bytes: number }>()
  private bytes = 0
  constructor(readonly maxBytes: number) {}

  get(key: string): PriceSeries | undefined {
    const hit = this.entries.get(key)
    if (!hit) return undefined
    this.entries.delete(key)
    this.entries.set(key, hit)
    return hit.series
  }

  set(key: string, series: PriceSeries): void {
    if (this.entries.has(key)) return
    const bytes = seriesBytes(series)
    this.entries.set(key, { series, bytes })
    this.bytes += bytes
    for (const [k, v] of this.entries) {
      if (this.bytes <= this.maxBytes || this.entries.size <= 1) break
      this.entries.delete(k)
      this.bytes -= v.bytes
    }
  }

  get size(): number {
    return this.entries.size
  }
}

export class SliceCache extends Context.Tag("tickflow/SliceCache")<SliceCache, SeriesLru>() {}

/** Counters of what this process did (the pipeline tests assert one load per distinct slice). */
export interface ActorMetricsShape {
  /** slices loaded from the catalog, reused from the object store, waited for (another loader) */
  loads: number
  reused: number
  waitedForOtherLoader: number
  /** loads of this process another group awaited (SliceLoadsInFlight) */
  sharedLoads: number
  bytesStored: number
  loadMs: number
  /** slices read from the object store / served from memory */
  slicesFetched: number
  sliceCacheHits: number
  /** coverage index builds (one per root at a time, then kept a few seconds) */
  coverageBuilds: number
  /** execution: chunks and scenarios run, scenarios of a redelivered chunk already answered */
  groups: number
  scenarios: number
  skippedAsDone: number
}

export class ActorMetrics extends Context.Tag("tickflow/ActorMetrics")<ActorMetrics, ActorMetricsShape>() {}

/** Coverage reports by catalog root (kept a few seconds) and the file summaries behind them. */
export interface CoverageIndexShape {
  readonly reports: Map<string, { at: number; report: CoverageReport }>
  /** a build in progress per root, which the callers arriving meanwhile await */
  readonly building: Map<string, Deferred.Deferred<CoverageReport, DataError>>
  readonly summaries: CoverageMemory
}

export class CoverageIndex extends Context.Tag("tickflow/CoverageIndex")<CoverageIndex, CoverageIndexShape>() {}

/**
 * Slice loads this process has under way, by content key: a group that needs a slice another
 * group of this process is loading awaits that load instead of polling the claim every 100 ms.
 */
export class SliceLoadsInFlight extends Context.Tag("tickflow/SliceLoadsInFlight")<
  SliceLoadsInFlight,
  Map<string, Deferred.Deferred<SliceRef, SliceLoadFailed | BusError>>
>() {}

/**
 * One slice load decodes at a time in this process. Loads are CPU work on one thread: four at
 * once (the loader takes four groups, each of another symbol) all finished together, ~400 ms
 * after a cold sweep's submit, where one after another the first is ready in ~100 ms and its
 * group goes on to the executors while the next decodes (bench/pipeline.ts, cold run).
 */
export class SliceLoadTurns extends Context.Tag("tickflow/SliceLoadTurns")<SliceLoadTurns, Effect.Semaphore>() {}

/** Parquet footers this process has read (the loader reads the same files for many slices). */
export class FileFooters extends Context.Tag("tickflow/FileFooters")<FileFooters, FooterCache>() {}

/**
 * A full garbage collection once an executor has had nothing to do for `idleMs`, when its heap
 * has grown by GC_GROWTH_BYTES since the last one. An execution chunk's results, JSON texts and
 * curves live until its end, outlast young-generation collections and are promoted: old space
 * fills with garbage between major collections and V8 keeps the freed pages a while, so an
 * executor's RSS wandered 220–336 MB over 20,000 scenarios with 42 MB actually retained
 * (bench/memory.ts). Collected after every pause of 500 ms, RSS stayed within ×1.02–1.08, but
 * tick sweeps lost ~15% throughput (0.83 vs 0.98 pipeline efficiency, paired runs): pauses that
 * short happen mid-batch, and a memory-reducing collection also shrinks the young generation,
 * which the next chunk grows again. Hence the default: only after 5 s idle (really idle), and
 * only when the heap has grown GC_GROWTH_BYTES since the last collection. `gc` comes from `--expose-gc` (set at
 * run time when node was not started with it); where that is refused, nothing is collected.
 */
export class IdleCollector {
  #timer: ReturnType<typeof setTimeout> | undefined
  /** resolved at the first idle period: processes that never run an executor never touch V8 flags */
  #gc: (() => void) | undefined | null = null
  /** committed heap right after the last collection (or when first idle) */
  #afterLast: number | undefined
  collections = 0
  constructor(
    readonly idleMs: number,
    readonly growthBytes = GC_GROWTH_BYTES,
    private readonly onCollect: (e: { ms: number; heapBefore: number; heapAfter: number }) => void = () => {}
  ) {}
  /** work starts: no collection until the next `idle()` */
  busy(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }
  /** work ended: collect once if nothing starts within idleMs and the heap has grown enough */
  idle(): void {
    if (this.idleMs <= 0) return
    if (this.#gc === null) this.#gc = exposedGc()
    if (this.#gc === undefined) return
    this.busy()
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      const heapBefore = getHeapStatistics().total_heap_size
      this.#afterLast ??= heapBefore
      if (heapBefore - this.#afterLast < this.growthBytes) return
      const t0 = performance.now()
      this.#gc!()
      this.collections++
      const heapAfter = getHeapStatistics().total_heap_size
      this.#afterLast = heapAfter
      this.onCollect({ ms: performance.now() - t0, heapBefore, heapAfter })
    }, this.idleMs)
    this.#timer.unref()
  }
}

/** how much the committed heap must have grown since the last idle collection for another */
export const GC_GROWTH_BYTES = 16 * 1024 * 1024

const exposedGc = (): (() => void) | undefined => {
  const existing = (globalThis as { gc?: () => void }).gc
  if (typeof existing === "function") return existing
  try {
    setFlagsFromString("--expose-gc")
    const gc = runInNewContext("gc") as unknown
    return typeof gc === "function" ? (gc as () => void) : undefined
  } catch {
    return undefined
  }
}

export class ExecutorIdleGc extends Context.Tag("tickflow/ExecutorIdleGc")<ExecutorIdleGc, IdleCollector>() {}

export const processStateLayer = (sliceCacheBytes: number, idleGcMs = 0) =>
  Layer.mergeAll(
    Layer.sync(
      ExecutorIdleGc,
      () =>
        new IdleCollector(idleGcMs, GC_GROWTH_BYTES, (e) =>
          rootLogger().debug({ event: "idle_gc", ms: Math.round(e.ms), heap_before_mb: Math.round(e.heapBefore / 2 ** 20), heap_after_mb: Math.round(e.heapAfter / 2 ** 20) }, "idle garbage collection")
        )
    ),
    Layer.sync(FileFooters, () => new FooterCache()),
    Layer.sync(SliceLoadsInFlight, () => new Map()),
    Layer.effect(SliceLoadTurns, Effect.makeSemaphore(1)),
    Layer.sync(CoverageIndex, () => ({ reports: new Map(), building: new Map(), summaries: new Map() })),
    Layer.sync(SliceCache, () => new SeriesLru(sliceCacheBytes)),
    Layer.sync(ActorMetrics, () => ({
      loads: 0,
      reused: 0,
      waitedForOtherLoader: 0,
      sharedLoads: 0,
      bytesStored: 0,
      loadMs: 0,
      slicesFetched: 0,
      sliceCacheHits: 0,
      coverageBuilds: 0,
      groups: 0,
      scenarios: 0,
      skippedAsDone: 0
    }))
  )
