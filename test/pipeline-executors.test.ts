/**
 * Horizontal scaling and foreign clients, on a real nats-server:
 * - two executor processes share a batch; SIGKILL one mid-run: no scenario lost, none duplicated.
 * - a scenario published as raw JSON by the plain NATS client (no tickflow code) is run and its
 *   result arrives on tf.res.<batch>.<scenario>.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { connect } from "@nats-io/transport-node"
import { ensureSampleCatalog, generateCatalog } from "../src/data/index.js"
import { Bus, kvGet, publishRaw } from "../src/streams/bus.js"
import { childEnv, Nats, NatsSettings } from "../src/streams/connection.js"
import { STREAM, SUBJECT } from "../src/streams/topology.js"
import { BatchRecord, ScenarioResult } from "../src/schemas/results.js"
import { CLI_MAIN, TSX_LOADER } from "../src/cli/system.js"
import { systemTestLayer } from "./support/system.js"

const ACK_WAIT_MS = 3_000

const startExecutor = (env: Record<string, string>, name: string): ChildProcess =>
  spawn(process.execPath, ["--import", TSX_LOADER, CLI_MAIN, "executor"], {
    stdio: ["ignore", "ignore", process.env.TICKFLOW_TEST_CHILD_LOGS ? "inherit" : "ignore"],
    env: { ...process.env, ...env, TICKFLOW_ACK_WAIT_MS: String(ACK_WAIT_MS), TICKFLOW_LOG_LEVEL: process.env.TICKFLOW_TEST_CHILD_LOGS ? "info" : "warn", TICKFLOW_INSTANCE_SUFFIX: name }
  })

const exited = (c: ChildProcess) =>
  new Promise<void>((res) => (c.exitCode !== null || c.signalCode !== null ? res() : c.once("exit", () => res())))

describe("executors", () => {
  it.scopedLive(
    "two executor processes share a batch; SIGKILL of one loses nothing and duplicates nothing",
    () => {
      const root = mkdtempSync(join(tmpdir(), "tf-exec-"))
      const children: ChildProcess[] = []
      return Effect.gen(function* () {
        yield* generateCatalog({ root, symbols: ["AAA"], freqs: ["1d"], start: "2016-01-01", end: "2019-12-31", seed: 3 })
        const settings = yield* NatsSettings
        const { js } = yield* Nats
        // Executors connect with the executor role of nats.conf: they may not manage streams.
        const executorCreds = settings.embedded!.credentials.executor
        const env = { ...childEnv(settings), NATS_USER: executorCreds.user, NATS_PASSWORD: executorCreds.pass, TICKFLOW_DATA_ROOT: root }
        const a = startExecutor(env, "exA")
        const b = startExecutor(env, "exB")
        children.push(a, b)
        const config = {
          batch_name: "kill_test",
          defaults: {
            strategy: resolve(__dirname, "fixtures", "slow-strategy.ts"),
            freq: "1d",
            start_date: "2017-01-02",
            end_date: "2019-12-31",
            universe: ["AAA"],
            start_capital: 100_000
          },
          // ~750 bars × 120 µs ≈ 90 ms per scenario, five per execution message
          sweep: { id: "slow", grid: { fast: { from: 1, to: 30, step: 1 }, spin_us: [120] } }
        }
        // Follow results as they arrive, to kill executor A in the middle of its work.
        const follower = yield* Effect.promise(() => js.consumers.get(STREAM.results, { filter_subjects: SUBJECT.resultsOf("kill1") }))
        yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: "kill1", config }), "submit:kill1")
        let killedAfter = 0
        for (;;) {
          const m = yield* Effect.promise(() => follower.next({ expires: 30_000 }))
          if (!m) throw new Error("no result within 30 s")
          const r = ScenarioResult.parse(m.json())
          killedAfter++
          if (r.executor?.endsWith(":exA")) break
        }
        // Results are flushed every 100 ms, so A is in the middle of a five-scenario group: kill it.
        yield* Effect.sleep("30 millis")
        a.kill("SIGKILL")
        yield* Effect.promise(() => exited(a))

        const bus = yield* Bus
        let rec: BatchRecord | undefined
        for (let i = 0; i < 600 && !(rec && rec.status === "done"); i++) {
          yield* Effect.sleep("100 millis")
          rec = (yield* kvGet(bus.batches, "kill1", BatchRecord))?.value
        }
        expect(rec?.status).toBe("done")
        expect(rec?.counts).toEqual({ success: 30, skipped: 0, failed: 0 })

        // Exactly one stored result per scenario: nothing lost, nothing duplicated.
        const { jsm } = yield* Nats
        const info = yield* Effect.promise(() => jsm.streams.info(STREAM.results, { subjects_filter: SUBJECT.resultsOf("kill1") }))
        const perSubject = Object.values(info.state.subjects ?? {})
        expect(perSubject).toHaveLength(30)
        expect(perSubject.every((n) => n === 1)).toBe(true)

        const all: ScenarioResult[] = []
        const reader = yield* Effect.promise(() => js.consumers.get(STREAM.results, { filter_subjects: SUBJECT.resultsOf("kill1") }))
        for (;;) {
          const m = yield* Effect.promise(() => reader.next({ expires: 1_000 }))
          if (!m) break
          all.push(ScenarioResult.parse(m.json()))
        }
        const byExecutor = new Set(all.map((r) => r.executor?.split(":").pop()))
        expect(byExecutor).toEqual(new Set(["exA", "exB"]))
        // The message A held when it died was redelivered to B.
        expect(all.some((r) => (r.attempt ?? 1) > 1 && r.executor?.endsWith(":exB"))).toBe(true)
        expect(killedAfter).toBeLessThan(30)
      }).pipe(
        Effect.provide(
          systemTestLayer({
            actors: ["coordinator", "availability", "requirements", "loader", "quality", "reporter"],
            settings: { dataRoot: root, execChunkSize: 5, ackWaitMs: ACK_WAIT_MS },
            topology: { ackWaitMs: ACK_WAIT_MS }
          })
        ),
        Effect.ensuring(
          Effect.promise(async () => {
            for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM")
            await Promise.all(children.map(exited))
            rmSync(root, { recursive: true, force: true })
          })
        )
      )
    },
    120_000
  )

  it.scopedLive(
    "SIGTERM drains an executor: the group in hand finishes and is acked, nothing is redelivered",
    () => {
      const root = mkdtempSync(join(tmpdir(), "tf-drain-"))
      const children: ChildProcess[] = []
      return Effect.gen(function* () {
        yield* generateCatalog({ root, symbols: ["AAA"], freqs: ["1d"], start: "2016-01-01", end: "2019-12-31", seed: 3 })
        const settings = yield* NatsSettings
        const { js } = yield* Nats
        const env = { ...childEnv(settings), TICKFLOW_DATA_ROOT: root }
        const first = startExecutor(env, "first")
        children.push(first)
        const config = {
          batch_name: "drain_test",
          defaults: {
            strategy: resolve(__dirname, "fixtures", "slow-strategy.ts"),
            freq: "1d",
            start_date: "2017-01-02",
            end_date: "2019-12-31",
            universe: ["AAA"],
            start_capital: 100_000
          },
          sweep: { id: "slow", grid: { fast: { from: 1, to: 12, step: 1 }, spin_us: [150] } }
        }
        const follower = yield* Effect.promise(() => js.consumers.get(STREAM.results, { filter_subjects: SUBJECT.resultsOf("drain1") }))
        yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: "drain1", config }), "submit:drain1")
        const m = yield* Effect.promise(() => follower.next({ expires: 30_000 }))
        expect(m).not.toBeNull()
        // Results are flushed every 100 ms, so the first arrives while its group (3 × ~110 ms) is
        // still running: stop the executor now, in the middle of that group.
        yield* Effect.sleep("50 millis")
        first.kill("SIGTERM")
        yield* Effect.promise(() => exited(first))
        expect(first.exitCode).toBe(0)
        const bus = yield* Bus
        // Results are stored before their group is acked: count them in the stream (the batch
        // record's counters may lag by a reporter flush).
        const { jsm } = yield* Nats
        const stored = yield* Effect.promise(() => jsm.streams.info(STREAM.results, { subjects_filter: SUBJECT.resultsOf("drain1") }))
        const done = Object.keys(stored.state.subjects ?? {}).length
        // whole groups of three: the one in hand was finished, not abandoned
        expect(done % 3).toBe(0)
        expect(done).toBeGreaterThanOrEqual(3)
        expect(done).toBeLessThan(12)
        const second = startExecutor(env, "second")
        children.push(second)
        let rec: BatchRecord | undefined
        for (let i = 0; i < 600 && !(rec && rec.status === "done"); i++) {
          yield* Effect.sleep("100 millis")
          rec = (yield* kvGet(bus.batches, "drain1", BatchRecord))?.value
        }
        expect(rec?.counts).toEqual({ success: 12, skipped: 0, failed: 0 })
        const all: ScenarioResult[] = []
        const reader = yield* Effect.promise(() => js.consumers.get(STREAM.results, { filter_subjects: SUBJECT.resultsOf("drain1") }))
        for (;;) {
          const r = yield* Effect.promise(() => reader.next({ expires: 1_000 }))
          if (!r) break
          all.push(ScenarioResult.parse(r.json()))
        }
        expect(all).toHaveLength(12)
        // Nothing the first executor ran was run again. (A message its interrupted pull received
        // after the stop is nak'ed at once and run by the second executor as attempt 2.)
        expect(all.filter((r) => r.executor?.endsWith(":first")).every((r) => r.attempt === 1)).toBe(true)
        expect(all.filter((r) => r.executor?.endsWith(":first")).length).toBe(done)
      }).pipe(
        Effect.provide(
          systemTestLayer({
            actors: ["coordinator", "availability", "requirements", "loader", "quality", "reporter"],
            settings: { dataRoot: root, execChunkSize: 3, ackWaitMs: ACK_WAIT_MS },
            topology: { ackWaitMs: ACK_WAIT_MS }
          })
        ),
        Effect.ensuring(
          Effect.promise(async () => {
            for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM")
            await Promise.all(children.map(exited))
            rmSync(root, { recursive: true, force: true })
          })
        )
      )
    },
    120_000
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
            const ack = await nc.request("tf.submit", file, { timeout: 5_000 })
            for await (const m of sub) return { ack: ack.json<{ stream: string; seq: number }>(), result: m.json<Record<string, unknown>>() }
            throw new Error("subscription closed without a result")
          } finally {
            await nc.close()
          }
        }).pipe(Effect.timeout("40 seconds"))
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
