/**
 * `tickflow watch` from another process with the viewer role of nats.conf: it replays a
 * finished batch's results (ordered consumer) and prints the table sorted by the chosen metric.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { generateCatalog } from "../src/data/index.js"
import { publishRaw } from "../src/streams/bus.js"
import { NatsSettings } from "../src/streams/connection.js"
import { SUBJECT } from "../src/streams/topology.js"
import { waitForBatch } from "./support/results.js"
import { runChild } from "./support/child.js"
import { systemTestLayer } from "./support/system.js"

const BIN = resolve(__dirname, "..", "bin", "tickflow.mjs")

const run = (args: string[], env: Record<string, string>) =>
  runChild(process.execPath, [BIN, ...args], { env: { ...process.env, ...env, TICKFLOW_LOG_LEVEL: "warn", TICKFLOW_LOG_FORMAT: "json" }, timeoutMs: 480_000 }).then(
    (r) => ({ code: r.status, stdout: r.stdout, stderr: r.stderr })
  )

describe("tickflow watch", () => {
  it.scopedLive(
    "replays a batch for a viewer and prints its table sorted by the metric",
    () => {
      const root = mkdtempSync(join(tmpdir(), "tf-watch-"))
      return Effect.gen(function* () {
        yield* generateCatalog({ root, symbols: ["AAA"], freqs: ["1d"], start: "2016-01-01", end: "2020-12-31", seed: 9 })
        const config = {
          batch_name: "watch_me",
          defaults: { strategy: "trend_baseline", freq: "1d", start_date: "2017-01-03", end_date: "2020-12-30", universe: ["AAA"], start_capital: 10_000 },
          sweep: { id: "ema", grid: { fast: [3, 8], slow: [20, 40] } }
        }
        yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: "watch1", config }), "submit:watch1")
        expect((yield* waitForBatch("watch1", 480_000)).status).toBe("done")
        const s = yield* NatsSettings
        const viewer = s.embedded!.credentials.viewer
        const r = yield* Effect.promise(() =>
          run(["watch", "watch1", "--sort", "total_return"], { NATS_URL: s.servers, NATS_USER: viewer.user, NATS_PASSWORD: viewer.pass })
        )
        expect(r.stderr).not.toMatch(/"level":5\d|error:/)
        expect(r.code).toBe(0)
        expect(r.stdout).toContain("batch watch1 (watch_me): done — 4/4 results, 4 ok, 0 skipped, 0 failed")
        for (const id of ["ema__fast-3__slow-20", "ema__fast-3__slow-40", "ema__fast-8__slow-20", "ema__fast-8__slow-40"]) expect(r.stdout).toContain(id)
        // sorted by total return, descending
        const returns = [...r.stdout.matchAll(/│ \d+\s+│ ema__\S+\s+│ trend_baseline │ AAA\s+│ (-?[\d.]+)%/g)].map((m) => Number(m[1]))
        expect(returns).toHaveLength(4)
        expect([...returns].sort((a, b) => b - a)).toEqual(returns)

        const noUrl = yield* Effect.promise(() => run(["watch", "watch1"], { NATS_URL: "" }))
        expect(noUrl.code).toBe(2)
        expect(noUrl.stderr).toContain("watch needs NATS_URL")
      }).pipe(
        Effect.provide(systemTestLayer({ settings: { dataRoot: root } })),
        Effect.ensuring(Effect.sync(() => rmSync(root, { recursive: true, force: true })))
      )
    },
    600_000
  )
})
