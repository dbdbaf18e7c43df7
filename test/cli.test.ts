/**
 * The `tickflow` command as a user runs it: a bad batch file is refused with every problem, and
 * `tickflow run` takes a sweep through the whole pipeline on its own embedded nats-server,
 * in-process and with executor processes, writing results.jsonl and summary.json.
 */
import { describe, expect, it, afterAll } from "vitest"
import { Effect } from "effect"
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { generateCatalog } from "../src/data/index.js"
import { runChild } from "./support/child.js"

const BIN = resolve(__dirname, "..", "bin", "tickflow.mjs")

/** Each test works in its own directory: no test reads what another wrote. */
const dirs: string[] = []
const workspace = () => {
  const dir = mkdtempSync(join(tmpdir(), "tf-cli-"))
  dirs.push(dir)
  return dir
}

/** The CLI as a child process, asynchronously (a test worker must never block on a child). */
const tickflow = (dir: string, args: string[], opts: { quiet?: boolean } = { quiet: true }) => {
  const env: Record<string, string | undefined> = { ...process.env, TICKFLOW_LOG_FORMAT: "json", TICKFLOW_LOG_LEVEL: "warn" }
  // without TICKFLOW_LOG_LEVEL, `run` writes its full log to <out>/<batch>/tickflow.log
  if (!opts.quiet) delete env.TICKFLOW_LOG_LEVEL
  delete env.NATS_URL
  return runChild(process.execPath, [BIN, ...args], { cwd: dir, env, timeoutMs: 540_000 })
}

const writeSweep = (dir: string) =>
  writeFileSync(
    join(dir, "sweep.yaml"),
    [
      "batch_name: cli_sweep",
      "output_root: out",
      "data_root: catalog",
      "defaults:",
      "  strategy: trend_baseline",
      "  freq: 1d",
      "  start_date: 2016-01-04",
      "  end_date: 2020-06-30",
      "  universe: [AAA]",
      "  start_capital: 50000",
      "  commission_bps: 1",
      "runs:",
      "  - id: no_data",
      "    universe: [ZZZ]",
      "sweep:",
      "  id: ema",
      "  grid:",
      "    fast: [5, 10]",
      "    slow: [30, 60]",
      "    symbol: [AAA, BBB]",
      ""
    ].join("\n")
  )

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

describe("tickflow CLI", { timeout: 600_000 }, () => {
  it("validate refuses a bad batch with every problem at once (exit 2)", async () => {
    const dir = workspace()
    writeFileSync(
      join(dir, "bad.yaml"),
      ["batch_name: bad name", "runs:", "  - id: a.b", "    freq: 5m", "    start_date: 2020-02-30", "    start_capital: -1", ""].join("\n")
    )
    const r = await tickflow(dir, ["validate", "bad.yaml"])
    expect(r.status).toBe(2)
    expect(r.stderr).toContain("bad.yaml has 5 problems")
    expect(r.stderr).toContain('batch_name: "bad name" is not safe as a folder name')
    expect(r.stderr).toContain('runs[0].id: "a.b" is not a valid id')
    expect(r.stderr).toContain('runs[0].freq: "5m" is not one of tick, 1min, 5min, 1h, 1d')
    expect(r.stderr).toContain('runs[0].start_date: "2020-02-30" is not a real date')
    expect(r.stderr).toContain("runs[0].start_capital: -1 must be greater than 0")
  })

  it("data import takes a real broker-style CSV into the catalog; coverage reports it", async () => {
    const dir = workspace()
    const csv = resolve(__dirname, "..", "node_modules", "vega-datasets", "data", "sp500-2000.csv")
    const r = await tickflow(dir, ["data", "import", csv, "--symbol", "SPX", "--freq", "1d", "--root", "imported"])
    expect(r.stderr).toBe("")
    expect(r.status).toBe(0)
    expect(r.stdout).toContain("imported 5105 rows of SPX 1d")
    const cov = await tickflow(dir, ["data", "coverage", "--root", "imported", "--json"])
    expect(cov.status).toBe(0)
    const report = JSON.parse(cov.stdout) as { entries: Array<{ symbol: string; freq: string; rows: number; first: string; last: string }> }
    expect(report.entries).toEqual([expect.objectContaining({ symbol: "SPX", freq: "1d", rows: 5105, first: "2000-01-03T00:00:00.000Z", last: "2020-04-17T00:00:00.000Z" })])
  })

  it("data import of a monthly multi-symbol CSV refuses it as daily naming the inferred frequency, and names the symbols when the asked one is absent", async () => {
    const dir = workspace()
    const csv = resolve(__dirname, "..", "node_modules", "vega-datasets", "data", "stocks.csv")
    const monthly = await tickflow(dir, ["data", "import", csv, "--symbol", "ibm", "--freq", "1d", "--root", "multi"])
    expect(monthly.status).toBe(1)
    expect(monthly.stderr).toContain("--freq 1d was given but the timestamps are monthly")
    const missing = await tickflow(dir, ["data", "import", csv, "--symbol", "XYZ", "--freq", "1d", "--root", "multi"])
    expect(missing.status).toBe(1)
    expect(missing.stderr).toContain("the file's symbol column holds MSFT, AMZN, IBM, GOOG, AAPL")
  })

  it("validate runs the phases' checks: counts the scenarios and names the one that would be skipped (exit 2)", async () => {
    const dir = workspace()
    writeSweep(dir)
    await Effect.runPromise(generateCatalog({ root: join(dir, "catalog"), symbols: ["AAA", "BBB"], freqs: ["1d"], start: "2015-01-01", end: "2020-12-31", seed: 5 }))
    const r = await tickflow(dir, ["validate", "sweep.yaml"])
    expect(r.status).toBe(2)
    expect(r.stderr).toContain("sweep.yaml: 9 runs in 3 data groups; 8 ready, 1 would be skipped")
    expect(r.stderr).toMatch(/no_data \[availability\] no 1d data for ZZZ/)
  })

  it("run in-process and with two executor processes: table, results.jsonl, summary.json; identical metrics both ways", async () => {
    const dir = workspace()
    writeSweep(dir)
    await Effect.runPromise(generateCatalog({ root: join(dir, "catalog"), symbols: ["AAA", "BBB"], freqs: ["1d"], start: "2015-01-01", end: "2020-12-31", seed: 5 }))
    const runs = [
      ["cli-1", ["run", "sweep.yaml", "--batch-id", "cli-1"]],
      ["cli-2", ["run", "sweep.yaml", "--batch-id", "cli-2", "-w", "2", "--sort", "total_return"]]
    ] as const
    const metrics: Record<string, Record<string, string>> = {}
    for (const [batchId, args] of runs) {
      const r = await tickflow(dir, [...args], { quiet: false })
      expect(r.stderr).not.toMatch(/"level":[3-6]\d/)
      // 1: a run was skipped (0 only when every run succeeds)
      expect(r.status).toBe(1)
      expect(r.stdout).toContain(`batch ${batchId}: done — 8 success, 1 skipped, 0 failed of 9`)
      expect(r.stdout).toContain("ema__fast-5__slow-30__symbol-AAA")
      expect(r.stdout).toMatch(/skipped no_data \[availability\] no 1d data for ZZZ/)
      const out = join(dir, "out", batchId)
      const tree = readdirSync(out).sort()
      for (const f of ["report.html", "results.jsonl", "summary.csv", "summary.json", "tickflow.log", "ema__fast-5__slow-30__symbol-AAA", "no_data"]) expect(tree).toContain(f)
      const log = readFileSync(join(out, "tickflow.log"), "utf8").trim().split("\n").map((l) => JSON.parse(l))
      expect(log.some((l) => l.msg === "Phase 4: Loading data..." && l.batch_id === batchId)).toBe(true)
      const lines = readFileSync(join(out, "results.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l))
      expect(lines).toHaveLength(9)
      expect(new Set(lines.map((l) => l.scenario_id)).size).toBe(9)
      const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8"))
      expect(summary).toMatchObject({ batch_id: batchId, status: "done", total: 9, counts: { success: 8, skipped: 1, failed: 0 } })
      metrics[batchId] = Object.fromEntries(lines.map((l) => [l.scenario_id, JSON.stringify(l.metrics ?? null)]))
    }
    // the same batch gives identical metrics in-process and across executor processes
    expect(metrics["cli-2"]).toEqual(metrics["cli-1"])
  }, 600_000)
})
