/**
 * Scanner jobs: symbol-years of daily bars scanned per second through the pipeline, against the
 * same scan in-process, in the same run.
 *
 * - In-process peer: for each symbol, `loadSlice` from the Parquet catalog (its own warm-up, the
 *   formula's lookback) and `scanWithValues` — what the pipeline does per symbol, without a bus.
 * - Pipeline: one embedded nats-server per measurement, every actor in this process (one
 *   executor), the job submitted and awaited with `scanJob` (what `tickflow scan` runs), from
 *   submission to the last result. Measured twice: one symbol per group (scanGroups = S: five
 *   stage messages per symbol, how scan jobs were grouped before) and with the default grouping
 *   (scanGroups = 8: about S/8 symbols per group, cut into execution messages of 25).
 *
 * `SCAN_SYMBOLS` (default 500) × `SCAN_YEARS` (default 20) of 1d bars.
 * RESULT scan_symbol_years_per_s (pipeline, default grouping), scan_pipeline_vs_inprocess, and
 * scan_pipeline_one_symbol_per_group_vs_inprocess (the old grouping, same run).
 */
import { fmt, gc, printResults, result, runBenchmark } from "./_support.js"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Layer } from "effect"
import { generateCatalog, loadSlice } from "../src/data/index.js"
import { parseFormula, scanWithValues } from "../src/engine/index.js"
import { scenarioWindow } from "../src/engine/window.js"
import { MAX_SCAN_MATCHES } from "../src/schemas/results.js"
import { dayEndMs, dayStartMs } from "../src/schemas/common.js"
import { actorSettingsLayer, shutdownLayer } from "../src/actors/common.js"
import { actorsLayer } from "../src/actors/index.js"
import { scanJob } from "../src/cli/scan.js"
import { busLayer } from "../src/streams/bus.js"
import { embeddedSettings, Nats } from "../src/streams/connection.js"
import { LoggingLive } from "../src/logging.js"

const S = Number(process.env.SCAN_SYMBOLS ?? 500)
const YEARS = Number(process.env.SCAN_YEARS ?? 20)
const SYMBOLS = Array.from({ length: S }, (_, i) => `X${String(i).padStart(4, "0")}`)
const FIRST_YEAR = 2020 - YEARS
const START = `${FIRST_YEAR + 1}-01-02`
const END = "2019-12-31"
const FORMULA = "close > sma(close, 50) and rsi(close, 14) < 40"
const SYMBOL_YEARS = S * (YEARS - 1)
const PIPELINE = ["coordinator", "availability", "requirements", "loader", "quality", "executor", "reporter"] as const

const inProcess = (root: string) =>
  Effect.gen(function* () {
    const formula = parseFormula(FORMULA)
    let matches = 0
    const t0 = performance.now()
    for (const symbol of SYMBOLS) {
      const loaded = yield* loadSlice(root, { symbol, freq: "1d", start: START, end: END, warmupBars: formula.lookback })
      const own = scenarioWindow({ warmupBars: formula.lookback, startMs: dayStartMs(START), endMs: dayEndMs(END) }, [loaded.series]).series[0]
      const found = scanWithValues(formula, own, MAX_SCAN_MATCHES)
      // the pipeline turns matches into result JSON: so does the peer
      matches += JSON.stringify(found.matches.map((m) => ({ ts: m.ts, time: new Date(m.ts).toISOString(), values: m.values }))).length > 0 ? found.matchCount : 0
    }
    return { seconds: (performance.now() - t0) / 1000, matches }
  })

const throughPipeline = (root: string, scanGroups: number, label: string) =>
  Effect.gen(function* () {
    gc()
    const t0 = performance.now()
    const job = yield* scanJob({ symbols: SYMBOLS, freq: "1d", start: START, end: END, formula: FORMULA, jobId: `bench-${label}` })
    const seconds = (performance.now() - t0) / 1000
    if (job.record.status !== "done" || job.results.length !== S || job.record.scan?.errors !== 0)
      return yield* Effect.die(new Error(`scan ${label} did not finish cleanly: ${JSON.stringify(job.record).slice(0, 500)}`))
    return { seconds, matches: job.record.scan!.matches, groups: job.record.groups }
  }).pipe(
    Effect.scoped,
    Effect.provide(
      actorsLayer(PIPELINE).pipe(
        Layer.provideMerge(
          Layer.mergeAll(actorSettingsLayer({ dataRoot: root, scanGroups }), shutdownLayer).pipe(
            Layer.provideMerge(busLayer()),
            Layer.provideMerge(Nats.Default),
            Layer.provideMerge(embeddedSettings())
          )
        )
      )
    )
  )

const main = Effect.gen(function* () {
  const root = mkdtempSync(join(tmpdir(), "tf-bench-scan-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(root, { recursive: true, force: true })))
  const g0 = performance.now()
  yield* generateCatalog({ root, symbols: SYMBOLS, freqs: ["1d"], start: `${FIRST_YEAR}-01-01`, end: END, seed: 5 })
  console.log(`catalog: ${S} symbols × ${YEARS} years of 1d bars in ${fmt((performance.now() - g0) / 1000)} s; scanning ${START} → ${END} (${SYMBOL_YEARS} symbol-years), formula: ${FORMULA}`)
  // warm the page cache and the JIT once, then measure
  yield* inProcess(root)
  const peer = yield* inProcess(root)
  const peerRate = SYMBOL_YEARS / peer.seconds
  console.log(`  in-process:               ${fmt(peer.seconds)} s, ${fmt(peerRate)} symbol-years/s, ${peer.matches} matches`)
  const single = yield* throughPipeline(root, S, "one-per-group")
  const singleRate = SYMBOL_YEARS / single.seconds
  console.log(`  pipeline, 1 symbol/group: ${fmt(single.seconds)} s, ${fmt(singleRate)} symbol-years/s, ${single.groups} groups, ${single.matches} matches`)
  const grouped = yield* throughPipeline(root, 8, "grouped")
  const groupedRate = SYMBOL_YEARS / grouped.seconds
  console.log(`  pipeline, grouped:        ${fmt(grouped.seconds)} s, ${fmt(groupedRate)} symbol-years/s, ${grouped.groups} groups, ${grouped.matches} matches`)
  if (single.matches !== peer.matches || grouped.matches !== peer.matches)
    return yield* Effect.die(new Error(`matches differ: in-process ${peer.matches}, pipeline ${single.matches} / ${grouped.matches}`))
  result("scan_symbol_years_per_s", groupedRate, `${fmt(peerRate * 0.5)} (half the in-process ${fmt(peerRate)})`)
  result("scan_pipeline_vs_inprocess", groupedRate / peerRate, "0.5")
  result("scan_pipeline_one_symbol_per_group_vs_inprocess", singleRate / peerRate, "-")
  result("scan_inprocess_symbol_years_per_s", peerRate, "-")
})

runBenchmark(main.pipe(Effect.scoped, Effect.provide(LoggingLive), Effect.tap(() => Effect.sync(printResults))))
