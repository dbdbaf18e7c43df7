/**
 * nats-server itself fails mid-batch (SIGTERM, SIGKILL) and comes back on the same store: the
 * batch completes with exactly one result per scenario, no message stays behind in the work
 * queue, and the actors resume by themselves. Also: an executor started before any topology
 * exists waits for it; a process whose replica setting differs leaves the streams as they are.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { generateCatalog } from "../src/data/index.js"
import { publishRaw } from "../src/streams/bus.js"
import { childEnv, Nats, NatsSettings } from "../src/streams/connection.js"
import { ensureTopologyReporting, STREAM, SUBJECT } from "../src/streams/topology.js"
import { CLI_MAIN, TSX_LOADER } from "../src/cli/system.js"
import { systemTestLayer } from "./support/system.js"
import { natsTestLayer } from "./support/nats.js"
import { restartableServer } from "./support/restartable.js"
import { readResults, storedResultCounts, waitForBatch } from "./support/results.js"
import { publishFixture } from "./support/strategies.js"
import { stopChild, until } from "./support/child.js"

const ACK_WAIT_MS = 3_000

/** A batch of slow scenarios; `strategy` is the slow fixture as published (name@hash). */
const slowBatch = (count: number, strategy: string) => ({
  batch_name: "server_faults",
  defaults: {
    strategy,
    freq: "1d",
    start_date: "2017-01-02",
    end_date: "2019-12-31",
    universe: ["AAA"],
    start_capital: 100_000
  },
  sweep: { id: "slow", grid: { fast: { from: 1, to: count, step: 1 }, spin_us: [60] } }
})

const pipelineMessages = Effect.gen(function* () {
  const { jsm } = yield* Nats
  return (yield* Effect.promise(() => jsm.streams.info(STREAM.pipeline))).state.messages
})

describe("nats-server faults", () => {
  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    it.scopedLive(
      `nats-server ${signal} mid-batch and restarted: one result per scenario, nothing left in the work queue`,
      () => {
        const root = mkdtempSync(join(tmpdir(), "tf-srvfault-"))
        return Effect.gen(function* () {
          yield* generateCatalog({ root, symbols: ["AAA"], freqs: ["1d"], start: "2016-01-01", end: "2019-12-31", seed: 3 })
          const server = yield* restartableServer
          const batchId = `srv-${signal.toLowerCase()}`
          const N = 30
          yield* Effect.gen(function* () {
            const slow = yield* publishFixture("slow-strategy.ts")
            yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: batchId, config: slowBatch(N, slow) }), `submit:${batchId}`)
            // Kill the server once some, not all, results are stored.
            const { jsm } = yield* Nats
            const stored = () =>
              jsm.streams
                .info(STREAM.results, { subjects_filter: SUBJECT.resultsOf(batchId) })
                .then((i) => Object.keys(i.state.subjects ?? {}).length)
                .catch(() => 0)
            yield* Effect.promise(() => until(async () => (await stored()) >= 3, "first results", 480_000))
            const before = yield* Effect.promise(stored)
            yield* server.kill(signal)
            yield* Effect.sleep("1 second")
            yield* server.start
            const back = Date.now()
            const rec = yield* waitForBatch(batchId, 480_000)
            const doneAfter = Date.now() - back
            expect(rec.status).toBe("done")
            expect(rec.counts).toEqual({ success: N, skipped: 0, failed: 0 })
            const perSubject = Object.values(yield* storedResultCounts(batchId))
            expect(perSubject).toHaveLength(N)
            expect(perSubject.every((n) => n === 1)).toBe(true)
            const results = yield* readResults(batchId)
            expect(results).toHaveLength(N)
            // Resumption (printed, not asserted): the first result finished after the server's return.
            const after = results.map((r) => Date.parse(r.finished_at) - back).filter((ms) => ms >= 0).sort((a, b) => a - b)
            console.log(
              `RECOVERY nats-server ${signal}: first result ${after[0]} ms after the server was back, batch done after ${doneAfter} ms (${before}/${N} stored before the kill)`
            )
            // Processed messages do not linger in the work queue (acks lost at the crash are
            // answered by the redelivery: already-done scenarios are skipped and acked).
            let left = yield* pipelineMessages
            for (const deadline = Date.now() + 300_000; left > 0 && Date.now() < deadline; left = yield* pipelineMessages) yield* Effect.sleep("500 millis")
            expect(left).toBe(0)
          }).pipe(
            Effect.provide(
              systemTestLayer({
                nats: server.settings,
                settings: { dataRoot: root, execChunkSize: 3, ackWaitMs: ACK_WAIT_MS },
                topology: { ackWaitMs: ACK_WAIT_MS }
              })
            )
          )
        }).pipe(Effect.ensuring(Effect.sync(() => rmSync(root, { recursive: true, force: true }))))
      },
      300_000
    )
  }

  it.scopedLive(
    "an executor started before the topology exists waits for it, then runs the batch",
    () => {
      const root = mkdtempSync(join(tmpdir(), "tf-early-"))
      let executor: ChildProcess | undefined
      return Effect.gen(function* () {
        yield* generateCatalog({ root, symbols: ["AAA"], freqs: ["1d"], start: "2016-01-01", end: "2019-12-31", seed: 3 })
        const settings = yield* NatsSettings
        const creds = settings.embedded!.credentials.executor
        executor = spawn(process.execPath, ["--import", TSX_LOADER, CLI_MAIN, "executor"], {
          stdio: ["ignore", "ignore", "pipe"],
          env: { ...process.env, ...childEnv(settings), NATS_USER: creds.user, NATS_PASSWORD: creds.pass, TICKFLOW_DATA_ROOT: root, TICKFLOW_LOG_LEVEL: "info", TICKFLOW_LOG_FORMAT: "json", TICKFLOW_INSTANCE_SUFFIX: "early" }
        })
        let stderr = ""
        executor.stderr!.on("data", (b) => (stderr += b))
        yield* Effect.promise(() => until(() => stderr.includes("waiting for the tickflow topology") || executor!.exitCode !== null, "the executor's wait", 480_000))
        expect(executor.exitCode).toBeNull()
        // Now the actors (without an in-process executor) create the topology and take a batch.
        yield* Effect.gen(function* () {
          const slow = yield* publishFixture("slow-strategy.ts")
          yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: "early1", config: slowBatch(6, slow) }), "submit:early1")
          const rec = yield* waitForBatch("early1", 480_000)
          expect(rec.counts).toEqual({ success: 6, skipped: 0, failed: 0 })
          const all = yield* readResults("early1")
          expect(all.every((r) => r.executor?.endsWith(":early"))).toBe(true)
        }).pipe(
          Effect.provide(
            systemTestLayer({
              actors: ["coordinator", "availability", "requirements", "loader", "quality", "reporter"],
              nats: Layer.succeed(NatsSettings, settings),
              settings: { dataRoot: root }
            })
          )
        )
      }).pipe(
        Effect.provide(natsTestLayer()),
        Effect.ensuring(
          Effect.promise(async () => {
            if (executor) await stopChild(executor)
            rmSync(root, { recursive: true, force: true })
          })
        )
      )
    },
    600_000
  )

  it.scopedLive(
    "a process set to other replicas than the existing streams leaves them as they are and says which and how to change them",
    () =>
      Effect.gen(function* () {
        const first = yield* ensureTopologyReporting({ replicas: 1 })
        expect(first.replicaMismatches).toEqual([])
        // One server cannot hold 3 replicas; without the force setting nothing is even tried.
        const second = yield* ensureTopologyReporting({ replicas: 3 })
        const names = second.replicaMismatches.map((m) => m.stream).sort()
        expect(names).toEqual(
          ["KV_tf_batches", "KV_tf_cache", "KV_tf_claims", "KV_tf_coverage", "KV_tf_rejections", "KV_tf_runs", "KV_tf_sessions", "OBJ_tf_data", "OBJ_tf_strategies", "TF_DLQ", "TF_EVENTS", "TF_PIPELINE", "TF_RESULTS", "TF_SESSIONS"].sort()
        )
        expect(second.replicaMismatches.every((m) => m.existing === 1 && m.wanted === 3 && !m.changed)).toBe(true)
        const { jsm } = yield* Nats
        for (const name of names) expect((yield* Effect.promise(() => jsm.streams.info(name))).config.num_replicas).toBe(1)
      }).pipe(Effect.provide(natsTestLayer())),
    600_000
  )
})
