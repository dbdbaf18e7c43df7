/**
 * `tickflow leaderboard <batch>`: the ranked runs of a batch folder, `--export-best` writes the
 * best run as a batch file of its own (same id and seed, so it reproduces the same numbers).
 * `tickflow gate <batch>`: the readiness gate of the best run — a determinism re-run, costs
 * above zero, and thresholds for Sharpe, drawdown and return — pass or fail per check.
 */
import { existsSync } from "node:fs"
import { readFile } from "node:fs/promises"
import { isAbsolute, join, resolve } from "node:path"
import { Effect } from "effect"
import Table from "cli-table3"
import YAML from "yaml"
import { z } from "zod"
import { parseBatchConfig } from "../schemas/batch.js"
import { formatIssues } from "../schemas/errors.js"
import { rankRuns, readEquityCsv, readOrdersCsv } from "../report/index.js"
import { readBatchInfo, readRuns, sameMetrics, writeFileAtomic, type RunOnDisk } from "./outputs.js"
import { replayScenario } from "./replay.js"
import { scenarioAsRun } from "./run.js"

/** A batch given as a folder path, or as an id under the output root. */
export const resolveBatchDir = (batch: string, outRoot: string): string => {
  const asPath = isAbsolute(batch) ? batch : resolve(batch)
  if (existsSync(join(asPath, "batch.json")) || existsSync(join(asPath, "summary.json"))) return asPath
  return resolve(outRoot, batch)
}

const loadBatch = async (batch: string, outRoot: string) => {
  const dir = resolveBatchDir(batch, outRoot)
  const runs = await readRuns(dir)
  if (runs.length === 0) throw new Error(`no runs under ${dir}: give a batch folder, or a batch id under --out ${outRoot}`)
  return { dir, runs, info: await readBatchInfo(dir) }
}

const cell = (v: unknown, pct = false) => (typeof v !== "number" ? "—" : pct ? `${(v * 100).toFixed(2)}%` : Math.abs(v) >= 1e5 ? v.toFixed(0) : v.toFixed(3))

export interface LeaderboardOptions {
  readonly batch: string
  readonly out: string
  readonly sort: string
  readonly top: number
  readonly exportBest?: string
  readonly json?: boolean
}

export const leaderboard = async (o: LeaderboardOptions): Promise<number> => {
  const { dir, runs, info } = await loadBatch(o.batch, o.out)
  const ranked = rankRuns(runs, o.sort)
  if (o.json) console.log(JSON.stringify(ranked.slice(0, o.top).map((r, i) => ({ rank: i + 1, run_id: r.manifest.run_id, params: r.manifest.params, metrics: r.metrics })), null, 2))
  else {
    // only the parameters that differ between the rows shown
    const shown = ranked.slice(0, o.top)
    const paramKeys = [...new Set(shown.flatMap((r) => Object.keys(r.manifest.params)))]
      .filter((k) => new Set(shown.map((r) => JSON.stringify(r.manifest.params[k] ?? null))).size > 1)
      .sort()
    const table = new Table({ head: ["#", "run", ...paramKeys, "return", "Sharpe", "max DD", "CAGR", "trades"], style: { head: [], border: [] } })
    ranked.slice(0, o.top).forEach((r, i) => {
      const m = r.metrics!
      table.push([String(i + 1), r.manifest.run_id, ...paramKeys.map((k) => String(r.manifest.params[k] ?? "")), cell(m.total_return, true), cell(m.sharpe), m.max_drawdown_pct === null ? "—" : `${m.max_drawdown_pct.toFixed(2)}%`, cell(m.cagr, true), String(m.trades)])
    })
    console.log(`${dir}: ${ranked.length} successful of ${runs.length} runs, by ${o.sort}`)
    console.log(table.toString())
  }
  if (o.exportBest) {
    const best = ranked[0]
    if (!best) throw new Error(`no successful run in ${dir} to export`)
    const s = best.manifest.scenario
    if (!s) throw new Error(`${best.manifest.run_id} was recorded without its scenario (watch without --config); cannot export it`)
    const batchName = `${info?.batch_name ?? "batch"}_best`.slice(0, 128)
    const cfg = {
      batch_name: batchName,
      ...(info ? { data_root: info.data_root } : {}),
      seed: s.batch_seed,
      strict: s.strict,
      runs: [scenarioAsRun(s)]
    }
    parseBatchConfig(cfg, o.exportBest) // what we write must be a valid batch
    const text = `# The best run of ${best.manifest.batch_id} by ${o.sort} (${cell(best.metrics?.[o.sort as "sharpe"])}), exported by tickflow leaderboard.\n# Same id and seed: \`tickflow run\` on this file reproduces its numbers.\n${YAML.stringify(cfg)}`
    await writeFileAtomic(resolve(o.exportBest), text)
    console.error(`best run ${best.manifest.run_id} written to ${o.exportBest}`)
  }
  return 0
}

/** Gate thresholds: flags override the file, the file overrides the defaults. */
export const GateThresholds = z.strictObject({
  min_sharpe: z.number().default(0.5),
  max_drawdown_pct: z.number().min(0).default(30),
  min_total_return: z.number().default(0)
})
export type GateThresholds = z.infer<typeof GateThresholds>

export interface GateOptions {
  readonly batch: string
  readonly out: string
  readonly sort: string
  readonly config?: string
  readonly minSharpe?: number
  readonly maxDrawdownPct?: number
  readonly minTotalReturn?: number
  readonly dataRoot?: string
  readonly json?: boolean
}

export interface GateCheck {
  readonly check: string
  readonly pass: boolean
  readonly value: string
  readonly threshold: string
}

const loadThresholds = async (o: GateOptions): Promise<GateThresholds> => {
  let raw: Record<string, unknown> = {}
  if (o.config) {
    const parsed = YAML.parse(await readFile(o.config, "utf8")) as Record<string, unknown> | null
    raw = (parsed && typeof parsed === "object" && "gate" in parsed ? (parsed.gate as Record<string, unknown>) : parsed) ?? {}
  }
  const r = GateThresholds.safeParse(
    { ...raw, ...(o.minSharpe !== undefined ? { min_sharpe: o.minSharpe } : {}), ...(o.maxDrawdownPct !== undefined ? { max_drawdown_pct: o.maxDrawdownPct } : {}), ...(o.minTotalReturn !== undefined ? { min_total_return: o.minTotalReturn } : {}) },
    { reportInput: true }
  )
  if (!r.success) throw new Error(`gate thresholds${o.config ? ` in ${o.config}` : ""}:\n  ${formatIssues(r.error).join("\n  ")}`)
  return r.data
}

/** The checks of the gate on the best run; the determinism check replays it locally. */
export const gateChecks = async (best: RunOnDisk, dir: string, t: GateThresholds, dataRoot: string, baseDir: string): Promise<GateCheck[]> => {
  const m = best.metrics!
  const s = best.manifest.scenario
  const checks: GateCheck[] = []
  // determinism: the same scenario on the same slice gives the same metrics and the same curve
  if (!s || best.manifest.warmup_bars === null) checks.push({ check: "determinism", pass: false, value: "no scenario recorded (watch without --config)", threshold: "identical re-run" })
  else {
    const replay = await Effect.runPromise(Effect.either(replayScenario(s, { dataRoot, baseDir, cache: new Map() })))
    if (replay._tag === "Left") checks.push({ check: "determinism", pass: false, value: `re-run failed: ${(replay.left as Error).message}`, threshold: "identical re-run" })
    else {
      const diff = sameMetrics(m, replay.right.metrics)
      const eq = await readEquityCsv(join(dir, best.manifest.run_id)).catch(() => undefined)
      const e = replay.right.equity
      const curveSame = eq !== undefined && eq.nav.length === e.length && eq.nav.every((v, i) => v === e.nav[i] && eq.ts[i] === e.ts[i])
      checks.push({
        check: "determinism",
        pass: diff === undefined && curveSame,
        value: diff ?? (curveSame ? `metrics and ${e.length}-point equity curve identical` : "equity curve differs from equity.csv"),
        threshold: "identical re-run"
      })
    }
  }
  const costs = s?.costs
  const costSum = costs ? costs.commission_bps + costs.spread_w + costs.impact_w + costs.slippage_bps : 0
  const orders = await readOrdersCsv(join(dir, best.manifest.run_id))
  const paid = orders?.reduce((a, o) => a + o.commission + o.slippage, 0)
  checks.push({
    check: "costs > 0",
    pass: costSum > 0 && (orders === undefined || orders.length === 0 || (paid ?? 0) > 0),
    value: costs ? `commission ${costs.commission_bps} bps, slippage ${costs.slippage_bps} bps, spread_w ${costs.spread_w}, impact_w ${costs.impact_w}${paid !== undefined ? `; paid ${paid.toFixed(2)} on ${orders!.length} fills` : ""}` : "unknown",
    threshold: "> 0"
  })
  checks.push({ check: "Sharpe", pass: m.sharpe !== null && m.sharpe >= t.min_sharpe, value: cell(m.sharpe), threshold: `>= ${t.min_sharpe}` })
  checks.push({ check: "max drawdown", pass: m.max_drawdown_pct !== null && m.max_drawdown_pct <= t.max_drawdown_pct, value: m.max_drawdown_pct === null ? "—" : `${m.max_drawdown_pct.toFixed(2)}%`, threshold: `<= ${t.max_drawdown_pct}%` })
  checks.push({ check: "total return", pass: m.total_return !== null && m.total_return >= t.min_total_return, value: cell(m.total_return, true), threshold: `>= ${(t.min_total_return * 100).toFixed(2)}%` })
  return checks
}

export const gate = async (o: GateOptions): Promise<number> => {
  const thresholds = await loadThresholds(o)
  const { dir, runs, info } = await loadBatch(o.batch, o.out)
  const best = rankRuns(runs, o.sort)[0]
  if (!best) throw new Error(`no successful run in ${dir}: nothing to gate`)
  const dataRoot = resolve(o.dataRoot ?? info?.data_root ?? process.env.TICKFLOW_DATA_ROOT ?? ".tickflow/data")
  const checks = await gateChecks(best, dir, thresholds, dataRoot, info?.base_dir ?? process.cwd())
  const pass = checks.every((c) => c.pass)
  if (o.json) console.log(JSON.stringify({ batch_dir: dir, run_id: best.manifest.run_id, sort: o.sort, pass, thresholds, checks }, null, 2))
  else {
    const table = new Table({ head: ["check", "result", "value", "threshold"], style: { head: [], border: [] } })
    for (const c of checks) table.push([c.check, c.pass ? "PASS" : "FAIL", c.value, c.threshold])
    console.log(`gate: best run ${best.manifest.run_id} of ${dir} by ${o.sort}`)
    console.log(table.toString())
    console.log(pass ? "gate: PASS" : `gate: FAIL (${checks.filter((c) => !c.pass).map((c) => c.check).join(", ")})`)
  }
  return pass ? 0 : 1
}
