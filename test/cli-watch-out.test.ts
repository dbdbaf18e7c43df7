/**
 * `tickflow watch <batch> --out DIR` from another process (viewer role): the same output tree as
 * `run` for a batch submitted from anywhere; and a batch that is not there is waited for, with
 * a timeout that gives up.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import YAML from "yaml"
import { generateCatalog } from "../src/data/index.js"
import { Bus, kvGet, publishRaw } from "../src/streams/bus.js"
import { NatsSettings } from "../src/streams/connection.js"
import { SUBJECT } from "../src/streams/topology.js"
import { BatchRecord } from "../src/schemas/results.js"
import { systemTestLayer } from "./support/system.js"

const BIN = resolve(__dirname, "..", "bin", "tickflow.mjs")

const run = (args: string[], env: Record<string, string>, cwd: string) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((res) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, ...env, TICKFLOW_LOG_LEVEL: "warn", TICKFLOW_LOG_FORMAT: "json" } })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (b) => (stdout += b))
    child.stderr.on("data", (b) => (stderr += b))
    const t = setTimeout(() => child.kill("SIGKILL"), 90_000)
    child.on("exit", (code) => {
      clearTimeout(t)
      res({ code, stdout, stderr })
    })
  })

describe("tickflow watch --out", () => {
  it.scopedLive(
    "writes the output tree of a batch submitted elsewhere; an unknown batch is waited for until --timeout",
    () => {
      const dir = mkdtempSync(join(tmpdir(), "tf-watch-out-"))
      const root = join(dir, "catalog")
      return Effect.gen(function* () {
        yield* generateCatalog({ root, symbols: ["AAA"], freqs: ["1d"], start: "2016-01-01", end: "2020-12-31", seed: 9 })
        const config = {
          batch_name: "watch_out",
          defaults: { strategy: "trend_baseline", freq: "1d", start_date: "2017-01-03", end_date: "2020-12-30", universe: ["AAA"], start_capital: 10_000, commission_bps: 1 },
          runs: [{ id: "nodata", universe: ["ZZZ"] }],
          sweep: { id: "ema", grid: { fast: [3, 8], slow: [20, 40] } }
        }
        // the batch file as its author keeps it (with the data root of their machine)
        writeFileSync(join(dir, "batch.yaml"), YAML.stringify({ ...config, data_root: "catalog" }))
        yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: "wout1", config }), "submit:wout1")
        const bus = yield* Bus
        for (let i = 0; i < 300; i++) {
          const rec = yield* kvGet(bus.batches, "wout1", BatchRecord)
          if (rec?.value.status === "done") break
          yield* Effect.sleep("100 millis")
        }
        const s = yield* NatsSettings
        const viewer = s.embedded!.credentials.viewer
        const env = { NATS_URL: s.servers, NATS_USER: viewer.user, NATS_PASSWORD: viewer.pass }
        const [r, unknown] = yield* Effect.promise(() =>
          Promise.all([run(["watch", "wout1", "--out", "out", "--config", "batch.yaml"], env, dir), run(["watch", "no-such-batch", "--timeout", "2"], env, dir)])
        )
        expect(r.stderr).not.toMatch(/"level":5\d|error:/)
        // one run was skipped (no data): exit 1, as `run` would
        expect(r.code).toBe(1)
        const out = join(dir, "out", "wout1")
        for (const f of ["summary.csv", "summary.json", "report.html", "batch.json"]) expect(existsSync(join(out, f)), f).toBe(true)
        const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8"))
        expect(summary.counts).toEqual({ success: 4, skipped: 1, failed: 0, missing: 0 })
        for (const id of ["ema__fast-3__slow-20", "ema__fast-3__slow-40", "ema__fast-8__slow-20", "ema__fast-8__slow-40"]) {
          expect(readdirSync(join(out, id)).sort()).toEqual(["equity.csv", "metrics.json", "orders.csv", "run_manifest.json", "run_timings.json"])
          const m = JSON.parse(readFileSync(join(out, id, "run_manifest.json"), "utf8"))
          // the local replay reproduced what the pipeline computed
          expect(m.replay).toEqual({ matches: true })
          expect(m.scenario.scenario_id).toBe(id)
        }
        const skipped = JSON.parse(readFileSync(join(out, "nodata", "run_manifest.json"), "utf8"))
        expect(skipped).toMatchObject({ status: "skipped", phase: "availability" })

        expect(unknown.code).toBe(1)
        expect(unknown.stderr).toContain("waiting for batch no-such-batch: no record and no results yet (giving up after 2s)")
        expect(unknown.stderr).toContain("batch no-such-batch did not appear within 2s")
      }).pipe(
        Effect.provide(systemTestLayer({ settings: { dataRoot: root } })),
        Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
      )
    },
    150_000
  )
})
