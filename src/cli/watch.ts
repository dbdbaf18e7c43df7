/**
 * `tickflow watch <batch>`: a live results table from any machine that reaches NATS. Ordered
 * consumer on `tf.res.<batch>.>`: replays what is there, then follows until the batch is done
 * (or forever with --follow). A batch that is not there yet is waited for (`--timeout` gives
 * up). With `--out DIR` it writes the same output tree as `run` (outputs.ts); with `--config`
 * (the batch file that was submitted) each run's manifest holds its full scenario and
 * successful runs are replayed locally for their full equity curve and fills.
 */
import { join, resolve } from "node:path"
import { Effect, Fiber, Queue, Ref, Stream } from "effect"
import { BatchRecord, ScenarioResult, type MetricName } from "../schemas/results.js"
import type { Scenario } from "../schemas/batch.js"
import { kvGet } from "../streams/bus.js"
import { BusError } from "../streams/errors.js"
import { Nats, settingsFromEnv } from "../streams/connection.js"
import { followDecoded } from "../streams/follow.js"
import { BUCKET, SUBJECT } from "../streams/topology.js"
import { Layer } from "effect"
import { writeBatchFiles } from "../report/index.js"
import { writeFileAtomic, writeRunOutputs, type BatchInfoFile } from "./outputs.js"
import { replayScenario, type SliceCache } from "./replay.js"
import { prepareBatch } from "./run.js"
import { waitForSignal } from "./system.js"
import { problemsList, resultsTable } from "./table.js"

export interface WatchOptions {
  readonly batchId: string
  readonly sort: MetricName
  readonly top: number
  readonly follow: boolean
  /** write the output tree under <out>/<batch> */
  readonly out?: string
  /** the submitted batch file: full scenarios in manifests, local replays */
  readonly config?: string
  readonly dataRoot?: string
  /** seconds to wait for a batch that has no record and no results yet */
  readonly timeoutSec?: number
}

/** Only the batch records: a viewer may read them, not manage the topology. */
const openBatches = Effect.flatMap(Nats, ({ kvm }) =>
  Effect.tryPromise({
    try: () => kvm.open(BUCKET.batches, { bindOnly: true }),
    catch: (cause) => new BusError({ op: `open KV ${BUCKET.batches} (is tickflow running on this server?)`, cause, transient: false })
  })
)

export class WatchTimeout extends Error {}

export const watchBatch = (opts: WatchOptions) =>
  Effect.gen(function* () {
    const bus = { batches: yield* openBatches }
    const results = yield* Ref.make(new Map<string, ScenarioResult>())
    const tty = process.stdout.isTTY === true
    // The output tree: the batch file (when given) says what each run was.
    const outDir = opts.out ? resolve(opts.out, opts.batchId) : undefined
    const prepared = opts.config ? yield* Effect.promise(() => prepareBatch(opts.config!, { ...(opts.dataRoot ? { dataRoot: opts.dataRoot } : {}), batchId: opts.batchId })) : undefined
    const scenarioOf = new Map<string, Scenario>(prepared?.scenarios.map((s) => [s.scenario_id, s]) ?? [])
    const warmupOf = new Map(prepared?.plan.entries.map((e) => [e.scenario.scenario_id, e.warmupBars]) ?? [])
    if (outDir) {
      const info: BatchInfoFile = {
        batch_id: opts.batchId,
        batch_name: prepared?.cfg.batch_name ?? opts.batchId,
        config_file: opts.config ? resolve(opts.config) : null,
        config: prepared?.cfg ?? null,
        data_root: prepared?.dataRoot ?? resolve(opts.dataRoot ?? process.env.TICKFLOW_DATA_ROOT ?? ".tickflow/data"),
        base_dir: prepared?.baseDir ?? process.cwd(),
        created_at: new Date().toISOString(),
        sort: opts.sort
      }
      yield* Effect.promise(() => writeFileAtomic(join(outDir, "batch.json"), JSON.stringify(info, null, 2) + "\n"))
    }
    const writes = yield* Queue.unbounded<ScenarioResult | null>()
    const slices: SliceCache = new Map()
    const writer = yield* Effect.fork(
      Effect.gen(function* () {
        if (!outDir) return
        for (;;) {
          const r = yield* Queue.take(writes)
          if (r === null) return
          const s = scenarioOf.get(r.scenario_id) ?? null
          const warmup = s ? warmupOf.get(r.scenario_id) ?? 0 : null
          const detail =
            r.status !== "success"
              ? undefined
              : s && prepared
                ? yield* replayScenario(s, { dataRoot: prepared.dataRoot, baseDir: prepared.baseDir, cache: slices }).pipe(
                    Effect.catchAll((e) => Effect.succeed((e as Error).message ?? String(e)))
                  )
                : "watch without --config <batch file> cannot replay the run"
          yield* Effect.tryPromise(() =>
            writeRunOutputs({ outDir, result: r, scenario: s, warmupBars: warmup, dataVersion: prepared?.plan.dataVersion, ...(detail !== undefined ? { detail } : {}) })
          ).pipe(Effect.catchAll((e) => Effect.logError(`could not write the files of ${r.scenario_id}: ${String(e)}`)))
        }
      })
    )
    const follower = yield* Effect.fork(
      followDecoded(SUBJECT.resultsOf(opts.batchId), ScenarioResult).pipe(
        Stream.runForEach((r) =>
          Effect.gen(function* () {
            const seen = (yield* Ref.get(results)).has(r.scenario_id)
            yield* Ref.update(results, (m) => new Map(m).set(r.scenario_id, r))
            if (!seen) yield* Queue.offer(writes, r)
          })
        )
      )
    )
    const render = (rec: BatchRecord | undefined, list: ScenarioResult[]) => {
      const head = rec
        ? `batch ${rec.batch_id} (${rec.batch_name}): ${rec.status} — ${list.length}/${rec.total} results, ${rec.counts.success} ok, ${rec.counts.skipped} skipped, ${rec.counts.failed} failed`
        : `batch ${opts.batchId}: ${list.length} results (no batch record yet)`
      return `${head}\n${resultsTable(list, opts.sort, opts.top)}`
    }
    const started = Date.now()
    const loop = Effect.gen(function* () {
      let last = ""
      let lastWaitNote = 0
      for (;;) {
        const rec = (yield* kvGet(bus.batches, opts.batchId, BatchRecord))?.value
        const list = [...(yield* Ref.get(results)).values()]
        if (!rec && list.length === 0) {
          // Unknown so far: say so (a batch may be submitted after its watcher starts).
          const waited = (Date.now() - started) / 1000
          if (opts.timeoutSec !== undefined && waited >= opts.timeoutSec)
            return yield* Effect.fail(new WatchTimeout(`batch ${opts.batchId} did not appear within ${opts.timeoutSec}s (no batch record, no results): check the id (\`tickflow submit\` prints it) and NATS_URL`))
          if (Date.now() - lastWaitNote >= 5_000) {
            lastWaitNote = Date.now()
            console.error(`waiting for batch ${opts.batchId}: no record and no results yet${opts.timeoutSec !== undefined ? ` (giving up after ${opts.timeoutSec}s)` : " (Ctrl-C stops; --timeout <s> gives up)"}`)
          }
          yield* Effect.sleep("500 millis")
          continue
        }
        const screen = render(rec, list)
        if (tty && screen !== last) {
          process.stdout.write(`\x1b[2J\x1b[H${screen}\n`)
          last = screen
        }
        const finished = rec && (rec.status === "done" || rec.status === "failed") && list.length >= rec.total
        if (finished && !opts.follow) return { rec, list }
        yield* Effect.sleep("500 millis")
      }
    })
    const outcome = yield* loop.pipe(Effect.raceFirst(waitForSignal.pipe(Effect.as(undefined))))
    yield* Fiber.interrupt(follower)
    yield* Queue.offer(writes, null)
    yield* Fiber.join(writer)
    const list = [...(yield* Ref.get(results)).values()]
    const rec = outcome?.rec ?? (yield* kvGet(bus.batches, opts.batchId, BatchRecord))?.value
    if (!tty) console.log(render(rec, list))
    const problems = problemsList(list)
    if (problems) console.log(`\nnot run:\n${problems}`)
    if (outDir) {
      const summary = yield* Effect.promise(() =>
        writeBatchFiles({
          batchDir: outDir,
          batchId: opts.batchId,
          batchName: rec?.batch_name ?? prepared?.cfg.batch_name ?? opts.batchId,
          ...(prepared ? { expected: prepared.scenarios.map((s) => s.scenario_id) } : {}),
          sort: opts.sort,
          ...(outcome === undefined ? { ended: "interrupted" as const } : rec?.status === "failed" ? { ended: "failed" as const } : {}),
          ...(rec?.error ? { error: rec.error } : {})
        })
      )
      console.log(`output: ${outDir}/ (summary.csv, summary.json, report.html, <run>/…): ${summary.counts.success} success, ${summary.counts.skipped} skipped, ${summary.counts.failed} failed`)
      return summary.exit_code
    }
    return rec && rec.counts.success === rec.total ? 0 : 1
  }).pipe(Effect.provide(Nats.Default.pipe(Layer.provideMerge(settingsFromEnvRequired()))))

/** watch joins an existing system: without NATS_URL there is nothing to watch. */
const settingsFromEnvRequired = () => {
  if (!process.env.NATS_URL) throw new Error("watch needs NATS_URL (and NATS_USER/NATS_PASSWORD) pointing at the server the batch runs on")
  return settingsFromEnv()
}
