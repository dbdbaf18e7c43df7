/**
 * Exact counts by construction (the bus-tax issue): the reporter derives each batch record from
 * the results stream, so killing it at any moment, running two at once, or mixing failures of
 * different phases never skews the record. Reporters run here as separate processes
 * (`tickflow actors --only reporter`), the other actors in this process, on a real nats-server.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { generateCatalog } from "../src/data/index.js"
import { mulberry32 } from "../src/engine/index.js"
import { publishRaw, type Bus } from "../src/streams/bus.js"
import { childEnv, type Nats, NatsSettings } from "../src/streams/connection.js"
import { SUBJECT } from "../src/streams/topology.js"
import { CLI_MAIN, TSX_LOADER } from "../src/cli/system.js"
import { publishFixture } from "./support/strategies.js"
import { systemTestLayer } from "./support/system.js"
import { readResults, storedResultCounts, waitForBatch } from "./support/results.js"

const NO_REPORTER = ["coordinator", "availability", "requirements", "loader", "quality", "executor"] as const

const startReporter = (env: Record<string, string>): ChildProcess =>
  spawn(process.execPath, ["--import", TSX_LOADER, CLI_MAIN, "actors", "--only", "reporter"], {
    stdio: ["ignore", "ignore", process.env.TICKFLOW_TEST_CHILD_LOGS ? "inherit" : "ignore"],
    env: { ...process.env, ...env, TICKFLOW_LOG_LEVEL: process.env.TICKFLOW_TEST_CHILD_LOGS ? "info" : "warn" }
  })

const exited = (c: ChildProcess) =>
  new Promise<void>((res) => (c.exitCode !== null || c.signalCode !== null ? res() : c.once("exit", () => res())))

/** Actors in this process without a reporter; reporters started by the body; all cleaned up. */
const withReporterProcesses = <A>(body: (ctx: { root: string; start: () => ChildProcess }) => Effect.Effect<A, unknown, NatsSettings | Nats | Bus>) => {
  const root = mkdtempSync(join(tmpdir(), "tf-reporter-"))
  const children: ChildProcess[] = []
  return Effect.gen(function* () {
    yield* generateCatalog({ root, symbols: ["AAA", "BAD"], freqs: ["1d"], start: "2016-01-01", end: "2019-12-31", seed: 5 })
    const env = childEnv(yield* NatsSettings)
    return yield* body({
      root,
      start: () => {
        const c = startReporter(env)
        children.push(c)
        return c
      }
    })
  }).pipe(
    Effect.provide(systemTestLayer({ actors: NO_REPORTER, settings: { dataRoot: root, execChunkSize: 4 } })),
    Effect.ensuring(
      Effect.promise(async () => {
        for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
        await Promise.all(children.map(exited))
        rmSync(root, { recursive: true, force: true })
      })
    )
  )
}

const sweep = (name: string, count: number, extra: Record<string, unknown> = {}) => ({
  batch_name: name,
  defaults: { strategy: "trend_baseline", freq: "1d", start_date: "2017-01-02", end_date: "2019-12-31", universe: ["AAA"], start_capital: 100_000 },
  sweep: { id: "ema", grid: { fast: { from: 2, to: count / 4 + 1, step: 1 }, slow: [100, 150, 200, 250] } },
  ...extra
})

/** The record must say exactly what the stream holds: one result per scenario, each counted once. */
const expectExact = (batchId: string, total: number) =>
  Effect.gen(function* () {
    const rec = yield* waitForBatch(batchId, 90_000)
    const results = yield* readResults(batchId)
    const stored = Object.values(yield* storedResultCounts(batchId))
    expect(stored).toHaveLength(total)
    expect(stored.every((n) => n === 1)).toBe(true)
    const tally = { success: 0, skipped: 0, failed: 0 }
    for (const r of results) tally[r.status]++
    expect(rec.total).toBe(total)
    expect(rec.counts).toEqual(tally)
    return rec
  })

describe("reporter: counts derived from the results stream", () => {
  it.scopedLive(
    "a reporter SIGKILLed at 20 random moments, each during a batch: every record ends exact",
    () =>
      withReporterProcesses(({ start }) =>
        Effect.gen(function* () {
          const random = mulberry32(20261130)
          let reporter = start()
          // Each round submits a batch and kills the reporter at a random moment while its
          // results arrive (or while the reporter is starting, or rebuilding after the last kill).
          for (let i = 0; i < 20; i++) {
            yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: `kill-rep-${i}`, config: sweep(`kill_rep_${i}`, 24, { cache: false }) }), `submit:kill-rep-${i}`)
            yield* Effect.sleep(`${Math.round(50 + random() * 1_000)} millis`)
            reporter.kill("SIGKILL")
            yield* Effect.promise(() => exited(reporter))
            reporter = start()
          }
          for (let i = 0; i < 20; i++) {
            const rec = yield* expectExact(`kill-rep-${i}`, 24)
            expect(rec).toMatchObject({ status: "done", counts: { success: 24, skipped: 0, failed: 0 } })
            for (const phase of ["availability", "requirements", "loading", "quality", "execution"])
              expect(rec.phases[phase]).toMatchObject({ in: 24, pass: 24 })
          }
        })
      ),
    180_000
  )

  it.scopedLive(
    "two reporters at once write the same exact record",
    () =>
      withReporterProcesses(({ start }) =>
        Effect.gen(function* () {
          start()
          start()
          yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: "two-rep", config: sweep("two_rep", 120) }), "submit:two-rep")
          const rec = yield* expectExact("two-rep", 120)
          expect(rec.status).toBe("done")
          expect(rec.phases.execution).toMatchObject({ in: 120, pass: 120 })
        })
      ),
    120_000
  )

  it.scopedLive(
    "one loading failure and one execution failure: the batch is done, each failure counted once",
    () =>
      withReporterProcesses(({ root, start }) =>
        Effect.gen(function* () {
          // BAD's footer (and so its coverage) is intact, its pages are not: loading fails.
          const file = join(root, "1d", "BAD", "2018.parquet")
          const bytes = readFileSync(file)
          const footerLength = bytes.readUInt32LE(bytes.length - 8)
          for (let i = 4; i < bytes.length - 8 - footerLength; i++) bytes[i] ^= 0x5a
          writeFileSync(file, bytes)
          start()
          const thrower = yield* publishFixture("throwing-strategy.ts")
          const config = {
            batch_name: "two_failures",
            defaults: { freq: "1d", start_date: "2017-01-02", end_date: "2019-12-31", start_capital: 100_000 },
            runs: [
              { id: "load_fails", strategy: "trend_baseline", universe: ["BAD"] },
              { id: "exec_fails", strategy: thrower, universe: ["AAA"], params: { after: 10 } }
            ]
          }
          yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: "two-fail", config }), "submit:two-fail")
          const rec = yield* expectExact("two-fail", 2)
          expect(rec).toMatchObject({ status: "done", counts: { success: 0, skipped: 0, failed: 2 } })
          expect(rec.error).toBeUndefined()
          const byId = new Map((yield* readResults("two-fail")).map((r) => [r.scenario_id, r]))
          expect(byId.get("load_fails")).toMatchObject({ status: "failed", phase: "loading" })
          expect(byId.get("exec_fails")).toMatchObject({ status: "failed", phase: "execution" })
          expect(rec.phases.loading).toMatchObject({ in: 2, pass: 1, failed: 1 })
        })
      ),
    120_000
  )
})
