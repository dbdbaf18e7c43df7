/**
 * The output tree of a batch, written by `run` and `watch`, read by `leaderboard`, `gate` and
 * `--resume`:
 *
 *   {out}/{batch}/batch.json            what was run: config, data root, ids
 *                 summary.csv, summary.json, report.html
 *                 {run_id}/run_manifest.json, run_timings.json, metrics.json, equity.csv, orders.csv
 *
 * Every file is written atomically (a temp file in the same folder, then rename), so a crash
 * leaves the old file or the new one, never half of one. The summaries are rebuilt from the run
 * folders on disk, so a resumed batch has one row per run, whatever ran when.
 */
import { createHash } from "node:crypto"
import { execFile } from "node:child_process"
import { randomUUID } from "node:crypto"
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { z } from "zod"
import { ENGINE_VERSION, scenarioSeed } from "../engine/index.js"
import { Scenario } from "../schemas/batch.js"
import { METRIC_NAMES, MetricsSchema, type MetricsRecord, type ScenarioResult } from "../schemas/results.js"
import type { Fill, RunDetail } from "./replay.js"

/** Writes `data` to `path` through a temp file in the same directory and a rename. */
export const writeFileAtomic = async (path: string, data: string | Uint8Array): Promise<void> => {
  await mkdir(dirname(path), { recursive: true })
  // unique without a counter: concurrent writers of one path never share a temp file
  const temp = `${path}.tmp-${process.pid}-${randomUUID()}`
  try {
    await writeFile(temp, data)
    await rename(temp, path)
  } catch (e) {
    await rm(temp, { force: true })
    throw e
  }
}

const sortKeys = (v: unknown): unknown =>
  Array.isArray(v)
    ? v.map(sortKeys)
    : v && typeof v === "object"
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, x]) => [k, sortKeys(x)]))
      : v

/**
 * What decides a run's numbers: its canonical scenario content (not its batch), the catalog's
 * data version and the engine version. Same key → same result, so `--resume` may keep it.
 */
export const runKeyOf = (s: Scenario, dataVersion: string | undefined, engineVersion = ENGINE_VERSION): string => {
  const { v: _v, batch_id: _b, data_root: _d, name: _n, ...content } = s
  return createHash("sha256")
    .update(JSON.stringify(sortKeys({ content, seed: scenarioSeed(s.batch_seed, s.scenario_id), data_version: dataVersion ?? null, engine_version: engineVersion })))
    .digest("hex")
    .slice(0, 32)
}

export const RunManifestFile = z.object({
  run_id: z.string(),
  batch_id: z.string(),
  status: z.enum(["success", "skipped", "failed"]),
  phase: z.string().optional(),
  reason: z.string().optional(),
  started_at: z.string().nullable(),
  finished_at: z.string(),
  runtime_sec: z.number().nullable(),
  params: z.record(z.string(), z.unknown()),
  seed: z.number().nullable(),
  git_commit: z.string().nullable(),
  engine_version: z.string(),
  data_versions: z.record(z.string(), z.string()),
  result_key: z.string(),
  /** the key `run` computed before running (compared by --resume; equals result_key for built-in strategies) */
  plan_key: z.string().optional(),
  cached: z.boolean(),
  timings_path: z.string(),
  output_dir: z.string(),
  /**
   * the full scenario, so `gate` can re-run it and `leaderboard --export-best` write it out;
   * null when `watch` recorded the run without the batch file
   */
  scenario: Scenario.nullable(),
  /** warm-up bars the run read before its start (the replay reads the same) */
  warmup_bars: z.number().int().min(0).nullable(),
  warnings: z.array(z.string()),
  /** did the local replay (equity.csv, orders.csv) reproduce the pipeline's metrics? */
  replay: z.object({ matches: z.boolean(), note: z.string().optional() }).optional(),
  files: z.array(z.string())
})
export type RunManifestFile = z.infer<typeof RunManifestFile>

export const BatchInfoFile = z.object({
  batch_id: z.string(),
  batch_name: z.string(),
  config_file: z.string().nullable(),
  config: z.unknown(),
  data_root: z.string(),
  base_dir: z.string(),
  created_at: z.string(),
  /** the metric the table and report rank by */
  sort: z.string().default("sharpe")
})
export type BatchInfoFile = z.infer<typeof BatchInfoFile>

let gitCommitMemo: Promise<string | null> | undefined
/** The tickflow checkout's commit (null outside a git checkout); asked once per process. */
export const gitCommit = (): Promise<string | null> =>
  (gitCommitMemo ??= new Promise((res) => {
    const here = dirname(fileURLToPath(import.meta.url))
    execFile("git", ["rev-parse", "HEAD"], { cwd: here, timeout: 5_000 }, (err, out) => res(err ? null : out.trim() || null))
  }))

const csvCell = (v: unknown): string => {
  if (v === null || v === undefined) return ""
  const s = typeof v === "object" ? JSON.stringify(v) : String(v)
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}
export const csvLine = (cells: ReadonlyArray<unknown>): string => cells.map(csvCell).join(",") + "\n"

export const equityCsv = (eq: RunDetail["equity"]): string => {
  const parts = ["time,ts_ms,nav\n"]
  for (let i = 0; i < eq.length; i++) parts.push(`${new Date(eq.ts[i]).toISOString()},${eq.ts[i]},${eq.nav[i]}\n`)
  return parts.join("")
}

export const ordersCsv = (fills: ReadonlyArray<Fill>): string =>
  "time,symbol,side,quantity,price,reference_price,commission,slippage\n" +
  fills.map((f) => csvLine([new Date(f.ts).toISOString(), f.symbol, f.side, f.quantity, f.price, f.reference_price, f.commission, f.slippage])).join("")

/** The metrics that must agree between the pipeline's result and the local replay. */
export const sameMetrics = (a: MetricsRecord, b: MetricsRecord): string | undefined => {
  for (const k of METRIC_NAMES) if (a[k] !== b[k]) return `${k}: pipeline ${a[k]}, replay ${b[k]}`
  return undefined
}

export interface RunOutputInput {
  readonly outDir: string
  readonly result: ScenarioResult
  readonly scenario: Scenario | null
  readonly warmupBars: number | null
  readonly dataVersion: string | undefined
  /** the key the plan computed, used when the result carries none (skipped runs) */
  readonly resultKey?: string
  /** the replay with the full curve and fills (success only); a string says why there is none */
  readonly detail?: RunDetail | string
  readonly replayMs?: number
}

/** Writes one run's folder; the manifest goes last, so a manifest means the run's files are complete. */
export const writeRunOutputs = async (input: RunOutputInput): Promise<RunManifestFile> => {
  const { result: r, scenario: s } = input
  const dir = join(input.outDir, r.scenario_id)
  const files: string[] = []
  const write = async (name: string, data: string) => {
    await writeFileAtomic(join(dir, name), data)
    files.push(name)
  }
  const warnings = [...r.warnings]
  let replay: RunManifestFile["replay"]
  const detail = typeof input.detail === "object" ? input.detail : undefined
  if (r.status === "success" && r.metrics) {
    if (detail) {
      const diff = sameMetrics(r.metrics, detail.metrics)
      replay = diff ? { matches: false, note: `the local replay differs from the pipeline's result (${diff})` } : { matches: true }
      if (diff) warnings.push(replay.note!)
      // metrics.json is the replay's, so it always agrees with equity.csv beside it
      await write("metrics.json", JSON.stringify(detail.metrics, null, 2) + "\n")
      await write("equity.csv", equityCsv(detail.equity))
      await write("orders.csv", ordersCsv(detail.fills))
    } else {
      const note = `no local replay: ${typeof input.detail === "string" ? input.detail : "not attempted"}; equity.csv holds the result's ${r.equity?.ts.length ?? 0} sampled points and orders.csv is absent`
      replay = { matches: false, note }
      warnings.push(note)
      await write("metrics.json", JSON.stringify(r.metrics, null, 2) + "\n")
      const eq = r.equity ?? { ts: [], nav: [] }
      await write("equity.csv", equityCsv({ ts: Float64Array.from(eq.ts), nav: Float64Array.from(eq.nav), length: eq.ts.length }))
    }
  }
  const execMs = r.timings.exec_ms
  const finished = Date.parse(r.finished_at)
  const timings = {
    exec_ms: execMs ?? null,
    load_ms: r.timings.load_ms ?? null,
    replay_ms: detail ? Math.round(detail.execMs * 1000) / 1000 : null,
    replay_with_load_ms: input.replayMs ?? null,
    finished_at: r.finished_at
  }
  await write("run_timings.json", JSON.stringify(timings, null, 2) + "\n")
  const extra = r as ScenarioResult & { result_key?: string; cached?: boolean }
  const manifest: RunManifestFile = {
    run_id: r.scenario_id,
    batch_id: s?.batch_id ?? r.batch_id,
    status: r.status,
    ...(r.phase ? { phase: r.phase } : {}),
    ...(r.reason ? { reason: r.reason } : {}),
    started_at: execMs !== undefined && Number.isFinite(finished) ? new Date(finished - execMs).toISOString() : null,
    finished_at: r.finished_at,
    runtime_sec: execMs !== undefined ? execMs / 1000 : null,
    params: r.params,
    seed: s ? scenarioSeed(s.batch_seed, s.scenario_id) : null,
    git_commit: await gitCommit(),
    engine_version: r.engine_version,
    data_versions: r.data_version ?? input.dataVersion ? { catalog: (r.data_version ?? input.dataVersion)! } : {},
    result_key: extra.result_key ?? input.resultKey ?? (s ? runKeyOf(s, r.data_version ?? input.dataVersion, r.engine_version) : "unknown"),
    ...(input.resultKey ? { plan_key: input.resultKey } : {}),
    cached: extra.cached ?? false,
    timings_path: join(dir, "run_timings.json"),
    output_dir: dir,
    scenario: s,
    warmup_bars: input.warmupBars,
    warnings,
    ...(replay ? { replay } : {}),
    files: [...files, "run_manifest.json"]
  }
  await writeFileAtomic(join(dir, "run_manifest.json"), JSON.stringify(manifest, null, 2) + "\n")
  return manifest
}

export interface RunOnDisk {
  readonly manifest: RunManifestFile
  readonly metrics?: MetricsRecord
}

/** Every run folder of a batch with a readable manifest (half-written runs have none). */
export const readRuns = async (batchDir: string): Promise<RunOnDisk[]> => {
  let names: string[]
  try {
    names = (await readdir(batchDir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name)
  } catch {
    return []
  }
  const out: RunOnDisk[] = []
  for (const name of names.sort()) {
    const manifest = await readManifest(join(batchDir, name))
    if (!manifest) continue
    let metrics: MetricsRecord | undefined
    try {
      const m = MetricsSchema.safeParse(JSON.parse(await readFile(join(batchDir, name, "metrics.json"), "utf8")))
      if (m.success) metrics = m.data
    } catch {
      // no metrics for skipped and failed runs
    }
    out.push(metrics ? { manifest, metrics } : { manifest })
  }
  return out
}

export const readManifest = async (runDir: string): Promise<RunManifestFile | undefined> => {
  try {
    const m = RunManifestFile.safeParse(JSON.parse(await readFile(join(runDir, "run_manifest.json"), "utf8")))
    return m.success ? m.data : undefined
  } catch {
    return undefined
  }
}

export const readBatchInfo = async (batchDir: string): Promise<BatchInfoFile | undefined> => {
  try {
    const m = BatchInfoFile.safeParse(JSON.parse(await readFile(join(batchDir, "batch.json"), "utf8")))
    return m.success ? m.data : undefined
  } catch {
    return undefined
  }
}

export const SUMMARY_METRICS = ["total_return", "cagr", "sharpe", "sortino", "max_drawdown_pct", "volatility", "profit_factor", "trades", "win_rate", "exposure", "final_equity"] as const

/** summary.csv: one row per run folder, parameters as columns. */
export const summaryCsv = (runs: ReadonlyArray<RunOnDisk>): string => {
  const paramKeys = [...new Set(runs.flatMap((r) => Object.keys(r.manifest.params)))].sort()
  const head = ["run_id", "status", "phase", "reason", "strategy", "universe", "freq", "start_date", "end_date", ...paramKeys.map((k) => `param.${k}`), ...SUMMARY_METRICS, "runtime_sec", "cached", "result_key"]
  const rows = runs.map(({ manifest: m, metrics }) => [
    m.run_id,
    m.status,
    m.phase ?? "",
    m.reason ?? "",
    m.scenario?.strategy ?? "",
    m.scenario?.universe.join(" ") ?? "",
    m.scenario?.freq ?? "",
    m.scenario?.start_date ?? "",
    m.scenario?.end_date ?? "",
    ...paramKeys.map((k) => m.params[k]),
    ...SUMMARY_METRICS.map((k) => metrics?.[k] ?? ""),
    m.runtime_sec ?? "",
    m.cached,
    m.result_key
  ])
  return csvLine(head) + rows.map(csvLine).join("")
}

export interface BatchSummary {
  readonly batch_id: string
  readonly batch_name: string
  readonly status: "done" | "incomplete" | "failed" | "interrupted" | "planned"
  readonly total: number
  readonly counts: { success: number; skipped: number; failed: number; missing: number }
  readonly exit_code: number
  readonly output_dir: string
  readonly best?: { run_id: string; metric: string; value: number }
  readonly warnings: { count: number; distinct: ReadonlyArray<{ message: string; runs: number }> }
  readonly runs: ReadonlyArray<{ run_id: string; status: string; phase?: string; reason?: string; params: Record<string, unknown>; metrics?: MetricsRecord; cached: boolean; result_key: string }>
  readonly [k: string]: unknown
}

/** Warnings of many runs, counted by message with numbers blanked (so "3 targets" and "5 targets" are one). */
export const summariseWarnings = (runs: ReadonlyArray<RunOnDisk>) => {
  const byShape = new Map<string, { message: string; runs: number }>()
  let count = 0
  for (const r of runs)
    for (const w of new Set(r.manifest.warnings)) {
      count++
      const shape = w.replace(/-?\d[\d.,e+-]*/g, "#")
      const hit = byShape.get(shape)
      if (hit) hit.runs++
      else byShape.set(shape, { message: w, runs: 1 })
    }
  return { count, distinct: [...byShape.values()].sort((a, b) => b.runs - a.runs) }
}
