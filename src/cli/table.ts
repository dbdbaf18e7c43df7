/** Result tables for the terminal: sorted by a chosen metric, skipped/failed listed with reasons. */
import Table from "cli-table3"
import { METRIC_NAMES, type MetricName, type ScenarioResult } from "../schemas/results.js"

export const parseMetric = (text: string): MetricName => {
  if (!(METRIC_NAMES as readonly string[]).includes(text))
    throw new Error(`--sort: "${text}" is not a metric; choose from ${METRIC_NAMES.join(", ")}`)
  return text as MetricName
}

/** Lower is better only for drawdown-like metrics; the rest sort descending. */
const ascending = (m: MetricName) => m === "volatility"

const fmt = (v: number | null | undefined, pct = false): string => {
  if (v === null || v === undefined) return "—"
  if (pct) return `${(v * 100).toFixed(2)}%`
  if (Math.abs(v) >= 1e5) return v.toExponential(3)
  return Number.isInteger(v) ? String(v) : v.toFixed(3)
}

export const sortResults = (results: ReadonlyArray<ScenarioResult>, metric: MetricName): ScenarioResult[] => {
  const ok = results.filter((r) => r.status === "success" && r.metrics)
  const value = (r: ScenarioResult) => (r.metrics?.[metric] as number | null | undefined) ?? null
  return [...ok].sort((a, b) => {
    const va = value(a)
    const vb = value(b)
    if (va === null && vb === null) return a.scenario_id.localeCompare(b.scenario_id)
    if (va === null) return 1
    if (vb === null) return -1
    const d = ascending(metric) ? va - vb : vb - va
    return d !== 0 ? d : a.scenario_id.localeCompare(b.scenario_id)
  })
}

type Column = { head: string; priority: number; cell: (r: ScenarioResult, rank: number) => string }

const COLUMNS: ReadonlyArray<Column> = [
  { head: "#", priority: 0, cell: (_r, i) => String(i) },
  { head: "scenario", priority: 0, cell: (r) => (r.scenario_id.length > 40 ? `${r.scenario_id.slice(0, 39)}…` : r.scenario_id) },
  { head: "strategy", priority: 9, cell: (r) => r.strategy },
  { head: "universe", priority: 10, cell: (r) => r.universe.join(",").slice(0, 20) },
  { head: "return", priority: 2, cell: (r) => fmt(r.metrics!.total_return, true) },
  { head: "CAGR", priority: 4, cell: (r) => fmt(r.metrics!.cagr, true) },
  { head: "Sharpe", priority: 1, cell: (r) => fmt(r.metrics!.sharpe) },
  { head: "Sortino", priority: 7, cell: (r) => fmt(r.metrics!.sortino) },
  { head: "max DD", priority: 3, cell: (r) => (r.metrics!.max_drawdown_pct === null ? "—" : `${r.metrics!.max_drawdown_pct.toFixed(2)}%`) },
  { head: "trades", priority: 5, cell: (r) => String(r.metrics!.trades) },
  { head: "win rate", priority: 8, cell: (r) => fmt(r.metrics!.win_rate, true) }
]

/**
 * The top runs as a table no wider than `width` (the terminal's): columns are dropped from the
 * least important (universe, strategy, win rate, …) until it fits; run id, rank and Sharpe stay.
 */
/** The width a table may take on stdout: the terminal's, or unlimited when piped. */
export const terminalWidth = (stream: NodeJS.WriteStream = process.stdout): number => (stream.isTTY ? stream.columns || 120 : Number.POSITIVE_INFINITY)

export const resultsTable = (results: ReadonlyArray<ScenarioResult>, metric: MetricName, top: number, width = terminalWidth()): string => {
  const sorted = sortResults(results, metric).slice(0, top)
  const cells = COLUMNS.map((c) => sorted.map((r, i) => c.cell(r, i + 1)))
  // a column costs its widest cell plus padding and a border (cli-table3: 1 + 1 + 1)
  const cost = COLUMNS.map((c, k) => Math.max(c.head.length, ...cells[k].map((x) => x.length)) + 3)
  const byPriority = COLUMNS.map((c, k) => ({ k, p: c.priority })).sort((a, b) => a.p - b.p || a.k - b.k)
  const keep = new Set<number>()
  let used = 1
  for (const { k, p } of byPriority) {
    if (p > 0 && used + cost[k] > width) continue
    keep.add(k)
    used += cost[k]
  }
  const shown = COLUMNS.map((_, k) => k).filter((k) => keep.has(k))
  const table = new Table({ head: shown.map((k) => COLUMNS[k].head), style: { head: [], border: [] } })
  sorted.forEach((_, i) => table.push(shown.map((k) => cells[k][i])))
  return table.toString()
}

export const problemsList = (results: ReadonlyArray<ScenarioResult>, max = 20): string => {
  const bad = results.filter((r) => r.status !== "success").sort((a, b) => a.scenario_id.localeCompare(b.scenario_id))
  const lines = bad.slice(0, max).map((r) => `  ${r.status.padEnd(7)} ${r.scenario_id} [${r.phase ?? "?"}] ${r.reason ?? ""}`)
  if (bad.length > max) lines.push(`  ... and ${bad.length - max} more (see results.jsonl)`)
  return lines.join("\n")
}
