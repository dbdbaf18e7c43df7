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

export const resultsTable = (results: ReadonlyArray<ScenarioResult>, metric: MetricName, top: number): string => {
  const sorted = sortResults(results, metric).slice(0, top)
  const table = new Table({
    head: ["#", "scenario", "strategy", "universe", "total return", "CAGR", "Sharpe", "Sortino", "max DD", "trades", "win rate"],
    style: { head: [], border: [] }
  })
  sorted.forEach((r, i) => {
    const m = r.metrics!
    table.push([
      String(i + 1),
      r.scenario_id.length > 40 ? `${r.scenario_id.slice(0, 39)}…` : r.scenario_id,
      r.strategy,
      r.universe.join(",").slice(0, 20),
      fmt(m.total_return, true),
      fmt(m.cagr, true),
      fmt(m.sharpe),
      fmt(m.sortino),
      m.max_drawdown_pct === null ? "—" : `${m.max_drawdown_pct.toFixed(2)}%`,
      String(m.trades),
      fmt(m.win_rate, true)
    ])
  })
  return table.toString()
}

export const problemsList = (results: ReadonlyArray<ScenarioResult>, max = 20): string => {
  const bad = results.filter((r) => r.status !== "success").sort((a, b) => a.scenario_id.localeCompare(b.scenario_id))
  const lines = bad.slice(0, max).map((r) => `  ${r.status.padEnd(7)} ${r.scenario_id} [${r.phase ?? "?"}] ${r.reason ?? ""}`)
  if (bad.length > max) lines.push(`  ... and ${bad.length - max} more (see results.jsonl)`)
  return lines.join("\n")
}
