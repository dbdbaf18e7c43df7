/**
 * `tickflow run batch.yaml`: the researcher's command. Validates the batch, starts (or joins)
 * NATS and the actors, submits the batch to `tf.submit`, follows its results live, then prints
 * the results table and writes results.jsonl + summary.json under <output_root>/<batch_id>/.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises"
import { dirname, join, resolve } from "node:path"
import cliProgress from "cli-progress"
import { Deferred, Effect, Fiber, Ref, Stream } from "effect"
import YAML from "yaml"
import { ACTOR_NAMES, RunningActors } from "../actors/index.js"
import { universeFileReader } from "../actors/coordinator.js"
import { ConfigError, expandBatch, lintScenarios, makeBatchId, parseBatchConfig, type BatchConfig } from "../schemas/batch.js"
import { WIRE_VERSION } from "../schemas/common.js"
import { BatchRecord, ScenarioResult, type MetricName } from "../schemas/results.js"
import { Bus, kvGet, publishRaw } from "../streams/bus.js"
import { NatsSettings } from "../streams/connection.js"
import { followDecoded } from "../streams/follow.js"
import { SUBJECT } from "../streams/topology.js"
import { spawnExecutors, systemLayer, waitForSignal } from "./system.js"
import { configureLogging } from "../logging.js"
import { currentSecuritySettings } from "../security/limits.js"
import { openRejectionBucket, rejectionOf } from "../security/rejections.js"
import { StrategyStore } from "../strategies-store.js"
import { busBatchConfig } from "./submission.js"
import { problemsList, resultsTable } from "./table.js"

export interface RunOptions {
  readonly file: string
  readonly maxWorkers: number
  readonly dataRoot?: string
  readonly out?: string
  readonly sort: MetricName
  readonly top: number
  readonly batchId?: string
}

/** Read and validate a batch file (YAML or JSON); ConfigError lists every problem. */
export const loadBatchFile = async (file: string): Promise<BatchConfig> => {
  let text: string
  try {
    text = await readFile(file, "utf8")
  } catch (e) {
    throw new ConfigError([`cannot read ${file}: ${(e as Error).message}`], file)
  }
  let raw: unknown
  try {
    raw = YAML.parse(text)
  } catch (e) {
    throw new ConfigError([`${file} is not valid YAML: ${(e as Error).message}`], file)
  }
  return parseBatchConfig(raw, file)
}

export const runBatch = (opts: RunOptions) =>
  Effect.gen(function* () {
    const cfg = yield* Effect.tryPromise({ try: () => loadBatchFile(opts.file), catch: (e) => e as Error })
    const baseDir = dirname(resolve(opts.file))
    const dataRoot = resolve(opts.dataRoot ?? (cfg.data_root ? resolve(baseDir, cfg.data_root) : process.env.TICKFLOW_DATA_ROOT ?? ".tickflow/data"))
    const batchId = opts.batchId ?? makeBatchId(cfg)
    const config = { ...cfg, data_root: dataRoot, ...(opts.out ? { output_root: opts.out } : {}) }
    const outDir = resolve(config.output_root, batchId)
    // The terminal shows progress and the table; the full log goes next to the results.
    if (!process.env.TICKFLOW_LOG_LEVEL) configureLogging({ stderrLevel: "warn", file: join(outDir, "tickflow.log") })
    // Expanded here too, so problems are reported before anything starts.
    const scenarios = yield* Effect.try({
      try: () => expandBatch(config, { batchId, readUniverseFile: universeFileReader(baseDir) }),
      catch: (e) => e as Error
    })
    for (const w of lintScenarios(scenarios)) yield* Effect.logWarning(w)
    const inProcessExecutor = opts.maxWorkers <= 1
    // A one-batch run needs no session actor (sessions are served by `tickflow actors`).
    const actors = ACTOR_NAMES.filter((a) => a !== "session" && (inProcessExecutor || a !== "executor"))
    const outcome = yield* Effect.gen(function* () {
      const settings = yield* NatsSettings
      const bus = yield* Bus
      const running = yield* RunningActors
      if (!inProcessExecutor) yield* spawnExecutors(opts.maxWorkers, settings, dataRoot)
      const results = yield* Ref.make<ScenarioResult[]>([])
      const total = scenarios.length || 1
      const tty = process.stderr.isTTY === true
      const bar = tty
        ? new cliProgress.SingleBar(
            { format: " {bar} {value}/{total} scenarios | {success} ok {skipped} skipped {failed} failed | {eta_formatted} left", hideCursor: true },
            cliProgress.Presets.shades_classic
          )
        : undefined
      bar?.start(total, 0, { success: 0, skipped: 0, failed: 0 })
      const counts = { success: 0, skipped: 0, failed: 0 }
      const allIn = yield* Deferred.make<void>()
      // Follow first, then submit: the ordered consumer replays anyway, but nothing is missed.
      const follower = yield* Effect.fork(
        followDecoded(SUBJECT.resultsOf(batchId), ScenarioResult).pipe(
          Stream.runForEach((r) =>
            Effect.gen(function* () {
              const list = yield* Ref.updateAndGet(results, (l) => [...l, r])
              counts[r.status]++
              bar?.update(list.length, counts)
              if (list.length >= scenarios.length && scenarios.length > 0) yield* Deferred.succeed(allIn, undefined)
            })
          )
        )
      )
      // Universe files and strategy paths are resolved here (strategies published by content);
      // no host path goes on the bus.
      const wireConfig = yield* busBatchConfig(config, baseDir).pipe(Effect.provide(StrategyStore.Default))
      const rejections = yield* openRejectionBucket((yield* currentSecuritySettings).rejectionTtlMs)
      const ack = yield* publishRaw(
        SUBJECT.submit,
        JSON.stringify({ v: WIRE_VERSION, kind: "batch", batch_id: batchId, config: wireConfig }),
        `submit:${batchId}`
      )
      yield* Effect.logInfo(`batch ${batchId} submitted: ${scenarios.length} scenarios`).pipe(
        Effect.annotateLogs({ batch_id: batchId, nats: settings.servers, executors: inProcessExecutor ? "in-process" : opts.maxWorkers })
      )
      // Done when the reporter says so (or every result is in), or on Ctrl-C.
      const record = yield* Effect.gen(function* () {
        let lastLog = Date.now()
        for (;;) {
          const rec = yield* kvGet(bus.batches, batchId, BatchRecord)
          if (rec && (rec.value.status === "done" || rec.value.status === "failed")) return rec.value
          const refused = rec ? undefined : yield* rejectionOf(rejections, ack.seq)
          if (refused) return yield* Effect.fail(new ConfigError([refused.reason], `batch ${batchId}`))
          if (!tty && Date.now() - lastLog > 2_000) {
            lastLog = Date.now()
            const n = (yield* Ref.get(results)).length
            yield* Effect.logInfo(`progress: ${n}/${scenarios.length} results`).pipe(Effect.annotateLogs({ batch_id: batchId, ...counts }))
          }
          yield* Effect.sleep("200 millis")
        }
      }).pipe(
        Effect.raceFirst(waitForSignal.pipe(Effect.map((sig) => ({ interrupted: sig }) as const)))
      )
      if ("interrupted" in record) {
        bar?.stop()
        yield* Effect.logWarning(`${record.interrupted}: stopping; results so far are kept on the bus (batch ${batchId})`)
        yield* running.stopGracefully(10_000)
        return { record: undefined, results: yield* Ref.get(results) }
      }
      // The results stream may lag the counters by a moment: wait for every result (bounded).
      if (record.status === "done") yield* Deferred.await(allIn).pipe(Effect.timeout("10 seconds"), Effect.ignore)
      yield* Fiber.interrupt(follower)
      bar?.stop()
      yield* running.stopGracefully(10_000)
      return { record, results: yield* Ref.get(results) }
    }).pipe(
      Effect.scoped,
      Effect.provide(systemLayer({ actors, settings: { dataRoot, baseDir } }))
    )
    const { record, results } = outcome
    yield* Effect.promise(async () => {
      await mkdir(outDir, { recursive: true })
      const sorted = [...results].sort((a, b) => a.scenario_id.localeCompare(b.scenario_id))
      await writeFile(join(outDir, "results.jsonl"), sorted.map((r) => JSON.stringify(r)).join("\n") + (sorted.length ? "\n" : ""))
      await writeFile(join(outDir, "summary.json"), JSON.stringify(record ?? { batch_id: batchId, status: "interrupted", received: results.length }, null, 2) + "\n")
    })
    const out: string[] = []
    out.push("")
    out.push(resultsTable(results, opts.sort, opts.top))
    const problems = problemsList(results)
    if (problems) out.push(`\nnot run:\n${problems}`)
    if (record) {
      out.push(
        `\nbatch ${batchId}: ${record.status} — ${record.counts.success} success, ${record.counts.skipped} skipped, ${record.counts.failed} failed of ${record.total}` +
          (record.error ? ` (${record.error})` : "")
      )
    }
    out.push(`results: ${join(outDir, "results.jsonl")}\nsummary: ${join(outDir, "summary.json")}`)
    if (!process.env.TICKFLOW_LOG_LEVEL) out.push(`log:     ${join(outDir, "tickflow.log")}`)
    console.log(out.join("\n"))
    if (!record || record.status === "failed") process.exitCode = 1
    return record
  })
