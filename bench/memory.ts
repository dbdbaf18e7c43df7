/**
 * Memory benchmark: does an executor's resident memory stay flat over many scenarios?
 *
 * 20,000 small daily scenarios (trend_baseline, one symbol, one year of bars: ~250 bars each)
 * run through the real pipeline — embedded nats-server, every actor but the executor in this
 * process, ONE executor child process — as BATCHES batches of 2,000 (each `cache: false`, so
 * every scenario runs). After each batch the executor's RSS is read from /proc (VmRSS). The
 * baseline is the RSS after the first 2,000 scenarios (heap and JIT warmed up, the slice
 * cached); the figure is RSS after the last batch / baseline, goal ≤ 1.15 (DESIGN's "executor
 * RSS flat ± 15 %"). The peer is the same executor's own baseline, measured in this run.
 * Also printed: every sample, the largest sample / baseline, the peak RSS (VmHWM) of each
 * process, and the executor's heap used after a full GC at the baseline and at the end (the
 * executor is preloaded with bench/_heap-probe.mjs): RSS also moves with garbage V8 has not
 * collected yet, the heap after a full GC grows only with a leak.
 *
 * Run: npm run bench -- memory. Knobs: MEMORY_BATCHES (default 10), EXECUTOR_NODE_OPTIONS (extra
 * node flags for the executor, e.g. V8 heap sizing, to compare against the default).
 */
import { fmt, printResults, result, runBenchmark } from "./_support.js"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { pathToFileURL } from "node:url"
import { cpus, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import type { ChildProcess } from "node:child_process"
import { Effect } from "effect"
import { generateCatalog } from "../src/data/index.js"
import { NatsSettings } from "../src/streams/connection.js"
import { stageActorsOnEmbeddedServer } from "./_system.js"
import { spawnExecutors } from "../src/cli/system.js"
import { LoggingLive } from "../src/logging.js"
import { currentRssMb, peakRssMb } from "./_rss.js"
import { runBatch, waitForExecutors } from "./_pipeline-run.js"

const BATCHES = Number(process.env.MEMORY_BATCHES ?? 10)
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)
/** 40 fast × 50 slow = 2,000 scenarios of ~250 daily bars */
const batchConfig = (i: number) => ({
  batch_name: `memory-${i}`,
  cache: false,
  defaults: { strategy: "trend_baseline", freq: "1d", start_date: "2019-01-01", end_date: "2019-12-31", universe: ["AAA"], start_capital: 1_000_000 },
  sweep: { id: "m", grid: { fast: range(2, 41), slow: range(60, 109) } }
})
const PER_BATCH = 2_000

/** Ask the executor (preloaded with _heap-probe.mjs) for a full GC and its memory usage after it. */
const heapAfterGc = (pid: number, probe: string, n: number) =>
  Effect.promise(async () => {
    process.kill(pid, "SIGUSR2")
    for (let i = 0; i < 100; i++) {
      await new Promise((r) => setTimeout(r, 100))
      const text = await readFile(probe, "utf8").catch(() => "")
      if (text) {
        const m = JSON.parse(text) as { n: number; heapUsed: number; heapTotal: number; heapUsedBefore: number; heapTotalBefore: number; external: number; rss: number }
        if (m.n === n) return m
      }
    }
    return undefined
  })

const program = (root: string) =>
  Effect.gen(function* () {
    const settings = yield* NatsSettings
    // The executor gets the heap probe (full GC + memoryUsage on SIGUSR2) through NODE_OPTIONS.
    const probe = join(root, "executor-heap.json")
    const before = { NODE_OPTIONS: process.env.NODE_OPTIONS, TICKFLOW_HEAP_PROBE: process.env.TICKFLOW_HEAP_PROBE }
    process.env.NODE_OPTIONS = `${before.NODE_OPTIONS ?? ""} ${process.env.EXECUTOR_NODE_OPTIONS ?? ""} --expose-gc --import ${pathToFileURL(join(import.meta.dirname, "_heap-probe.mjs")).href}`.trim()
    process.env.TICKFLOW_HEAP_PROBE = probe
    const executors: ChildProcess[] = yield* spawnExecutors(1, settings, root)
    for (const [k, v] of Object.entries(before)) if (v === undefined) delete process.env[k]; else process.env[k] = v
    yield* waitForExecutors(1)
    const pid = executors[0].pid!
    const samples: Array<{ scenarios: number; rssMb: number; ms: number }> = []
    const heapProbes: number[] = []
    console.log(`${BATCHES} batches of ${PER_BATCH} daily scenarios through one executor (pid ${pid}); ${cpus().length} cores, load avg ${loadavg()[0].toFixed(1)}`)
    console.log(`executor RSS before any work: ${fmt(currentRssMb(pid))} MB`)
    for (let i = 1; i <= BATCHES; i++) {
      const { run, finished } = yield* runBatch(`memory-${i}-${Date.now() % 100000}`, batchConfig(i), executors, { timeoutS: 300 })
      if (!finished) return yield* Effect.fail(new Error(`batch ${i} did not finish within 300 s (${run.results} results)`))
      // a quiet moment: the executor's last acks and cache writes are done
      yield* Effect.sleep("500 millis")
      const rssMb = currentRssMb(pid)
      samples.push({ scenarios: i * PER_BATCH, rssMb, ms: run.ms })
      console.log(`after ${(i * PER_BATCH).toLocaleString("en")} scenarios: executor RSS ${fmt(rssMb)} MB (batch ${fmt(run.ms)} ms, ${fmt(PER_BATCH / (run.ms / 1000))} scenarios/s)`)
      // Heap after a full GC at the baseline and at the end only (RSS is read first): a GC
      // forced after every batch would hide what RSS does on its own.
      if (i === 1 || i === BATCHES) {
        const heap = yield* heapAfterGc(pid, probe, heapProbes.length + 1)
        heapProbes.push(heap ? heap.heapUsed / 2 ** 20 : Number.NaN)
        const mb = (x: number | undefined) => fmt(x === undefined ? Number.NaN : x / 2 ** 20)
        console.log(
          `  V8 heap used/committed ${mb(heap?.heapUsedBefore)}/${mb(heap?.heapTotalBefore)} MB; after a full GC ${mb(heap?.heapUsed)}/${mb(heap?.heapTotal)} MB, ` +
            `external ${mb(heap?.external)} MB, RSS ${mb(heap?.rss)} MB`
        )
      }
    }
    const baseline = samples[0].rssMb
    const end = samples[samples.length - 1].rssMb
    const ratio = end / baseline
    const executorPeak = peakRssMb(pid)
    const selfPeak = peakRssMb(process.pid)
    const natsPeak = peakRssMb(settings.embedded?.pid)
    console.log(
      `executor RSS ${fmt(baseline)} MB after ${PER_BATCH.toLocaleString("en")} scenarios → ${fmt(end)} MB after ${(BATCHES * PER_BATCH).toLocaleString("en")}: ×${ratio.toFixed(3)}; ` +
        `min ${fmt(Math.min(...samples.map((s) => s.rssMb)))} MB, max ${fmt(Math.max(...samples.map((s) => s.rssMb)))} MB`
    )
    console.log(`peak RSS: executor ${fmt(executorPeak)} MB; this process (actors) ${fmt(selfPeak)} MB; nats-server ${fmt(natsPeak)} MB`)
    const heapRatio = heapProbes[heapProbes.length - 1] / heapProbes[0]
    console.log(`executor heap used after a full GC: ${fmt(heapProbes[0])} MB → ${fmt(heapProbes[heapProbes.length - 1])} MB: ×${heapRatio.toFixed(3)} (a leak shows here; RSS also moves with garbage not yet collected)`)
    result("executor_rss_growth_ratio", Number(ratio.toFixed(3)), "<=1.15")
    result("executor_heap_after_gc_growth_ratio", Number(heapRatio.toFixed(3)), "<=1.15")
    result("executor_rss_max_ratio", Number((Math.max(...samples.map((x) => x.rssMb)) / baseline).toFixed(3)), "-")
    result("executor_rss_baseline_mb", baseline, "peer")
    result("executor_rss_end_mb", end, "<=1.15×baseline")
    result("memory_peak_rss_executor_mb", executorPeak, "bounded")
    result("memory_peak_rss_actors_mb", selfPeak, "bounded")
    result("memory_peak_rss_nats_mb", natsPeak, "bounded")
  })

const main = Effect.gen(function* () {
  const root = yield* Effect.acquireRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), "tickflow-bench-memory-"))),
    (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
  )
  yield* generateCatalog({ root, symbols: ["AAA"], freqs: ["1d"], start: "2017-01-01", end: "2020-12-31", seed: 5 })
  yield* program(root).pipe(Effect.scoped, Effect.provide(stageActorsOnEmbeddedServer(root)))
})

runBenchmark(main.pipe(Effect.scoped, Effect.provide(LoggingLive), Effect.tap(() => Effect.sync(printResults))))
