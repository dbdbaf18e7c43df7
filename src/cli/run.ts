/**
 * `tickflow run batch.yaml`: the researcher's command. Validates the batch (schema, then the
 * checks of the availability and requirements phases: `--dry-run` stops there), starts (or
 * joins) NATS and the actors, submits the runs still to do (`--resume`), follows their results
 * live with progress per phase, and writes the output tree (outputs.ts) as results arrive:
 * each successful run is replayed locally for its full equity curve and fills (replay.ts).
 *
 * Exit codes (the same in `validate`): 0 every run succeeded; 1 some run failed or was skipped
 * (or the run was interrupted); 2 the config is invalid — nothing ran. `validate` and
 * `run --dry-run` exit 2 also when a run would be skipped.
 */
import { existsSync } from "node:fs"
import { readdir, readFile } from "node:fs/promises"
import { dirname, join, resolve } from "node:path"
import cliProgress from "cli-progress"
import { Deferred, Effect, Fiber, Queue, Ref, Stream } from "effect"
import { ACTOR_NAMES, RunningActors, type ActorName } from "../actors/index.js"
import { universeFileReader } from "../actors/coordinator.js"
import { ConfigError, expandBatch, makeBatchId, parseBatchConfig, parseBatchText, type BatchConfig, type Scenario } from "../schemas/batch.js"
import { WIRE_VERSION } from "../schemas/common.js"
import { BatchRecord, ScenarioResult, type MetricName } from "../schemas/results.js"
import { publishRaw } from "../streams/bus.js"
import { NatsSettings } from "../streams/connection.js"
import { followDecoded } from "../streams/follow.js"
import { SUBJECT } from "../streams/topology.js"
import { configureLogging } from "../logging.js"
import { writeBatchFiles } from "../report/index.js"
import { readBatchInfo, readManifest, runKeyOf, writeFileAtomic, writeRunOutputs, type BatchInfoFile, type BatchSummary } from "./outputs.js"
import { planBatch, planProblems, type BatchPlan, type PlanEntry } from "./plan.js"
import { replayScenario, type SliceCache } from "./replay.js"
import { spawnExecutors, systemLayer, waitForSignal } from "./system.js"
import { problemsList, resultsTable, terminalWidth } from "./table.js"
import { currentSecuritySettings } from "../security/limits.js"
import { openRejectionBucket, rejectionOf } from "../security/rejections.js"
import { StrategyStore } from "../strategies-store.js"
import { busBatchConfig } from "./submission.js"

/** Phases `--until` can stop after, in pipeline order, with the actor that runs each. */
export const UNTIL_PHASES = ["availability", "requirements", "loading", "quality", "execution"] as const
export type UntilPhase = (typeof UNTIL_PHASES)[number]
const PHASE_ACTOR: Record<UntilPhase, ActorName> = { availability: "availability", requirements: "requirements", loading: "loader", quality: "quality", execution: "executor" }
const PHASE_SHORT: Record<UntilPhase, string> = { availability: "avail", requirements: "reqs", loading: "load", quality: "quality", execution: "exec" }

export const EXIT = { ok: 0, someFailed: 1, invalid: 2 } as const

export interface RunOptions {
  readonly file: string
  readonly maxWorkers: number
  readonly dataRoot?: string
  readonly out?: string
  readonly sort: MetricName
  readonly top: number
  readonly batchId?: string
  readonly dryRun?: boolean
  /** true: the latest batch of this config under the output root; a string: that batch id */
  readonly resume?: boolean | string
  readonly rerunFailed?: boolean
  readonly until?: UntilPhase
  readonly summaryJson?: boolean
  /** false: ask the pipeline not to reuse cached results (`cache: false` on the submission) */
  readonly cache?: boolean
}

/** Read and validate a batch file (YAML or JSON); ConfigError lists every problem. */
export const loadBatchFile = async (file: string): Promise<BatchConfig> => {
  let text: string
  try {
    text = await readFile(file, "utf8")
  } catch (e) {
    throw new ConfigError([`cannot read ${file}: ${(e as Error).message}`], file)
  }
  return parseBatchText(text, file)
}

export interface Prepared {
  readonly cfg: BatchConfig
  readonly baseDir: string
  readonly dataRoot: string
  readonly scenarios: Scenario[]
  readonly plan: BatchPlan
}

/** Schema, expansion and the deep checks: what `validate` and `run --dry-run` report. */
export const prepareBatch = async (file: string, opts: { dataRoot?: string; batchId?: string }): Promise<Prepared> => {
  const cfg = await loadBatchFile(file)
  const baseDir = dirname(resolve(file))
  const dataRoot = resolve(opts.dataRoot ?? (cfg.data_root ? resolve(baseDir, cfg.data_root) : process.env.TICKFLOW_DATA_ROOT ?? ".tickflow/data"))
  let scenarios: Scenario[]
  try {
    scenarios = expandBatch(cfg, { batchId: opts.batchId ?? makeBatchId(cfg), dataRoot, readUniverseFile: universeFileReader(baseDir) })
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(e.problems, file)
    throw e
  }
  const plan = await planBatch(scenarios, { dataRoot, baseDir })
  return { cfg, baseDir, dataRoot, scenarios, plan }
}

/** The plan as text: counts, then every problem (one line each). */
export const planText = (file: string, p: Prepared): string => {
  const skipped = p.plan.entries.filter((e) => e.status === "skipped")
  const lines = [
    skipped.length === 0
      ? `${file}: ok, ${p.scenarios.length} scenarios in ${p.plan.groups} data groups, all ready`
      : `${file}: ${p.scenarios.length} runs in ${p.plan.groups} data groups; ${p.scenarios.length - skipped.length} ready, ${skipped.length} would be skipped`,
    `data root: ${p.plan.dataRoot}${p.plan.dataVersion ? ` (data version ${p.plan.dataVersion.slice(0, 12)})` : ""}`
  ]
  const problems = planProblems(p.plan)
  if (problems.length) lines.push(`problems (${problems.length}):`, ...problems.map((x) => `  ${x}`))
  const warnings = [...new Set(p.plan.entries.flatMap((e) => e.warnings.map((w) => `${e.scenario.scenario_id}: ${w}`)))]
  if (warnings.length) lines.push(`warnings (${warnings.length}):`, ...warnings.slice(0, 20).map((w) => `  ${w}`))
  return lines.join("\n")
}

const planJson = (file: string, p: Prepared) => ({
  file,
  runs: p.scenarios.length,
  groups: p.plan.groups,
  ready: p.plan.entries.filter((e) => e.status === "ready").length,
  skipped: p.plan.entries.filter((e) => e.status === "skipped").length,
  data_root: p.plan.dataRoot,
  data_version: p.plan.dataVersion ?? null,
  exit_code: p.plan.entries.some((e) => e.status === "skipped") ? EXIT.invalid : EXIT.ok,
  plan: p.plan.entries.map((e) => ({
    run_id: e.scenario.scenario_id,
    status: e.status,
    strategy: e.scenario.strategy,
    universe: e.scenario.universe,
    freq: e.scenario.freq,
    start_date: e.scenario.start_date,
    end_date: e.scenario.end_date,
    params: e.params ?? e.scenario.params,
    problems: e.problems,
    warnings: e.warnings
  }))
})

/** `tickflow validate`: the deep checks, every problem in one pass. Returns the exit code. */
export const validateBatch = async (file: string, opts: { dataRoot?: string; json?: boolean }): Promise<number> => {
  let p: Prepared
  try {
    p = await prepareBatch(file, opts)
  } catch (e) {
    console.error(e instanceof ConfigError ? e.message : `error: ${(e as Error).message}`)
    return EXIT.invalid
  }
  const skipped = p.plan.entries.some((e) => e.status === "skipped")
  if (opts.json) console.log(JSON.stringify(planJson(file, p), null, 2))
  else (skipped ? console.error : console.log)(planText(file, p))
  return skipped ? EXIT.invalid : EXIT.ok
}

/** The latest batch of this config's name under `outRoot` (by batch.json's created_at). */
const latestBatchOf = async (outRoot: string, batchName: string): Promise<BatchInfoFile | undefined> => {
  let names: string[] = []
  try {
    names = (await readdir(outRoot, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name)
  } catch {
    return undefined
  }
  const infos = (await Promise.all(names.map((n) => readBatchInfo(join(outRoot, n))))).filter((i): i is BatchInfoFile => i?.batch_name === batchName)
  return infos.sort((a, b) => a.created_at.localeCompare(b.created_at)).at(-1)
}

/** A scenario as an explicit run of a batch file (what a resumed submission and --export-best send). */
export const scenarioAsRun = (s: Scenario) => ({
  id: s.scenario_id,
  ...(s.name !== undefined ? { name: s.name } : {}),
  strategy: s.strategy,
  freq: s.freq,
  start_date: s.start_date,
  end_date: s.end_date,
  universe: s.universe,
  start_capital: s.start_capital,
  commission_bps: s.costs.commission_bps,
  spread_w: s.costs.spread_w,
  impact_w: s.costs.impact_w,
  slippage_bps: s.costs.slippage_bps,
  params: s.params,
  strict: s.strict,
  ...(s.benchmark !== undefined ? { benchmark: s.benchmark } : {})
})

const fmtDuration = (ms: number) => {
  const s = Math.round(ms / 1000)
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`
}

/** "avail 20/20 reqs 20/20 load 3/20 …": scenarios each phase has finished, of those that reached it. */
const phaseLine = (rec: BatchRecord | undefined, phases: ReadonlyArray<UntilPhase>) => {
  if (!rec) return { text: "submitting", current: "submission" }
  let current = "submission"
  const parts = phases.map((p) => {
    const c = rec.phases[p]
    if (!c) return `${PHASE_SHORT[p]} -`
    const done = c.pass + c.skipped + c.failed
    if (c.in > 0) current = p
    return `${PHASE_SHORT[p]} ${done}/${c.in}`
  })
  return { text: parts.join(" "), current }
}

/** Runs a batch; returns the exit code (also set on process.exitCode by the command). */
export const runBatch = (opts: RunOptions) =>
  Effect.gen(function* () {
    const out = opts.summaryJson ? console.error : console.log
    const prepared = yield* Effect.tryPromise({ try: () => prepareBatch(opts.file, opts), catch: (e) => e as Error }).pipe(Effect.either)
    if (prepared._tag === "Left") {
      const e = prepared.left
      console.error(e instanceof ConfigError ? e.message : `error: ${e.message}`)
      if (opts.summaryJson) console.log(JSON.stringify({ file: opts.file, status: "invalid", exit_code: EXIT.invalid, error: e.message }))
      return EXIT.invalid
    }
    const { cfg, baseDir, dataRoot } = prepared.right
    if (opts.dryRun) {
      const skipped = prepared.right.plan.entries.some((e) => e.status === "skipped")
      if (opts.summaryJson) console.log(JSON.stringify(planJson(opts.file, prepared.right)))
      else out(planText(opts.file, prepared.right))
      return skipped ? EXIT.invalid : EXIT.ok
    }
    if (opts.until && opts.until !== "execution" && process.env.NATS_URL)
      return yield* Effect.fail(new Error(`--until ${opts.until} needs the embedded server (unset NATS_URL): on a shared server, executors elsewhere would still run the scenarios`))
    const outRoot = resolve(opts.out ?? cfg.output_root)
    // Which batch folder: a new one, or the one being resumed (same scenario ids).
    let batchId = opts.batchId ?? makeBatchId(cfg)
    let resumed: BatchInfoFile | undefined
    if (opts.resume) {
      resumed = typeof opts.resume === "string" ? yield* Effect.promise(() => readBatchInfo(join(outRoot, opts.resume as string))) : yield* Effect.promise(() => latestBatchOf(outRoot, cfg.batch_name))
      if (typeof opts.resume === "string" && !resumed)
        return yield* Effect.fail(new Error(`--resume ${opts.resume}: no batch.json under ${join(outRoot, opts.resume)}; give a batch id under ${outRoot} or --resume alone for the latest`))
      if (resumed) batchId = resumed.batch_id
      else yield* Effect.logWarning(`--resume: no earlier batch named ${cfg.batch_name} under ${outRoot}; starting a new one`)
    }
    const outDir = join(outRoot, batchId)
    // The terminal shows progress and the table; the full log goes next to the results.
    if (!process.env.TICKFLOW_LOG_LEVEL) configureLogging({ stderrLevel: "warn", file: join(outDir, "tickflow.log") })
    const scenarios = prepared.right.scenarios.map((s) => ({ ...s, batch_id: batchId }))
    const plan = prepared.right.plan
    const entryOf = new Map<string, PlanEntry>(plan.entries.map((e) => [e.scenario.scenario_id, e]))
    // the pipeline's result key where the plan can compute it (ready runs), else one of our own
    const keyOf = (s: Scenario) => entryOf.get(s.scenario_id)?.resultKey ?? runKeyOf(s, plan.dataVersion)
    const info: BatchInfoFile = {
      batch_id: batchId,
      batch_name: cfg.batch_name,
      config_file: resolve(opts.file),
      config: cfg,
      data_root: dataRoot,
      base_dir: baseDir,
      created_at: resumed?.created_at ?? new Date().toISOString(),
      sort: opts.sort
    }
    yield* Effect.promise(() => writeFileAtomic(join(outDir, "batch.json"), JSON.stringify(info, null, 2) + "\n"))
    // --resume: keep runs whose manifest is final and whose key still matches.
    const kept: string[] = []
    let todo = scenarios
    if (resumed) {
      const keep = yield* Effect.promise(() =>
        Promise.all(
          scenarios.map(async (s) => {
            const m = await readManifest(join(outDir, s.scenario_id))
            if (!m) return false
            if ((m.plan_key ?? m.result_key) !== keyOf(s)) return false
            return m.status === "success" || !opts.rerunFailed
          })
        )
      )
      todo = scenarios.filter((_, i) => !keep[i])
      kept.push(...scenarios.filter((_, i) => keep[i]).map((s) => s.scenario_id))
      out(`resuming ${batchId}: ${kept.length} runs kept, ${todo.length} to run${opts.rerunFailed ? " (failed and skipped runs rerun)" : ""}`)
    }
    // What the replays need: the warmup of the slice each run's group loads (for the runs sent now).
    const warmupOf = new Map(plan.entries.map((e) => [e.scenario.scenario_id, e.warmupBars]))
    const phases = UNTIL_PHASES.slice(0, UNTIL_PHASES.indexOf(opts.until ?? "execution") + 1)
    const untilPhase = opts.until && opts.until !== "execution" ? opts.until : undefined
    let record: BatchRecord | undefined
    let interrupted: string | undefined
    const busBatchId = resumed ? `${batchId}-r${Date.now().toString(36)}`.slice(0, 128) : batchId
    const started = Date.now()
    const busResults: ScenarioResult[] = []
    if (todo.length > 0) {
      const inProcessExecutor = opts.maxWorkers <= 1
      const wanted = new Set<ActorName>(["coordinator", "reporter", ...phases.map((p) => PHASE_ACTOR[p])])
      const actors = ACTOR_NAMES.filter((a) => wanted.has(a) && (inProcessExecutor || a !== "executor"))
      const outcome = yield* Effect.gen(function* () {
        const settings = yield* NatsSettings
        const running = yield* RunningActors
        if (!inProcessExecutor && !untilPhase) yield* spawnExecutors(opts.maxWorkers, settings, dataRoot)
        const total = todo.length
        const counts = { success: 0, skipped: 0, failed: 0 }
        const received = yield* Ref.make(0)
        const allIn = yield* Deferred.make<void>()
        // Results are written by one fiber, in arrival order, while the pipeline goes on.
        const writes = yield* Queue.unbounded<ScenarioResult | null>()
        const slices: SliceCache = new Map()
        const scenarioOf = new Map(scenarios.map((x) => [x.scenario_id, x]))
        const writer = yield* Effect.fork(
          Effect.gen(function* () {
            for (;;) {
              const r = yield* Queue.take(writes)
              if (r === null) return
              const s = scenarioOf.get(r.scenario_id)
              if (!s) continue
              const t0 = performance.now()
              const detail =
                r.status === "success"
                  ? yield* replayScenario(s, { dataRoot, baseDir, cache: slices }).pipe(
                      Effect.catchAll((e) => Effect.succeed((e as Error).message ?? String(e)))
                    )
                  : undefined
              const replayMs = performance.now() - t0
              yield* Effect.tryPromise(() =>
                writeRunOutputs({ outDir, result: { ...r, batch_id: batchId }, scenario: s, warmupBars: warmupOf.get(s.scenario_id) ?? 0, resultKey: keyOf(s), dataVersion: plan.dataVersion, ...(detail !== undefined ? { detail } : {}), replayMs })
              ).pipe(Effect.catchAll((e) => Effect.logError(`could not write the files of ${r.scenario_id}: ${String(e)}`)))
            }
          })
        )
        const tty = process.stderr.isTTY === true
        const bar = tty
          ? new cliProgress.SingleBar(
              { format: " {bar} {value}/{total} runs | {success} ok {skipped} skipped {failed} failed | {phase} | {left}", hideCursor: true, stream: process.stderr, fps: 5 },
              cliProgress.Presets.shades_classic
            )
          : undefined
        bar?.start(total, 0, { ...counts, phase: "submitting", left: "ETA …" })
        const ids = new Set(todo.map((s) => s.scenario_id))
        const follower = yield* Effect.fork(
          followDecoded(SUBJECT.resultsOf(busBatchId), ScenarioResult).pipe(
            Stream.runForEach((r) =>
              Effect.gen(function* () {
                if (!ids.delete(r.scenario_id)) return
                busResults.push(r)
                counts[r.status]++
                const n = yield* Ref.updateAndGet(received, (x) => x + 1)
                yield* Queue.offer(writes, r)
                if (n >= total) yield* Deferred.succeed(allIn, undefined)
              })
            )
          )
        )
        // Universe files are read and strategy paths published here (submission.ts): no host
        // path goes on the bus; the actors use their own data root.
        const local = resumed
          ? parseBatchConfig({ batch_name: cfg.batch_name, seed: cfg.seed, strict: cfg.strict, ...(cfg.cache !== undefined ? { cache: cfg.cache } : {}), runs: todo.map(scenarioAsRun) })
          : cfg
        const wire = yield* busBatchConfig(opts.cache === false ? { ...local, cache: false } : local, baseDir).pipe(Effect.provide(StrategyStore.Default))
        const rejections = yield* openRejectionBucket((yield* currentSecuritySettings).rejectionTtlMs)
        const ack = yield* publishRaw(SUBJECT.submit, JSON.stringify({ v: WIRE_VERSION, kind: "batch", batch_id: busBatchId, config: wire }), `submit:${busBatchId}`)
        yield* Effect.logInfo(`batch ${busBatchId} submitted: ${total} scenarios`).pipe(
          Effect.annotateLogs({ batch_id: busBatchId, nats: settings.servers, executors: inProcessExecutor ? "in-process" : opts.maxWorkers })
        )
        // The record as the reporter publishes it on tf.evt.<batch>.batch (the latest first, then
        // each change): progress is followed, not polled from KV.
        const latest = yield* Ref.make<BatchRecord | undefined>(undefined)
        const recordFollower = yield* Effect.fork(
          followDecoded(SUBJECT.batchEvent(busBatchId), BatchRecord, { lastPerSubject: true }).pipe(
            Stream.runForEach((rec) => Ref.set(latest, rec)),
            Effect.catchAll((e) => Effect.logWarning("lost the batch events; progress stops updating until the batch ends", e))
          )
        )
        const finished = yield* Effect.gen(function* () {
          let lastLog = 0
          let lastRejectionCheck = 0
          for (;;) {
            const rec = yield* Ref.get(latest)
            const n = yield* Ref.get(received)
            const { text, current } = phaseLine(rec, phases)
            const elapsed = Date.now() - started
            const eta = n > 0 && n < total ? `ETA ${fmtDuration((elapsed / n) * (total - n))}` : n >= total ? "done" : `ETA … (${current})`
            bar?.update(n, { ...counts, phase: text, left: eta })
            if (!tty && Date.now() - lastLog > 2_000) {
              lastLog = Date.now()
              console.error(`progress: ${n}/${total} runs (${counts.success} ok, ${counts.skipped} skipped, ${counts.failed} failed) | phase ${current} | ${text} | ${eta}`)
            }
            if (rec && (rec.status === "done" || rec.status === "failed")) return rec
            // until the batch has a record, its submission may have been refused (answered by sequence)
            if (!rec && Date.now() - lastRejectionCheck > 1_000) {
              lastRejectionCheck = Date.now()
              const refused = yield* rejectionOf(rejections, ack.seq)
              if (refused) return yield* Effect.fail(new ConfigError([refused.reason], `batch ${busBatchId}`))
            }
            if (untilPhase && rec) {
              const passed = rec.phases[untilPhase]?.pass ?? 0
              if (n + passed >= total) return rec
            }
            yield* Effect.sleep("200 millis")
          }
        }).pipe(Effect.raceFirst(waitForSignal.pipe(Effect.map((sig) => ({ interrupted: sig }) as const))))
        if ("interrupted" in finished) {
          bar?.stop()
          interrupted = finished.interrupted
          yield* Effect.logWarning(`${finished.interrupted}: stopping; finished runs are on disk, \`--resume\` runs the rest`)
        } else {
          record = finished
          // The results stream may lag the counters by a moment: wait for every result (bounded).
          if (finished.status === "done") yield* Deferred.await(allIn).pipe(Effect.timeout("10 seconds"), Effect.ignore)
          bar?.update(yield* Ref.get(received), { ...counts, phase: phaseLine(finished, phases).text, left: "done" })
          bar?.stop()
        }
        yield* Fiber.interrupt(follower)
        yield* Fiber.interrupt(recordFollower)
        yield* Queue.offer(writes, null)
        yield* Fiber.join(writer)
        yield* running.stopGracefully(10_000)
        return { passedUntil: untilPhase && record ? record.phases[untilPhase]?.pass ?? 0 : 0 }
      }).pipe(Effect.scoped, Effect.provide(systemLayer({ actors, settings: { dataRoot, baseDir } })))
      if (untilPhase) out(`--until ${untilPhase}: ${outcome.passedUntil} runs passed ${untilPhase}; later phases were not run`)
    }
    // results.jsonl: the pipeline's results as received (merged by run id across resumes)
    if (busResults.length > 0) {
      const file = join(outDir, "results.jsonl")
      const byId = new Map<string, string>()
      const previous = yield* Effect.promise(() => readFile(file, "utf8").catch(() => ""))
      for (const line of previous.split("\n")) {
        if (!line) continue
        try {
          byId.set((JSON.parse(line) as { scenario_id: string }).scenario_id, line)
        } catch {
          // a line we cannot read is replaced or dropped
        }
      }
      for (const r of busResults) byId.set(r.scenario_id, JSON.stringify({ ...r, batch_id: batchId }))
      const lines = [...byId.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, l]) => l)
      yield* Effect.promise(() => writeFileAtomic(file, lines.join("\n") + "\n"))
    }
    const received = new Set(
      (yield* Effect.promise(() => Promise.all(scenarios.map(async (s) => ((await readManifest(join(outDir, s.scenario_id))) ? s.scenario_id : undefined))))).filter(
        (x): x is string => x !== undefined
      )
    )
    const summary: BatchSummary = yield* Effect.promise(() =>
      writeBatchFiles({
        batchDir: outDir,
        batchId,
        batchName: cfg.batch_name,
        // with --until, runs that passed the last phase run have no result and no folder
        expected: untilPhase ? scenarios.map((s) => s.scenario_id).filter((id) => received.has(id)) : scenarios.map((s) => s.scenario_id),
        sort: opts.sort,
        ...(interrupted ? { ended: "interrupted" as const } : record?.status === "failed" ? { ended: "failed" as const } : {}),
        ...(record?.error ? { error: record.error } : {}),
        extra: {
          config_file: resolve(opts.file),
          data_root: dataRoot,
          data_version: plan.dataVersion ?? null,
          resumed: resumed ? { kept: kept.length, ran: todo.length } : null,
          until: untilPhase ?? null,
          elapsed_sec: (Date.now() - started) / 1000
        }
      })
    )
    // The terminal: table of this batch's results (from disk, so resumed runs are in it too).
    const results = yield* Effect.promise(() => resultsFromDisk(outDir, scenarios))
    const lines: string[] = ["", resultsTable(results, opts.sort, opts.top, terminalWidth(opts.summaryJson ? process.stderr : process.stdout))]
    const problems = problemsList(results)
    if (problems) lines.push(`\nnot run:\n${problems}`)
    if (summary.warnings.count) {
      lines.push(`\nwarnings: ${summary.warnings.count} in all, ${summary.warnings.distinct.length} kind${summary.warnings.distinct.length === 1 ? "" : "s"} (runs affected):`)
      for (const w of summary.warnings.distinct.slice(0, 8)) lines.push(`  ${w.runs}× ${w.message}`)
      if (summary.warnings.distinct.length > 8) lines.push(`  … see summary.json`)
    }
    lines.push(
      `\nbatch ${batchId}: ${summary.status} — ${summary.counts.success} success, ${summary.counts.skipped} skipped, ${summary.counts.failed} failed${summary.counts.missing ? `, ${summary.counts.missing} not run` : ""} of ${summary.total}` +
        (record?.error ? ` (${record.error})` : "")
    )
    lines.push(`output:  ${outDir}/  (summary.csv, summary.json, report.html, <run>/…)`)
    if (!process.env.TICKFLOW_LOG_LEVEL) lines.push(`log:     ${join(outDir, "tickflow.log")}`)
    out(lines.join("\n"))
    let code: number = summary.exit_code
    if (untilPhase) code = summary.counts.skipped + summary.counts.failed > 0 ? EXIT.someFailed : EXIT.ok
    if (opts.summaryJson) {
      const { runs: _runs, ...head } = summary
      console.log(JSON.stringify({ ...head, exit_code: code, runs: summary.runs }))
    }
    return code
  })

/** The results table's input from the run folders (manifest + metrics). */
export const resultsFromDisk = async (outDir: string, scenarios: ReadonlyArray<Scenario>): Promise<ScenarioResult[]> => {
  const out: ScenarioResult[] = []
  for (const s of scenarios) {
    const m = await readManifest(join(outDir, s.scenario_id))
    if (!m) continue
    let metrics
    if (existsSync(join(outDir, s.scenario_id, "metrics.json"))) metrics = JSON.parse(await readFile(join(outDir, s.scenario_id, "metrics.json"), "utf8"))
    out.push({
      v: WIRE_VERSION,
      batch_id: m.batch_id,
      scenario_id: m.run_id,
      status: m.status,
      ...(m.phase ? { phase: m.phase as ScenarioResult["phase"] } : {}),
      ...(m.reason ? { reason: m.reason } : {}),
      strategy: s.strategy,
      params: m.params,
      universe: s.universe,
      freq: s.freq,
      start_date: s.start_date,
      end_date: s.end_date,
      ...(metrics ? { metrics } : {}),
      warnings: m.warnings,
      engine_version: m.engine_version,
      timings: {},
      finished_at: m.finished_at
    })
  }
  return out
}
