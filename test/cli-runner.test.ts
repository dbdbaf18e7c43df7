/**
 * `tickflow run` as a researcher uses it, as separate processes (async spawn): the output tree
 * and --summary-json; metrics.json checked against its own equity.csv and orders.csv by plain
 * code written here; a deep `validate` / `--dry-run` listing every problem at once; exit codes;
 * resume after the CLI is killed mid-batch; --rerun-failed; atomic writes.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { readFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { generateCatalog } from "../src/data/index.js"
import { validateBatch } from "../src/cli/run.js"
import { writeFileAtomic } from "../src/cli/outputs.js"

const BIN = resolve(__dirname, "..", "bin", "tickflow.mjs")
const dir = mkdtempSync(join(tmpdir(), "tf-runner-"))
// fixture strategies by absolute path: they import zod from this checkout's node_modules
const SLOW = resolve(__dirname, "fixtures", "slow-strategy.ts")
const THROWING = resolve(__dirname, "fixtures", "throwing-strategy.ts")

interface Ran {
  code: number | null
  stdout: string
  stderr: string
}

/** The CLI in its own process group, so a kill takes its nats-server child along. */
const start = (args: string[]) => {
  const env: Record<string, string | undefined> = { ...process.env, TICKFLOW_LOG_FORMAT: "json", TICKFLOW_LOG_LEVEL: "warn" }
  delete env.NATS_URL
  const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, env, detached: true })
  let stdout = ""
  let stderr = ""
  child.stdout.on("data", (b) => (stdout += b))
  child.stderr.on("data", (b) => (stderr += b))
  const done = new Promise<Ran>((res) => {
    const t = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), 120_000)
    child.on("exit", (code) => {
      clearTimeout(t)
      res({ code, stdout, stderr })
    })
  })
  return { child, done }
}
const tickflow = (args: string[]) => start(args).done

const yaml = (lines: string[]) => lines.join("\n") + "\n"
const DEFAULTS = [
  "defaults:",
  "  strategy: trend_baseline",
  "  freq: 1d",
  "  start_date: 2016-01-04",
  "  end_date: 2020-06-30",
  "  universe: [AAA]",
  "  start_capital: 50000",
  "  commission_bps: 2",
  "  slippage_bps: 1"
]

const csvRows = (text: string) =>
  text
    .trim()
    .split("\n")
    .slice(1)
    .map((l) => l.split(","))

beforeAll(async () => {
  await Effect.runPromise(generateCatalog({ root: join(dir, "catalog"), symbols: ["AAA", "BBB"], freqs: ["1d"], start: "2015-01-01", end: "2020-12-31", seed: 5 }))
  writeFileSync(
    join(dir, "sweep.yaml"),
    yaml(["batch_name: runner_sweep", "output_root: out", "data_root: catalog", ...DEFAULTS, "runs:", "  - id: pair", "    strategy: breakout", "    universe: [AAA, BBB]", "sweep:", "  id: ema", "  grid:", "    fast: [5, 10]", "    slow: [30, 60]"])
  )
  writeFileSync(
    join(dir, "problems.yaml"),
    yaml([
      "batch_name: problems",
      "data_root: catalog",
      ...DEFAULTS,
      "runs:",
      "  - id: good",
      "  - id: no_such_strategy",
      "    strategy: nope",
      "  - id: out_of_bounds",
      "    params: { fast: 0 }",
      "  - id: unknown_param",
      "    params: { fsat: 5 }",
      "  - id: unknown_symbol",
      "    universe: [ZZZ]",
      "  - id: end_before_start",
      "    start_date: 2019-01-02",
      "    end_date: 2018-01-02"
    ])
  )
  // the slow fixture strategy: about 0.4 s per run (and as much for its replay), so a kill lands mid-batch
  writeFileSync(
    join(dir, "slow.yaml"),
    yaml(["batch_name: slow_sweep", "output_root: out", "data_root: catalog", ...DEFAULTS.map((l) => l.replace("trend_baseline", SLOW)), "sweep:", "  id: spin", "  start_date: 2019-01-02", "  grid:", "    fast: [2, 3, 4, 5, 6, 7, 8, 9]", "    spin_us: [1000]"])
  )
  writeFileSync(join(dir, "flaky.yaml"), yaml(["batch_name: flaky", "output_root: out", "data_root: catalog", ...DEFAULTS, "runs:", "  - id: fine", "  - id: throws", `    strategy: ${THROWING}`]))
}, 60_000)

afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe("tickflow run: output tree", () => {
  it("--summary-json prints one parseable JSON on stdout; the tree has every file; no temp files", async () => {
    const r = await tickflow(["run", "sweep.yaml", "--batch-id", "tree1", "--summary-json"])
    expect(r.stderr).not.toMatch(/"level":5\d/)
    expect(r.code).toBe(0)
    const summary = JSON.parse(r.stdout)
    expect(summary).toMatchObject({ batch_id: "tree1", status: "done", total: 5, exit_code: 0, counts: { success: 5, skipped: 0, failed: 0, missing: 0 } })
    expect(summary.runs.map((x: { run_id: string }) => x.run_id).sort()).toEqual(["ema__fast-10__slow-30", "ema__fast-10__slow-60", "ema__fast-5__slow-30", "ema__fast-5__slow-60", "pair"])
    const out = join(dir, "out", "tree1")
    for (const f of ["summary.csv", "summary.json", "report.html", "batch.json"]) expect(existsSync(join(out, f)), f).toBe(true)
    const csv = csvRows(readFileSync(join(out, "summary.csv"), "utf8"))
    expect(csv.map((c) => c[0]).sort()).toEqual(summary.runs.map((x: { run_id: string }) => x.run_id).sort())
    for (const id of summary.runs.map((x: { run_id: string }) => x.run_id)) {
      const files = readdirSync(join(out, id)).sort()
      expect(files).toEqual(["equity.csv", "metrics.json", "orders.csv", "run_manifest.json", "run_timings.json"])
      const m = JSON.parse(readFileSync(join(out, id, "run_manifest.json"), "utf8"))
      for (const k of ["run_id", "status", "started_at", "finished_at", "runtime_sec", "params", "seed", "git_commit", "engine_version", "data_versions", "result_key", "cached", "timings_path", "output_dir"]) expect(m, k).toHaveProperty(k)
      expect(m.run_id).toBe(id)
      expect(m.replay).toEqual({ matches: true })
      expect(m.data_versions.catalog).toMatch(/^[0-9a-f]{64}$/)
      expect(existsSync(m.timings_path)).toBe(true)
    }
    const temps = readdirSync(out, { recursive: true }).filter((f) => String(f).includes(".tmp-"))
    expect(temps).toEqual([])
  }, 120_000)

  it("metrics.json agrees with its own equity.csv and orders.csv (computed here independently)", async () => {
    const out = join(dir, "out", "tree1")
    for (const id of ["ema__fast-5__slow-30", "ema__fast-10__slow-60", "pair"]) {
      const metrics = JSON.parse(await readFile(join(out, id, "metrics.json"), "utf8"))
      const manifest = JSON.parse(await readFile(join(out, id, "run_manifest.json"), "utf8"))
      const capital = manifest.scenario.start_capital
      const nav = csvRows(await readFile(join(out, id, "equity.csv"), "utf8")).map((c) => Number(c[2]))
      expect(nav.length).toBeGreaterThan(1000) // the full daily curve, not the result's 120 points
      expect(metrics.final_equity).toBeCloseTo(nav.at(-1)!, 6)
      expect(metrics.total_return).toBeCloseTo(nav.at(-1)! / capital - 1, 10)
      let peak = capital
      let worst = 0
      for (const v of nav) {
        peak = Math.max(peak, v)
        worst = Math.max(worst, (peak - v) / peak)
      }
      expect(metrics.max_drawdown_pct).toBeCloseTo(worst * 100, 8)
      // daily bars: returns close to close, Sharpe = mean / sample sd × √252
      const r = nav.slice(1).map((v, i) => v / nav[i] - 1)
      const mean = r.reduce((a, b) => a + b, 0) / r.length
      const sd = Math.sqrt(r.reduce((a, b) => a + (b - mean) ** 2, 0) / (r.length - 1))
      expect(metrics.sharpe).toBeCloseTo((mean / sd) * Math.sqrt(252), 8)
      expect(metrics.volatility).toBeCloseTo(sd * Math.sqrt(252), 8)
      // fills: commission = commission_bps of the traded value; every fill pays its costs
      const fills = csvRows(await readFile(join(out, id, "orders.csv"), "utf8")).map(([time, symbol, side, q, price, ref, commission, slippage]) => ({ time, symbol, side, q: Number(q), price: Number(price), ref: Number(ref), commission: Number(commission), slippage: Number(slippage) }))
      expect(fills.length).toBeGreaterThan(0)
      for (const f of fills) {
        expect(f.commission).toBeCloseTo((f.q * f.price * 2) / 1e4, 8)
        expect(f.side === "buy" ? f.price > f.ref : f.price < f.ref).toBe(true)
        expect(f.slippage).toBeCloseTo(Math.abs(f.price - f.ref) * f.q, 8)
      }
      // a ledger from the fills alone: when the run ends flat, its cash is its final NAV
      const position = new Map<string, number>()
      let cash = capital
      for (const f of fills) {
        const signed = f.side === "buy" ? f.q : -f.q
        cash -= signed * f.price + f.commission
        position.set(f.symbol, (position.get(f.symbol) ?? 0) + signed)
      }
      if ([...position.values()].every((p) => Math.abs(p) < 1e-9)) expect(cash).toBeCloseTo(nav.at(-1)!, 4)
    }
  })
})

describe("validate and --dry-run", () => {
  it("report every problem in one pass (exit 2); run skips those runs and exits 1", async () => {
    const [v, dry, run] = await Promise.all([tickflow(["validate", "problems.yaml"]), tickflow(["run", "problems.yaml", "--dry-run"]), tickflow(["run", "problems.yaml", "--out", "out", "--batch-id", "probs"])])
    expect(v.code).toBe(2)
    expect(dry.code).toBe(2)
    const expected = [
      'no_such_strategy [requirements] strategy: ',
      "out_of_bounds [requirements] params.fast: 0 is below the minimum",
      "unknown_param [requirements] params.fsat: unknown parameter (value 5); trend_baseline accepts fast, slow, allow_short",
      "unknown_symbol [availability] no 1d data for ZZZ",
      "end_before_start [availability] end_date 2018-01-02 is before start_date 2019-01-02"
    ]
    for (const line of expected) {
      expect(v.stderr).toContain(line)
      expect(dry.stdout).toContain(line)
    }
    expect(v.stderr).toContain("6 runs in")
    expect(v.stderr).toContain("1 ready, 5 would be skipped")
    // the pipeline skips exactly those, in the phase the plan named
    expect(run.code).toBe(1)
    const summary = JSON.parse(readFileSync(join(dir, "out", "probs", "summary.json"), "utf8"))
    expect(summary.counts).toEqual({ success: 1, skipped: 5, failed: 0, missing: 0 })
    const phases = Object.fromEntries(summary.runs.map((x: { run_id: string; phase?: string }) => [x.run_id, x.phase ?? null]))
    expect(phases).toEqual({ good: null, no_such_strategy: "requirements", out_of_bounds: "requirements", unknown_param: "requirements", unknown_symbol: "availability", end_before_start: "availability" })
  }, 120_000)

  it("a table of bad configs: each gets its message and exit 2 from validate", async () => {
    const table: Array<[string, string[], string]> = [
      ["schema: frequency", ["batch_name: t", "runs:", "  - id: a", "    freq: 5m"], 'runs[0].freq: "5m" is not one of tick, 1min, 5min, 1h, 1d'],
      ["schema: required field", ["batch_name: t", "runs:", "  - id: a", "    freq: 1d"], "runs[0].strategy: is required; set it on the run or in defaults"],
      ["yaml syntax", ["batch_name: t", "runs: [", "  - id: a"], "is not valid YAML"],
      ["unknown strategy", ["batch_name: t", "data_root: catalog", ...DEFAULTS, "runs:", "  - id: a", "    strategy: nope"], "a [requirements] strategy: "],
      ["parameter out of bounds", ["batch_name: t", "data_root: catalog", ...DEFAULTS, "runs:", "  - id: a", "    params: { slow: 100000 }"], "a [requirements] params.slow: 100000 is above the maximum"],
      ["symbol without data", ["batch_name: t", "data_root: catalog", ...DEFAULTS, "runs:", "  - id: a", "    universe: [QQQ]"], "a [availability] no 1d data for QQQ"],
      ["dates outside coverage", ["batch_name: t", "data_root: catalog", ...DEFAULTS, "runs:", "  - id: a", "    start_date: 2010-01-04"], "a [availability] AAA 1d data covers 2015-01-0"],
      ["missing catalog", ["batch_name: t", "data_root: no_catalog_here", ...DEFAULTS, "runs:", "  - id: a"], "is missing or holds no data files"]
    ]
    for (const [name, lines, message] of table) {
      const file = join(dir, `bad-${name.replace(/\W+/g, "_")}.yaml`)
      writeFileSync(file, yaml(lines))
      const errors: string[] = []
      const spy = vi.spyOn(console, "error").mockImplementation((...a: unknown[]) => void errors.push(a.join(" ")))
      const log = vi.spyOn(console, "log").mockImplementation(() => undefined)
      let code: number
      try {
        code = await validateBatch(file, {})
      } finally {
        spy.mockRestore()
        log.mockRestore()
      }
      expect(code, name).toBe(2)
      expect(errors.join("\n"), name).toContain(message)
    }
  })

  it("run refuses an invalid config with exit 2, like validate", async () => {
    writeFileSync(join(dir, "invalid.yaml"), yaml(["batch_name: bad name", "runs:", "  - id: a.b", "    freq: 5m"]))
    const [v, r] = await Promise.all([tickflow(["validate", "invalid.yaml"]), tickflow(["run", "invalid.yaml", "--summary-json"])])
    expect(v.code).toBe(2)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('runs[0].freq: "5m" is not one of')
    expect(JSON.parse(r.stdout)).toMatchObject({ status: "invalid", exit_code: 2 })
  }, 60_000)
})

describe("resume", () => {
  it("after the CLI is killed mid-batch: finished runs are kept, the rest run, one row per run", async () => {
    const out = join(dir, "out", "slow1")
    const first = start(["run", "slow.yaml", "--batch-id", "slow1"])
    const manifests = () => (existsSync(out) ? readdirSync(out).filter((d) => existsSync(join(out, d, "run_manifest.json"))) : [])
    // kill the CLI (and its nats-server: the whole process group) once two runs are on disk
    for (let i = 0; i < 1200 && manifests().length < 2; i++) await new Promise((r) => setTimeout(r, 100))
    process.kill(-first.child.pid!, "SIGKILL")
    await first.done
    const before = new Map(manifests().map((d) => [d, readFileSync(join(out, d, "run_manifest.json"), "utf8")]))
    expect(before.size).toBeGreaterThanOrEqual(2)
    expect(before.size).toBeLessThan(8)
    for (const text of before.values()) expect(JSON.parse(text).status).toBe("success")
    const second = await tickflow(["run", "slow.yaml", "--resume"])
    expect(second.code).toBe(0)
    expect(second.stdout).toContain(`resuming slow1: ${before.size} runs kept, ${8 - before.size} to run`)
    expect(manifests()).toHaveLength(8)
    for (const [d, text] of before) expect(readFileSync(join(out, d, "run_manifest.json"), "utf8"), d).toBe(text)
    const ids = csvRows(readFileSync(join(out, "summary.csv"), "utf8")).map((c) => c[0])
    expect(ids).toHaveLength(8)
    expect(new Set(ids).size).toBe(8)
    const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8"))
    expect(summary.counts).toEqual({ success: 8, skipped: 0, failed: 0, missing: 0 })
  }, 240_000)

  it("--rerun-failed reruns failed runs; plain --resume keeps them", async () => {
    const out = join(dir, "out", "flaky1")
    const first = await tickflow(["run", "flaky.yaml", "--batch-id", "flaky1"])
    expect(first.code).toBe(1)
    const failed = JSON.parse(readFileSync(join(out, "throws", "run_manifest.json"), "utf8"))
    expect(failed.status).toBe("failed")
    expect(failed.reason).toContain("deliberate failure")
    const again = await tickflow(["run", "flaky.yaml", "--resume"])
    expect(again.stdout).toContain("resuming flaky1: 2 runs kept, 0 to run")
    expect(again.code).toBe(1)
    const rerun = await tickflow(["run", "flaky.yaml", "--resume", "--rerun-failed"])
    expect(rerun.stdout).toContain("resuming flaky1: 1 runs kept, 1 to run (failed and skipped runs rerun)")
    expect(rerun.code).toBe(1)
    const after = JSON.parse(readFileSync(join(out, "throws", "run_manifest.json"), "utf8"))
    expect(after.finished_at > failed.finished_at).toBe(true)
    expect(csvRows(readFileSync(join(out, "summary.csv"), "utf8"))).toHaveLength(2)
    const noResume = await tickflow(["run", "flaky.yaml", "--rerun-failed"])
    expect(noResume.code).toBe(2)
    expect(noResume.stderr).toContain("--rerun-failed works with --resume")
  }, 180_000)
})

describe("leaderboard, gate, --until", () => {
  it("--export-best writes a batch that reproduces the best run; gate passes and fails by threshold; --until quality runs no backtest", async () => {
    const r = await tickflow(["run", "sweep.yaml", "--batch-id", "lb1"])
    expect(r.code).toBe(0)
    const lb = await tickflow(["leaderboard", "lb1", "--out", "out", "--sort", "total_return", "--export-best", "best.yaml", "--json"])
    expect(lb.code).toBe(0)
    const ranking = JSON.parse(lb.stdout) as Array<{ run_id: string; metrics: { total_return: number } }>
    const returns = ranking.map((x) => x.metrics.total_return)
    expect(returns).toEqual([...returns].sort((a, b) => b - a))
    const [again, pass, fail, until] = await Promise.all([
      tickflow(["run", "best.yaml", "--out", "out", "--batch-id", "best1", "--summary-json"]),
      tickflow(["gate", "lb1", "--out", "out", "--min-sharpe", "-100", "--max-drawdown", "100", "--min-return", "-1", "--json"]),
      tickflow(["gate", "lb1", "--out", "out", "--min-sharpe", "99"]),
      tickflow(["run", "sweep.yaml", "--batch-id", "until1", "--until", "quality", "--summary-json"])
    ])
    expect(again.code).toBe(0)
    const best = JSON.parse(again.stdout).runs
    expect(best).toHaveLength(1)
    expect(best[0].run_id).toBe(ranking[0].run_id)
    expect(best[0].metrics).toEqual(JSON.parse(readFileSync(join(dir, "out", "lb1", ranking[0].run_id, "metrics.json"), "utf8")))
    expect(pass.code).toBe(0)
    const gate = JSON.parse(pass.stdout)
    expect(gate.pass).toBe(true)
    expect(gate.checks.map((c: { check: string; pass: boolean }) => [c.check, c.pass])).toEqual([
      ["determinism", true],
      ["costs > 0", true],
      ["Sharpe", true],
      ["max drawdown", true],
      ["total return", true]
    ])
    expect(fail.code).toBe(1)
    expect(fail.stdout).toMatch(/Sharpe\s+│ FAIL/)
    expect(fail.stdout).toContain("gate: FAIL (Sharpe)")
    expect(until.code).toBe(0)
    expect(until.stderr).toContain("--until quality: 5 runs passed quality; later phases were not run")
    expect(JSON.parse(until.stdout)).toMatchObject({ until: "quality", total: 0, counts: { success: 0, skipped: 0, failed: 0 } })
  }, 240_000)
})

describe("atomic writes", () => {
  it("a reader sees the old file or the new one, never part of one; no temp files stay", async () => {
    const file = join(dir, "atomic", "big.json")
    const a = "a".repeat(4_000_000)
    const b = "b".repeat(3_000_000)
    await writeFileAtomic(file, a)
    const lengths = new Set<number>()
    let writing = true
    const reader = (async () => {
      while (writing) lengths.add((await readFile(file, "utf8")).length)
    })()
    for (let i = 0; i < 20; i++) await writeFileAtomic(file, i % 2 ? a : b)
    writing = false
    await reader
    expect([...lengths].every((n) => n === a.length || n === b.length)).toBe(true)
    expect(readdirSync(join(dir, "atomic"))).toEqual(["big.json"])
  })
})

