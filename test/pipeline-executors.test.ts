/**
 * Horizontal scaling and foreign clients, on a real nats-server:
 * - two executor processes share a batch; SIGKILL one mid-run: no scenario lost, none duplicated.
 * - a scenario published as raw JSON by the plain NATS client (no tickflow code) is run and its
 *   result arrives on tf.res.<batch>.<scenario>.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { ChildProcess } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { connect } from "@nats-io/transport-node"
import { ensureSampleCatalog, generateCatalog } from "../src/data/index.js"
import { Bus, publishRaw } from "../src/streams/bus.js"
import { childEnv, Nats, NatsSettings } from "../src/streams/connection.js"
import { STREAM, SUBJECT } from "../src/streams/topology.js"
import { systemTestLayer } from "./support/system.js"
import { publishFixture } from "./support/strategies.js"
import { readResults, storedResultCounts, waitForBatch, waitForRecord } from "./support/results.js"
import { exited, onJsonLogLines, startTickflow, stopChild, until } from "./support/child.js"

const ACK_WAIT_MS = 3_000

/** An executor process; with `logs`, its JSON log lines (info and up) are collected there. */
const startExecutor = (env: Record<string, string>, name: string, logs?: Array<Record<string, unknown>>): ChildProcess => {
  const child = startTickflow(
    ["executor"],
    { ...env, TICKFLOW_ACK_WAIT_MS: String(ACK_WAIT_MS), TICKFLOW_INSTANCE_SUFFIX: name, ...(logs ? { TICKFLOW_LOG_LEVEL: "info", TICKFLOW_LOG_FORMAT: "json" } : {}) },
    { pipeStderr: logs !== undefined }
  )
  if (logs) onJsonLogLines(child, (entry) => void logs.push(entry))
  return child
}

const STAGE_ACTORS = ["coordinator", "availability", "requirements", "loader", "quality", "reporter"] as const

/** A batch of slow scenarios (~90–110 ms each) on the generated AAA series. */
const slowBatch = (name: string, count: number, spinUs: number, strategy: string) => ({
  batch_name: name,
  defaults: {
    strategy,
    freq: "1d",
    start_date: "2017-01-02",
    end_date: "2019-12-31",
    universe: ["AAA"],
    start_capital: 100_000
  },
  sweep: { id: "slow", grid: { fast: { from: 1, to: count, step: 1 }, spin_us: [spinUs] } }
})

/**
 * Stage actors in this process, executors as separate processes started by `body` through
 * `startWith(name)`; the catalog, the children and the server are cleaned up whatever happens.
 */
const withExecutorProcesses = <A>(
  execChunkSize: number,
  body: (ctx: {
    startWith: (name: string, extraEnv?: Record<string, string>, logs?: Array<Record<string, unknown>>) => ChildProcess
    root: string
  }) => Effect.Effect<A, unknown, NatsSettings | Nats | Bus>
) => {
  const root = mkdtempSync(join(tmpdir(), "tf-exec-"))
  const children: ChildProcess[] = []
  return Effect.gen(function* () {
    yield* generateCatalog({ root, symbols: ["AAA"], freqs: ["1d"], start: "2016-01-01", end: "2019-12-31", seed: 3 })
    const settings = yield* NatsSettings
    // Executors connect with the executor role of nats.conf: they may not manage streams.
    const executorCreds = settings.embedded!.credentials.executor
    const env = { ...childEnv(settings), NATS_USER: executorCreds.user, NATS_PASSWORD: executorCreds.pass, TICKFLOW_DATA_ROOT: root }
    return yield* body({
      root,
      startWith: (name, extraEnv = {}, logs) => {
        const child = startExecutor({ ...env, ...extraEnv }, name, logs)
        children.push(child)
        return child
      }
    })
  }).pipe(
    Effect.provide(
      systemTestLayer({
        actors: STAGE_ACTORS,
        settings: { dataRoot: root, execChunkSize, ackWaitMs: ACK_WAIT_MS },
        topology: { ackWaitMs: ACK_WAIT_MS }
      })
    ),
    Effect.ensuring(
      Effect.promise(async () => {
        await Promise.all(children.map((c) => stopChild(c)))
        rmSync(root, { recursive: true, force: true })
      })
    )
  )
}

/**
 * The batch ends `done` with every one of its `n` scenarios a success, and exactly one stored
 * result per scenario: nothing lost, nothing duplicated. Returns the record.
 */
const doneWithOneResultEach = (batchId: string, n: number) =>
  Effect.gen(function* () {
    const rec = yield* waitForBatch(batchId, 480_000)
    expect(rec.status).toBe("done")
    expect(rec.counts).toEqual({ success: n, skipped: 0, failed: 0 })
    const perSubject = Object.values(yield* storedResultCounts(batchId))
    expect(perSubject).toHaveLength(n)
    expect(perSubject.every((count) => count === 1)).toBe(true)
    return rec
  })

/** Wait (without blocking the worker) for the marker the slow fixture writes when it stalls. */
const stalled = (marker: string) => Effect.promise(() => until(() => existsSync(marker), `executor stall marker ${marker}`, 480_000))

/**
 * Executor `exA` alone takes a batch of `count` slow scenarios (`spinUs` of spin a bar) and stalls at its
 * `stallAt`-th scenario, whatever the machine's load; returns it, stalled, to be killed there.
 */
const stalledExecutorA = (
  { startWith, root }: { startWith: (name: string, extraEnv?: Record<string, string>) => ChildProcess; root: string },
  batch: { id: string; name: string; count: number; spinUs: number; stallAt: number }
) =>
  Effect.gen(function* () {
    const marker = join(root, "exA.stalled")
    const a = startWith("exA", { TICKFLOW_TEST_STALL: `${batch.stallAt}:120000:${marker}` })
    const slow = yield* publishFixture("slow-strategy.ts")
    yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: batch.id, config: slowBatch(batch.name, batch.count, batch.spinUs, slow) }), `submit:${batch.id}`)
    yield* stalled(marker)
    return a
  })

describe("executors", () => {
  it.scopedLive(
    "two executor processes share a batch; SIGKILL of one holding a group mid-way loses nothing and duplicates nothing",
    () =>
      withExecutorProcesses(5, ({ startWith, root }) =>
        Effect.gen(function* () {
          // A alone runs its first group of five (published and acked), then stalls at the first
          // scenario of its second group: killed there, it dies holding an unfinished group.
          const a = yield* stalledExecutorA({ startWith, root }, { id: "kill1", name: "kill_test", count: 30, spinUs: 120, stallAt: 6 })
          startWith("exB")
          a.kill("SIGKILL")
          yield* Effect.promise(() => exited(a))

          const rec = yield* doneWithOneResultEach("kill1", 30)
          // Phase counters equal the scenarios that passed each phase, though a group was redelivered
          // (the last phase events may land just after the last result).
          const phasesDone = (r: typeof rec) =>
            ["availability", "requirements", "loading", "quality", "execution"].every((p) => r.phases[p]?.in === 30 && r.phases[p]?.pass === 30)
          const settled = yield* waitForRecord("kill1", phasesDone)
          expect(settled.counts).toEqual({ success: 30, skipped: 0, failed: 0 })
          const all = yield* readResults("kill1")
          const byA = all.filter((r) => r.executor?.endsWith(":exA"))
          const byB = all.filter((r) => r.executor?.endsWith(":exB"))
          // A's first group, once each; B everything else.
          expect(byA).toHaveLength(5)
          expect(byA.every((r) => r.attempt === 1)).toBe(true)
          expect(byB).toHaveLength(25)
          // The group A held when it died was redelivered to B.
          expect(byB.filter((r) => (r.attempt ?? 1) > 1)).toHaveLength(5)
        })
      ),
    600_000
  )

  it.scopedLive(
    "a redelivered chunk, under the executor role, runs only the scenarios its first executor had not answered",
    () =>
      withExecutorProcesses(5, ({ startWith, root }) =>
        Effect.gen(function* () {
          // A runs its first chunk of five, then the second one up to its fifth scenario, where
          // it stalls (~225 ms a scenario: each result is published before the next one runs).
          // Killed there, it leaves a chunk that is partly answered.
          const a = yield* stalledExecutorA({ startWith, root }, { id: "redo1", name: "redo_test", count: 10, spinUs: 300, stallAt: 10 })
          // what A wrote before it stalled reaches the stream (A itself can send nothing more)
          yield* Effect.sleep("1 second")
          const answeredByA = (yield* readResults("redo1")).filter((r) => r.executor?.endsWith(":exA")).length
          const logs: Array<Record<string, unknown>> = []
          startWith("exB", {}, logs)
          a.kill("SIGKILL")
          yield* Effect.promise(() => exited(a))

          yield* doneWithOneResultEach("redo1", 10)
          const all = yield* readResults("redo1")
          const byA = all.filter((r) => r.executor?.endsWith(":exA"))
          // A answered its first chunk and some of the second before it stalled
          expect(answeredByA).toBeGreaterThan(5)
          expect(byA).toHaveLength(answeredByA)
          // B says how many of the redelivered chunk it found answered (it reads the last result
          // on each scenario's subject, which the executor role must be allowed to do), and ran
          // only the others: 10 - answered results are B's, from the second delivery.
          const redelivery = () => logs.find((l) => String(l.msg ?? "").startsWith("redelivered execution chunk"))
          yield* Effect.promise(() => until(async () => redelivery() !== undefined, "exB's redelivery log line", 30_000))
          const line = redelivery()!
          expect(line.batch_id).toBe("redo1")
          expect(line.answered).toBe(answeredByA - 5)
          const byB = all.filter((r) => r.executor?.endsWith(":exB"))
          expect(byB).toHaveLength(10 - answeredByA)
          expect(byB.every((r) => (r.attempt ?? 1) > 1)).toBe(true)
        })
      ),
    600_000
  )

  it.scopedLive(
    "SIGTERM drains an executor: the group in hand finishes and is acked, nothing is redelivered",
    () =>
      withExecutorProcesses(3, ({ startWith, root }) =>
        Effect.gen(function* () {
          // The first executor pauses (800 ms, well inside the 3 s ack wait) in the middle of its
          // first group of three: SIGTERM arrives then, while the group is in hand.
          const marker = join(root, "first.stalled")
          const first = startWith("first", { TICKFLOW_TEST_STALL: `2:800:${marker}` })
          const slow = yield* publishFixture("slow-strategy.ts")
          yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: "drain1", config: slowBatch("drain_test", 12, 150, slow) }), "submit:drain1")
          yield* stalled(marker)
          first.kill("SIGTERM")
          yield* Effect.promise(() => exited(first))
          expect(first.exitCode).toBe(0)
          // Results are stored before their group is acked: count them in the stream (the batch
          // record's counters may lag by a reporter flush). The group in hand was finished, not
          // abandoned, and no other was started.
          const done = Object.keys(yield* storedResultCounts("drain1")).length
          expect(done).toBe(3)
          startWith("second")
          const rec = yield* waitForBatch("drain1", 480_000)
          expect(rec.counts).toEqual({ success: 12, skipped: 0, failed: 0 })
          const all = yield* readResults("drain1")
          expect(all).toHaveLength(12)
          // Nothing the first executor ran was run again. (A message its interrupted pull received
          // after the stop is nak'ed at once and run by the second executor as attempt 2.)
          const byFirst = all.filter((r) => r.executor?.endsWith(":first"))
          expect(byFirst.every((r) => r.attempt === 1)).toBe(true)
          expect(byFirst.length).toBe(done)
        })
      ),
    600_000
  )

  it.scopedLive(
    "a scenario published as raw JSON by a plain NATS client gets its result on tf.res.<batch>.<scenario>",
    () => {
      const root = mkdtempSync(join(tmpdir(), "tf-raw-"))
      return Effect.gen(function* () {
        yield* ensureSampleCatalog(root)
        const settings = yield* NatsSettings
        const creds = settings.embedded!.credentials.submitter
        const file = readFileSync(resolve(__dirname, "..", "examples", "scenario.json"))
        const example = JSON.parse(file.toString()) as { batch_id: string; scenario_id: string }
        // From here on: only the NATS client, as a service in any language would do it.
        const reply = yield* Effect.promise(async () => {
          const nc = await connect({ servers: settings.servers, user: creds.user, pass: creds.pass })
          try {
            const sub = nc.subscribe(`tf.res.${example.batch_id}.${example.scenario_id}`, { max: 1 })
            const ack = await nc.request("tf.submit", file, { timeout: 60_000 })
            for await (const m of sub) return { ack: ack.json<{ stream: string; seq: number }>(), result: m.json<Record<string, unknown>>() }
            throw new Error("subscription closed without a result")
          } finally {
            await nc.close()
          }
        }).pipe(Effect.timeout("480 seconds"))
        expect(reply.ack.stream).toBe("TF_PIPELINE")
        expect(reply.result).toMatchObject({ batch_id: "example-service", scenario_id: "spx-ema-10-50", status: "success", universe: ["SPX"] })
        expect((reply.result.metrics as { trades: number }).trades).toBeGreaterThan(0)
      }).pipe(
        Effect.provide(systemTestLayer({ settings: { dataRoot: root } })),
        Effect.ensuring(Effect.sync(() => rmSync(root, { recursive: true, force: true })))
      )
    },
    60_000
  )
})
