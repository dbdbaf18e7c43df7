/**
 * Phase 1, index & coverage: built on demand for a catalog root, kept in memory for a few
 * seconds (a sweep's groups arrive together; the CoverageIndex service) and in KV
 * `tf_coverage` for anyone to read.
 * The data plane caches footers on disk by file mtime/size, so a rebuild of an unchanged
 * catalog costs milliseconds.
 */
import { createHash } from "node:crypto"
import { resolve } from "node:path"
import { Deferred, Effect } from "effect"
import { buildCoverage, type CoverageReport, type DataError } from "../data/index.js"
import { Bus, kvPut } from "../streams/bus.js"
import { ActorMetrics, CoverageIndex } from "./process-state.js"

const MEMO_MS = 5_000

export const coverageKey = (root: string) => `root-${createHash("sha256").update(resolve(root)).digest("hex").slice(0, 16)}`

export const coverageOf = (root: string) =>
  Effect.gen(function* () {
    const index = yield* CoverageIndex
    const abs = resolve(root)
    const hit = index.reports.get(abs)
    if (hit && Date.now() - hit.at < MEMO_MS) return hit.report
    // one build per root at a time: the groups of a sweep arrive together (4 at once per stage)
    const pending = index.building.get(abs)
    if (pending) return yield* Deferred.await(pending)
    const done = yield* Deferred.make<CoverageReport, DataError>()
    index.building.set(abs, done)
    return yield* rebuild(abs, hit?.report).pipe(
      // whatever the end (interruption too), the waiters get it and the next caller builds anew
      Effect.onExit((exit) => Effect.zipRight(Effect.sync(() => index.building.delete(abs)), Deferred.done(done, exit)))
    )
  })

const rebuild = (abs: string, previous: CoverageReport | undefined) =>
  Effect.gen(function* () {
    const index = yield* CoverageIndex
    ;(yield* ActorMetrics).coverageBuilds++
    const started = Date.now()
    // the file list is read again (a changed catalog is a new data version); the summaries of
    // unchanged files come from memory, not from the cache file on disk
    const report = yield* buildCoverage(abs, { memory: index.summaries })
    index.reports.set(abs, { at: Date.now(), report })
    yield* Effect.logInfo("Phase 1: Building coverage index done").pipe(
      Effect.annotateLogs({ phase: "coverage", root: abs, entries: report.entries.length, data_version: report.dataVersion, ms: Date.now() - started })
    )
    if (previous?.dataVersion !== report.dataVersion) {
      const bus = yield* Bus
      yield* kvPut(bus.coverage, coverageKey(abs), report).pipe(
        Effect.catchAll((e) => Effect.logWarning("coverage not stored in KV", e))
      )
    }
    return report
  })
