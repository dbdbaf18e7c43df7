/// <reference lib="dom" />
/**
 * report.html opened in headless Chromium (Debian's `chromium`, driven by playwright-core):
 * no console errors and no network requests (self-contained), one equity series per top run,
 * one heat-map cell per grid point, a leaderboard that sorts on click; a screenshot is saved.
 * The batch tree is built in-process from real engine runs on a generated Parquet catalog
 * (plan → replay → writeRunOutputs → writeBatchFiles), the same functions `run` uses.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect } from "effect"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { chromium, type Browser } from "playwright-core"
import { generateCatalog } from "../src/data/index.js"
import { ENGINE_VERSION } from "../src/engine/index.js"
import { expandBatch, parseBatchConfig } from "../src/schemas/batch.js"
import type { ScenarioResult } from "../src/schemas/results.js"
import { planBatch } from "../src/cli/plan.js"
import { replayScenario } from "../src/cli/replay.js"
import { writeRunOutputs } from "../src/cli/outputs.js"
import { writeBatchFiles } from "../src/report/index.js"

const CHROMIUM = process.env.TICKFLOW_CHROMIUM ?? "/usr/bin/chromium"
const dir = mkdtempSync(join(tmpdir(), "tf-report-"))
const batchDir = join(dir, "out", "report_test")
/** kept after the test for a person to look at */
const SCREENSHOT = resolve(__dirname, "..", "out", "test-artifacts", "report.png")
let browser: Browser | undefined

beforeAll(async () => {
  const root = join(dir, "catalog")
  await Effect.runPromise(generateCatalog({ root, symbols: ["AAA", "BBB"], freqs: ["1d"], start: "2015-01-01", end: "2020-12-31", seed: 11 }))
  const cfg = parseBatchConfig({
    batch_name: "report_test",
    defaults: { strategy: "trend_baseline", freq: "1d", start_date: "2016-01-04", end_date: "2020-06-30", universe: ["AAA"], start_capital: 50_000, commission_bps: 1, slippage_bps: 2 },
    runs: [{ id: "no_data", universe: ["ZZZ"] }, { id: "two", universe: ["AAA", "BBB"], strategy: "breakout" }],
    sweep: { id: "ema", grid: { fast: [5, 10, 20], slow: [50, 100, 150] } }
  })
  const scenarios = expandBatch(cfg, { batchId: "report_test", dataRoot: root })
  const plan = await planBatch(scenarios, { dataRoot: root, baseDir: dir })
  for (const e of plan.entries) {
    const s = e.scenario
    const base = { v: 1 as const, batch_id: s.batch_id, scenario_id: s.scenario_id, strategy: s.strategy, params: e.params ?? s.params, universe: s.universe, freq: s.freq, start_date: s.start_date, end_date: s.end_date, warnings: [], engine_version: ENGINE_VERSION, timings: {}, finished_at: new Date().toISOString() }
    if (e.status === "skipped") {
      const r: ScenarioResult = { ...base, status: "skipped", phase: e.problems[0].phase, reason: e.problems[0].reason }
      await writeRunOutputs({ outDir: batchDir, result: r, scenario: s, warmupBars: e.warmupBars, dataVersion: plan.dataVersion })
      continue
    }
    const detail = await Effect.runPromise(replayScenario(s, { dataRoot: root, baseDir: dir, cache: new Map() }))
    const r: ScenarioResult = { ...base, status: "success", metrics: detail.metrics, timings: { exec_ms: detail.execMs } }
    await writeRunOutputs({ outDir: batchDir, result: r, scenario: s, warmupBars: e.warmupBars, dataVersion: plan.dataVersion, detail })
  }
  await writeBatchFiles({ batchDir, batchId: "report_test", batchName: "report_test", expected: scenarios.map((s) => s.scenario_id), sort: "sharpe" })
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run \`bash scripts/bootstrap.sh --with-browser\` (npm test does) or set TICKFLOW_CHROMIUM`)
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
  })
}, 120_000)

afterAll(async () => {
  await browser?.close()
  rmSync(dir, { recursive: true, force: true })
})

describe("report.html", () => {
  it("opens without errors or network, draws one series per top run and one heat-map cell per grid point", async () => {
    const page = await browser!.newPage({ viewport: { width: 1400, height: 1000 } })
    const errors: string[] = []
    const external: string[] = []
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text())
    })
    page.on("pageerror", (e) => errors.push(String(e)))
    page.on("request", (r) => {
      if (!r.url().startsWith("file:")) external.push(r.url())
    })
    await page.goto(`file://${join(batchDir, "report.html")}`)
    await page.waitForFunction(() => (window as unknown as { tickflowCharts?: object }).tickflowCharts !== undefined)
    const summary = JSON.parse(readFileSync(join(batchDir, "summary.json"), "utf8"))
    expect(summary.counts).toEqual({ success: 10, skipped: 1, failed: 0, missing: 0 })
    const seen = await page.evaluate(() => {
      const charts = (window as unknown as { tickflowCharts: Record<string, { series: Array<{ label?: string }> }> }).tickflowCharts
      return {
        equity: charts.equity.series.slice(1).map((s) => s.label),
        drawdown: charts.drawdown.series.length - 1,
        legend: document.querySelectorAll("#equity .u-legend .u-series").length - 1,
        cells: Array.from(document.querySelectorAll("table.heatmap td.heat-cell"), (td) => td.getAttribute("title")),
        canvases: document.querySelectorAll("canvas").length
      }
    })
    // the top 5 by Sharpe, in order, from summary.json's own ranking
    const top = summary.runs
      .filter((r: { status: string }) => r.status === "success")
      .sort((a: { metrics: { sharpe: number | null }; run_id: string }, b: { metrics: { sharpe: number | null }; run_id: string }) => (b.metrics.sharpe ?? -Infinity) - (a.metrics.sharpe ?? -Infinity) || a.run_id.localeCompare(b.run_id))
      .slice(0, 5)
      .map((r: { run_id: string }) => r.run_id)
    expect(seen.equity).toEqual(top)
    expect(seen.drawdown).toBe(5)
    expect(seen.legend).toBe(5)
    expect(seen.canvases).toBeGreaterThanOrEqual(2)
    // 3 × 3 grid: one cell per (fast, slow), each naming its run
    expect(seen.cells).toHaveLength(9)
    for (const f of [5, 10, 20]) for (const s of [50, 100, 150]) expect(seen.cells.some((t) => t?.startsWith(`ema__fast-${f}__slow-${s} `))).toBe(true)
    // sortable: a click on "run" sorts by id ascending
    await page.click("#leaderboard th[data-col='0']")
    const ids = await page.$$eval("#leaderboard tbody tr td:first-child", (tds) => tds.map((td) => td.textContent ?? ""))
    expect(ids).toEqual([...ids].sort((a, b) => a.localeCompare(b)))
    expect(ids).toHaveLength(11)
    expect(errors).toEqual([])
    expect(external).toEqual([])
    mkdirSync(resolve(SCREENSHOT, ".."), { recursive: true })
    await page.screenshot({ path: SCREENSHOT, fullPage: true })
    expect(statSync(SCREENSHOT).size).toBeGreaterThan(10_000)
    await page.close()
  }, 60_000)
})
