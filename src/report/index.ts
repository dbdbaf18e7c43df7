/**
 * The batch-level files of an output tree — summary.csv, summary.json, report.html — rebuilt
 * from the run folders on disk (so a resumed or watched batch has exactly one row per run).
 */
import { readFile } from "node:fs/promises"
import { join } from "node:path"
import type { MetricsRecord } from "../schemas/results.js"
import { readRuns, summariseWarnings, summaryCsv, writeFileAtomic, type BatchSummary, type RunOnDisk } from "../cli/outputs.js"
import { renderReport, type EquityCurve, type RunStats } from "./report.js"

/** Lower is better for these; the rest rank descending. */
export const lowerIsBetter = (metric: string) => metric === "max_drawdown_pct" || metric === "volatility"

/** Successful runs, best first by `metric` (nulls last, then by id). */
export const rankRuns = (runs: ReadonlyArray<RunOnDisk>, metric: string): RunOnDisk[] => {
  const value = (r: RunOnDisk) => {
    const v = r.metrics?.[metric as keyof MetricsRecord]
    return typeof v === "number" ? v : null
  }
  return runs
    .filter((r) => r.manifest.status === "success" && r.metrics)
    .sort((a, b) => {
      const va = value(a)
      const vb = value(b)
      if (va === null || vb === null) return va === vb ? a.manifest.run_id.localeCompare(b.manifest.run_id) : va === null ? 1 : -1
      const d = lowerIsBetter(metric) ? va - vb : vb - va
      return d !== 0 ? d : a.manifest.run_id.localeCompare(b.manifest.run_id)
    })
}

export const readEquityCsv = async (runDir: string): Promise<{ ts: number[]; nav: number[] }> => {
  const text = await readFile(join(runDir, "equity.csv"), "utf8")
  const ts: number[] = []
  const nav: number[] = []
  for (const line of text.split("\n").slice(1)) {
    if (!line) continue
    const [, t, v] = line.split(",")
    ts.push(Number(t))
    nav.push(Number(v))
  }
  return { ts, nav }
}

export interface OrderRow {
  readonly time: string
  readonly symbol: string
  readonly side: string
  readonly quantity: number
  readonly price: number
  readonly commission: number
  readonly slippage: number
}

export const readOrdersCsv = async (runDir: string): Promise<OrderRow[] | undefined> => {
  let text: string
  try {
    text = await readFile(join(runDir, "orders.csv"), "utf8")
  } catch {
    return undefined
  }
  return text
    .split("\n")
    .slice(1)
    .filter(Boolean)
    .map((line) => {
      const [time, symbol, side, quantity, price, , commission, slippage] = line.split(",")
      return { time, symbol, side, quantity: Number(quantity), price: Number(price), commission: Number(commission), slippage: Number(slippage) }
    })
}

const pct = (v: number | null | undefined, digits = 2) => (typeof v === "number" ? `${(v * 100).toFixed(digits)}%` : "—")
const num = (v: number | null | undefined, digits = 3) => (typeof v === "number" ? v.toFixed(digits) : "—")
const money = (v: number) => v.toLocaleString("en-US", { maximumFractionDigits: 2, minimumFractionDigits: 2 })

/** LEAN's summary statistics, as far as a run's metrics, equity and fills define them. */
export const leanStats = (run: RunOnDisk, equity: { ts: number[]; nav: number[] }, orders: OrderRow[] | undefined): RunStats => {
  const m = run.metrics!
  const s = run.manifest.scenario
  const traded = orders?.reduce((a, o) => a + o.quantity * o.price, 0) ?? null
  const fees = orders?.reduce((a, o) => a + o.commission, 0) ?? null
  const slip = orders?.reduce((a, o) => a + o.slippage, 0) ?? null
  const meanNav = equity.nav.length ? equity.nav.reduce((a, b) => a + b, 0) / equity.nav.length : null
  const days = new Set(equity.ts.map((t) => Math.floor(t / 86_400_000))).size
  const turnover = traded !== null && meanNav && days ? traded / meanNav / days : null
  const stats: Array<[string, string]> = [
    ["Total Orders", orders ? String(orders.length) : "—"],
    ["Closed Trades", String(m.trades)],
    ["Compounding Annual Return", m.cagr === null ? `— (${m.notes.cagr ?? "n/a"})` : pct(m.cagr, 3)],
    ["Drawdown", typeof m.max_drawdown_pct === "number" ? `${m.max_drawdown_pct.toFixed(3)}%` : "—"],
    ["Net Profit", pct(m.total_return, 3)],
    ["Sharpe Ratio", num(m.sharpe)],
    ["Sortino Ratio", num(m.sortino)],
    ["Win Rate", pct(m.win_rate, 0)],
    ["Loss Rate", typeof m.win_rate === "number" ? pct(1 - m.win_rate, 0) : "—"],
    ["Profit Factor", num(m.profit_factor)],
    ["Annual Standard Deviation", num(m.volatility)],
    ["Annual Variance", typeof m.volatility === "number" ? num(m.volatility * m.volatility) : "—"],
    ["Beta", num(m.beta ?? null)],
    ["Start Equity", s ? money(s.start_capital) : "—"],
    ["End Equity", money(m.final_equity)],
    ["Total Fees", fees === null ? "—" : money(fees)],
    ["Slippage and Spread Paid", slip === null ? "—" : money(slip)],
    ["Portfolio Turnover", turnover === null ? "—" : pct(turnover)],
    ["Exposure", pct(m.exposure, 1)]
  ]
  return { run_id: run.manifest.run_id, stats }
}

export interface WriteBatchFilesOptions {
  readonly batchDir: string
  readonly batchId: string
  readonly batchName: string
  /** scenario ids the batch has (runs without a folder count as missing); all folders when absent */
  readonly expected?: ReadonlyArray<string>
  readonly sort: string
  /** why the batch ended early (interrupted, batch-level failure) */
  readonly ended?: "interrupted" | "failed"
  readonly error?: string
  readonly extra?: Record<string, unknown>
  /** equity curves drawn in the report */
  readonly topCurves?: number
  /** runs with LEAN statistics in the report */
  readonly topStats?: number
}

/** summary.csv, summary.json and report.html from the run folders; returns the summary. */
export const writeBatchFiles = async (o: WriteBatchFilesOptions): Promise<BatchSummary> => {
  let runs = await readRuns(o.batchDir)
  if (o.expected) {
    const want = new Set(o.expected)
    runs = runs.filter((r) => want.has(r.manifest.run_id))
  }
  const counts = { success: 0, skipped: 0, failed: 0, missing: 0 }
  for (const r of runs) counts[r.manifest.status]++
  const total = o.expected?.length ?? runs.length
  counts.missing = total - runs.length
  const ranked = rankRuns(runs, o.sort)
  const best = ranked[0]
  const bestValue = best?.metrics?.[o.sort as keyof MetricsRecord]
  const status: BatchSummary["status"] = o.ended ?? (counts.missing > 0 ? "incomplete" : "done")
  const summary: BatchSummary = {
    batch_id: o.batchId,
    batch_name: o.batchName,
    status,
    total,
    counts,
    exit_code: counts.success === total && status === "done" ? 0 : 1,
    output_dir: o.batchDir,
    ...(best && typeof bestValue === "number" ? { best: { run_id: best.manifest.run_id, metric: o.sort, value: bestValue } } : {}),
    ...(o.error ? { error: o.error } : {}),
    warnings: summariseWarnings(runs),
    files: { summary_csv: join(o.batchDir, "summary.csv"), summary_json: join(o.batchDir, "summary.json"), report: join(o.batchDir, "report.html") },
    ...(o.extra ?? {}),
    runs: runs.map(({ manifest: m, metrics }) => ({
      run_id: m.run_id,
      status: m.status,
      ...(m.phase ? { phase: m.phase } : {}),
      ...(m.reason ? { reason: m.reason } : {}),
      params: m.params,
      ...(metrics ? { metrics } : {}),
      cached: m.cached,
      result_key: m.result_key
    }))
  }
  await writeFileAtomic(join(o.batchDir, "summary.csv"), summaryCsv(runs))
  await writeFileAtomic(join(o.batchDir, "summary.json"), JSON.stringify(summary, null, 2) + "\n")
  const curves: EquityCurve[] = []
  for (const r of ranked.slice(0, o.topCurves ?? 5)) {
    const eq = await readEquityCsv(join(o.batchDir, r.manifest.run_id)).catch(() => undefined)
    if (eq && eq.ts.length > 0) curves.push({ run_id: r.manifest.run_id, ...eq })
  }
  const stats: RunStats[] = []
  for (const r of ranked.slice(0, o.topStats ?? 50)) {
    const dir = join(o.batchDir, r.manifest.run_id)
    const eq = await readEquityCsv(dir).catch(() => ({ ts: [], nav: [] }))
    stats.push(leanStats(r, eq, await readOrdersCsv(dir)))
  }
  await writeFileAtomic(join(o.batchDir, "report.html"), await renderReport({ summary, runs, sort: o.sort, curves, stats }))
  return summary
}
