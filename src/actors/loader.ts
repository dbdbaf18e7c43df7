/**
 * Phase 4, loading: each distinct data slice (symbol, freq, range, warmup, data version) is
 * loaded once — across the scenarios of a group, across groups and across batches — and put
 * into the object store `tf_data` under its content key. A KV claim in `tf_claims` stops two
 * loaders loading the same slice at once; the loser waits for the winner's object.
 */
import { Deferred, Effect, Exit } from "effect"
import { encodeSlice, loadSlice, sliceContentKey, type SliceRequirement } from "../data/index.js"
import type { GroupMessage, SliceRef, SliceSpec } from "../schemas/wire.js"
import { Bus, isTransient, kvCreate } from "../streams/bus.js"
import { BusError } from "../streams/errors.js"
import { ActorSettings, freezeAt, ownUniverses, phaseResult, phaseStart, publishGroup, stopGroup } from "./common.js"
import { rememberSlice, requirementFor } from "./slices.js"
import { ActorMetrics, FileFooters, SliceLoadsInFlight, SliceLoadTurns } from "./process-state.js"
import { groupActor, TransientFault } from "./runner.js"

/**
 * The loader holding a claim renews it this often while it loads; a claim not renewed for
 * STALE_CLAIM_MS belongs to a dead loader and is taken over. (Before: a fixed 120 s, so a
 * loader killed between its claim and its object held every group of that slice for 2 min.)
 * A live loader whose event loop is blocked longer than that only causes a second, identical
 * load: objects are content-addressed.
 */
const CLAIM_RENEW_MS = 3_000
const STALE_CLAIM_MS = 15_000

export class SliceLoadFailed {
  readonly _tag = "SliceLoadFailed"
  constructor(readonly reason: string) {}
}

const objectInfo = (key: string) =>
  Effect.flatMap(Bus, (bus) =>
    Effect.tryPromise({
      try: () => bus.data.info(key),
      catch: (cause) => new BusError({ op: `object info ${key}`, cause, transient: isTransient(cause) })
    })
  )

const ensureSlice = (group: GroupMessage, symbol: string, root: string, instance: string) =>
  ensureSliceFor(group.slice, group.data_version, symbol, root, instance)

/**
 * One symbol's slice in the object store under its content key: reused when there, else loaded
 * once (claimed in `tf_claims`). Sessions provision through this too, so the groups their
 * scenarios become find the slice already cached.
 */
export const ensureSliceFor = (slice: SliceSpec, dataVersion: string | undefined, symbol: string, root: string, instance: string) =>
  Effect.gen(function* () {
    const inFlight = yield* SliceLoadsInFlight
    const req = requirementFor(slice, symbol)
    const key = sliceContentKey(req, dataVersion ?? "unversioned")
    const pending = inFlight.get(key)
    if (pending) {
      ;(yield* ActorMetrics).sharedLoads++
      return yield* Deferred.await(pending)
    }
    const done = yield* Deferred.make<SliceRef, SliceLoadFailed | BusError>()
    inFlight.set(key, done)
    return yield* sliceInStore(req, key, root, instance).pipe(
      Effect.onExit((exit) =>
        Effect.zipRight(
          Effect.sync(() => inFlight.delete(key)),
          // a load interrupted with its group is, to the groups awaiting it, a transient fault
          Exit.isInterrupted(exit) ? Deferred.fail(done, new BusError({ op: `load ${key}`, cause: "interrupted", transient: true })) : Deferred.done(done, exit)
        )
      )
    )
  })

/** The slice under `key` in the object store: found there, waited for (another loader), or loaded and stored. */
const sliceInStore = (req: SliceRequirement, key: string, root: string, instance: string) =>
  Effect.gen(function* () {
    const bus = yield* Bus
    const metrics = yield* ActorMetrics
    const footers = yield* FileFooters
    const turns = yield* SliceLoadTurns
    const symbol = req.symbol
    for (let attempt = 0; ; attempt++) {
      const info = yield* objectInfo(key)
      if (info && !info.deleted) {
        metrics.reused++
        const meta = JSON.parse(info.description ?? "{}") as Partial<SliceRef>
        return { symbol, key, rows: meta.rows ?? 0, warmup_rows: meta.warmup_rows ?? 0, resampled_from_ticks: meta.resampled_from_ticks ?? false, bytes: info.size } satisfies SliceRef
      }
      const won = yield* kvCreate(bus.claims, key, { by: instance, at: Date.now() })
      if (!won) {
        // Another loader is on it: wait for its object; take over if its claim went stale.
        const claim = yield* Effect.tryPromise({
          try: () => bus.claims.get(key),
          catch: (cause) => new BusError({ op: `claim get ${key}`, cause, transient: true })
        })
        const at = claim ? (claim.json() as { at?: number }).at ?? 0 : 0
        if (Date.now() - at > STALE_CLAIM_MS) yield* Effect.promise(() => bus.claims.delete(key).catch(() => undefined))
        else {
          if (attempt === 0) metrics.waitedForOtherLoader++
          yield* Effect.sleep("100 millis")
        }
        continue
      }
      yield* freezeAt("loading", "claimed")
      const renewClaim = Effect.promise(() => bus.claims.put(key, JSON.stringify({ by: instance, at: Date.now() })).catch(() => undefined)).pipe(
        Effect.delay(CLAIM_RENEW_MS),
        Effect.forever
      )
      // the claim is renewed while this loader loads and stores; whichever ends first ends both
      return yield* Effect.raceFirst(
        Effect.gen(function* () {
          const t0 = Date.now()
          const { loaded, bytes } = yield* turns.withPermits(1)(
            loadSlice(root, req, { footers }).pipe(
              Effect.mapError((e) => new SliceLoadFailed(`${symbol}: ${e.message}`)),
              Effect.map((loaded) => ({ loaded, bytes: encodeSlice(loaded.series) }))
            )
          )
          const ref: SliceRef = {
            symbol,
            key,
            rows: loaded.series.ts.length,
            warmup_rows: loaded.warmupRows,
            resampled_from_ticks: loaded.resampledFromTicks,
            bytes: bytes.byteLength
          }
          yield* Effect.tryPromise({
            try: () => bus.data.putBlob({ name: key, description: JSON.stringify(ref) }, bytes),
            catch: (cause) => new BusError({ op: `object put ${key}`, cause, transient: isTransient(cause) })
          })
          yield* rememberSlice(key, loaded.series)
          metrics.loads++
          metrics.bytesStored += bytes.byteLength
          metrics.loadMs += Date.now() - t0
          yield* Effect.logInfo("slice loaded").pipe(
            Effect.annotateLogs({ symbol, key: key.slice(0, 16), rows: ref.rows, warmup_rows: ref.warmup_rows, bytes: ref.bytes, ms: Date.now() - t0 })
          )
          return ref
        }),
        renewClaim
      )
    }
  })

/** The group's universe in order, then the benchmarks its scenarios name. */
export const symbolsToLoad = (group: GroupMessage): string[] => {
  const out = [...group.slice.universe]
  for (const it of group.items) if (it.scenario.benchmark !== undefined && !out.includes(it.scenario.benchmark)) out.push(it.scenario.benchmark)
  return out
}

/**
 * A group whose items read their own symbols (a scan group): each symbol is loaded on its own,
 * and a symbol that cannot be loaded fails only the items that read it; the rest go on.
 */
const loadPerItem = (group: GroupMessage, root: string, instance: string, started: number) =>
  Effect.gen(function* () {
    const outcomes = yield* Effect.forEach(
      symbolsToLoad(group),
      (symbol) =>
        ensureSlice(group, symbol, root, instance).pipe(
          Effect.map((ref) => ({ symbol, ref, failure: undefined })),
          Effect.catchIf((e): e is SliceLoadFailed => e instanceof SliceLoadFailed, (e) => Effect.succeed({ symbol, ref: undefined, failure: e.reason }))
        ),
      { concurrency: 4 }
    )
    const failures = new Map(outcomes.filter((o) => o.failure !== undefined).map((o) => [o.symbol, o.failure!] as const))
    const refs = outcomes.flatMap((o) => (o.ref ? [o.ref] : []))
    const passing = group.items.filter((it) => it.scenario.universe.every((sym) => !failures.has(sym)))
    for (const it of group.items) {
      const bad = it.scenario.universe.find((sym) => failures.has(sym))
      if (bad !== undefined) yield* stopGroup(group, [it], "failed", "loading", `data could not be loaded: ${failures.get(bad)}`)
    }
    if (passing.length > 0) {
      const universe = group.slice.universe.filter((sym) => !failures.has(sym))
      yield* publishGroup("quality", { ...group, slice: { ...group.slice, universe }, items: passing, slices: refs.filter((r) => universe.includes(r.symbol)) })
    }
    const failed = group.items.length - passing.length
    yield* phaseResult("loading", group, started, { in: group.items.length, pass: passing.length, skipped: 0, failed }, { slices: refs.length })
  })

export const loaderActor = groupActor({
  name: "loader",
  consumer: "loader",
  phase: "loading",
  // several groups at once: a stage waits on the bus and the disk more than on the CPU
  concurrency: 4,
  handle: (group) =>
    Effect.gen(function* () {
      const settings = yield* ActorSettings
      const started = yield* phaseStart("loading", group)
      const root = group.slice.data_root ?? settings.dataRoot
      const n = group.items.length
      if (ownUniverses(group)) return yield* loadPerItem(group, root, settings.instance, started)
      const refs = yield* Effect.either(
        // the universe, then any benchmark a scenario names: loaded like any symbol, same cache
        Effect.forEach(symbolsToLoad(group), (symbol) => ensureSlice(group, symbol, root, settings.instance), { concurrency: 4 })
      )
      if (refs._tag === "Left") {
        const e = refs.left
        if (e instanceof SliceLoadFailed) {
          yield* stopGroup(group, group.items, "failed", "loading", `data could not be loaded: ${e.reason}`)
          yield* phaseResult("loading", group, started, { in: n, pass: 0, skipped: 0, failed: n })
          return
        }
        return yield* Effect.fail(new TransientFault({ reason: e.message, cause: e }))
      }
      const next: GroupMessage = { ...group, slices: refs.right }
      yield* publishGroup("quality", next)
      yield* phaseResult("loading", group, started, { in: n, pass: n, skipped: 0, failed: 0 }, { slices: refs.right.length })
    })
})
