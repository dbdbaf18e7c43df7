/**
 * The actors process (coordinator, availability, requirements, loader, quality, reporter) is
 * SIGKILLed while a batch is in each phase, then started again: the batch completes `done` with
 * exact counts, one stored result per scenario (lost 0, duplicated 0), no dead letter, and the
 * work queue ends empty.
 *
 * "In the phase" is made deterministic by TICKFLOW_TEST_FREEZE (ActorSettings.testFreeze): the
 * actors process writes a marker file and blocks entirely at a named point — a message received
 * but nothing published (`received`), inside the phase after its `phase_start` event
 * (`started`), or after everything the handler publishes but before the ack (`handled`); the
 * reporter after writing a record with some, not all, results counted (`partial`). The test
 * checks on the bus that the process stopped where it says, then kills it there.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { ChildProcess } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { generateCatalog } from "../src/data/index.js"
import { Bus, kvGet, publishRaw } from "../src/streams/bus.js"
import { childEnv, Nats, NatsSettings } from "../src/streams/connection.js"
import { replayAll } from "../src/streams/replay.js"
import { CONSUMER, STREAM, SUBJECT } from "../src/streams/topology.js"
import { BatchRecord, type Phase } from "../src/schemas/results.js"
import type { FreezePoint } from "../src/actors/common.js"
import { systemTestLayer } from "./support/system.js"
import { publishFixture } from "./support/strategies.js"
import { readResults, storedResultCounts, waitForBatch, waitForRecord } from "./support/results.js"
import { exited, startTickflow, stopChild, until } from "./support/child.js"

const ACK_WAIT_MS = 2_000
const N = 8
const CHUNK = 3
const STAGE_ACTORS = "coordinator,availability,requirements,loader,quality,reporter"
const GROUP_PHASES = ["availability", "requirements", "loading", "quality", "execution"] as const

/** The consumer of the stage that runs a phase (the one whose message the kill leaves un-acked). */
const CONSUMER_OF: Partial<Record<Phase, string>> = {
  submission: CONSUMER.coordinator.name,
  availability: CONSUMER.availability.name,
  requirements: CONSUMER.requirements.name,
  loading: CONSUMER.loader.name,
  quality: CONSUMER.quality.name
}

interface KillCase {
  readonly phase: Phase
  readonly point: FreezePoint
}
/**
 * Every phase at every point it can be caught at (TICKFLOW_FAULTS_ALL=1: 11 cases, ~6 min on a
 * loaded 2-core machine); by default one case per phase, the points alternating, so each phase
 * and each kind of point is covered in ~3 min.
 */
const ALL_CASES: ReadonlyArray<KillCase> = [
  { phase: "submission", point: "received" },
  { phase: "submission", point: "handled" },
  ...(["availability", "requirements", "loading", "quality"] as const).flatMap((phase) => [
    { phase, point: "started" as const },
    { phase, point: "handled" as const }
  ]),
  { phase: "summary", point: "partial" },
  // killed between the slice claim and the stored slice: the next loader takes the claim over
  // once it has gone unrenewed for 15 s (loader.ts)
  { phase: "loading", point: "claimed" }
]
const DEFAULT_CASES = new Set(["submission:handled", "availability:started", "requirements:handled", "loading:started", "quality:handled", "summary:partial"])
const CASES = process.env.TICKFLOW_FAULTS_ALL === "1" ? ALL_CASES : ALL_CASES.filter((c) => DEFAULT_CASES.has(`${c.phase}:${c.point}`))

const slowBatch = (strategy: string) => ({
  batch_name: "actor_kills",
  defaults: { strategy, freq: "1d", start_date: "2017-01-02", end_date: "2019-12-31", universe: ["AAA"], start_capital: 100_000 },
  sweep: { id: "k", grid: { fast: { from: 1, to: N, step: 1 }, spin_us: [20] } }
})

const startCli = (args: ReadonlyArray<string>, env: Record<string, string>) => startTickflow(args, { TICKFLOW_ACK_WAIT_MS: String(ACK_WAIT_MS), ...env })

/** kind:phase of every phase event the batch has stored so far. */
const phaseEvents = (batchId: string) =>
  Effect.map(replayAll(`tf.evt.${batchId}.*.phase`), (ms) => ms.map((m) => { const e = m.json<{ kind: string; phase: string }>(); return `${e.kind}:${e.phase}` }))

const streamMessages = (stream: string) =>
  Effect.flatMap(Nats, ({ jsm }) => Effect.promise(() => jsm.streams.info(stream).then((i) => i.state.messages)))

/** Where the frozen process stands, as the bus shows it: the kill comes exactly there. */
const checkFrozenAt = (c: KillCase, batchId: string) =>
  Effect.gen(function* () {
    const events = yield* phaseEvents(batchId)
    const { jsm } = yield* Nats
    const consumer = CONSUMER_OF[c.phase]
    if (c.point === "received") {
      // nothing of the phase is out yet
      expect(events.filter((e) => e.endsWith(`:${c.phase}`))).toEqual([])
    } else if (c.point === "started") {
      expect(events).toContain(`phase_start:${c.phase}`)
      expect(events).not.toContain(`phase_result:${c.phase}`)
    } else if (c.point === "handled") {
      expect(events).toContain(`phase_result:${c.phase}`)
    } else if (c.point === "claimed") {
      expect(events).toContain(`phase_start:${c.phase}`)
      expect(events).not.toContain(`phase_result:${c.phase}`)
      const bus = yield* Bus
      const claims = yield* Effect.promise(async () => {
        const out: string[] = []
        for await (const k of await bus.claims.keys()) out.push(k)
        return out
      })
      expect(claims).toHaveLength(1)
    } else {
      const bus = yield* Bus
      const rec = yield* kvGet(bus.batches, batchId, BatchRecord)
      const done = (rec?.value.counts.success ?? 0) + (rec?.value.counts.skipped ?? 0) + (rec?.value.counts.failed ?? 0)
      expect(done).toBeGreaterThan(0)
      expect(done).toBeLessThan(N)
    }
    // the stage's message is in hand, not acked
    if (consumer) expect((yield* Effect.promise(() => jsm.consumers.info(STREAM.pipeline, consumer))).num_ack_pending).toBe(1)
  })

describe("actors process SIGKILLed during each phase", () => {
  for (const c of CASES) {
    it.scopedLive(
      `actors process SIGKILLed in ${c.phase} (${c.point}) and restarted: batch done, one result per scenario, work queue empty`,
      () => {
        const root = mkdtempSync(join(tmpdir(), "tf-actorkill-"))
        const children: ChildProcess[] = []
        const batchId = `kill-${c.phase}-${c.point}`
        return Effect.gen(function* () {
          yield* generateCatalog({ root, symbols: ["AAA"], freqs: ["1d"], start: "2016-01-01", end: "2019-12-31", seed: 3 })
          const settings = yield* NatsSettings
          const exec = settings.embedded!.credentials.executor
          const marker = join(root, "actors.frozen")
          // The reporter case needs results to stop arriving half-way: the executor pauses (no
          // CPU) at the first scenario of its second chunk, with the first chunk's results out.
          const execStall: Record<string, string> = c.phase === "summary" ? { TICKFLOW_TEST_STALL: `${CHUNK + 1}:8000:${join(root, "executor.stalled")}` } : {}
          children.push(
            startCli(["executor"], { ...childEnv(settings), NATS_USER: exec.user, NATS_PASSWORD: exec.pass, TICKFLOW_DATA_ROOT: root, TICKFLOW_INSTANCE_SUFFIX: "ex", ...execStall })
          )
          const actorsEnv = { ...childEnv(settings), TICKFLOW_DATA_ROOT: root, TICKFLOW_EXEC_CHUNK: String(CHUNK) }
          const first = startCli(["actors", "--only", STAGE_ACTORS], { ...actorsEnv, TICKFLOW_INSTANCE_SUFFIX: "a1", TICKFLOW_TEST_FREEZE: `${c.phase}:${c.point}:${marker}` })
          children.push(first)

          const slow = yield* publishFixture("slow-strategy.ts")
          yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: batchId, config: slowBatch(slow) }), `submit:${batchId}`)
          yield* Effect.promise(() => until(() => existsSync(marker) || first.exitCode !== null, `the actors process to freeze in ${c.phase} (${c.point})`, 480_000))
          expect(first.exitCode).toBeNull()
          yield* checkFrozenAt(c, batchId)

          first.kill("SIGKILL")
          yield* Effect.promise(() => exited(first))
          const restarted = Date.now()
          children.push(startCli(["actors", "--only", STAGE_ACTORS], { ...actorsEnv, TICKFLOW_INSTANCE_SUFFIX: "a2" }))

          const rec = yield* waitForBatch(batchId, 480_000)
          console.log(`RECOVERY actors SIGKILL in ${c.phase} (${c.point}): batch ${rec.status} ${((Date.now() - restarted) / 1000).toFixed(1)} s after the restart`)
          expect(rec.status).toBe("done")
          expect(rec.total).toBe(N)
          expect(rec.counts).toEqual({ success: N, skipped: 0, failed: 0 })
          // every phase counted each scenario once, though a message was handled twice
          const settled = yield* waitForRecord(batchId, (r) => GROUP_PHASES.every((p) => r.phases[p]?.in === N && r.phases[p]?.pass === N))
          expect(settled.phases.submission).toEqual({ in: N, pass: N, skipped: 0, failed: 0 })
          // one stored result per scenario: lost 0, duplicated 0
          const perSubject = yield* storedResultCounts(batchId)
          expect(Object.keys(perSubject)).toHaveLength(N)
          expect(Object.values(perSubject).every((n) => n === 1)).toBe(true)
          const results = yield* readResults(batchId)
          expect(new Set(results.map((r) => r.scenario_id)).size).toBe(N)
          expect(results.every((r) => r.status === "success")).toBe(true)
          // the message the killed process held was redelivered (not lost, not dead-lettered)
          const { jsm } = yield* Nats
          const consumer = CONSUMER_OF[c.phase]
          if (consumer) expect((yield* Effect.promise(() => jsm.consumers.info(STREAM.pipeline, consumer))).delivered.consumer_seq).toBeGreaterThanOrEqual(2)
          expect(yield* streamMessages(STREAM.dlq)).toBe(0)
          // the work queue ends empty, nothing pending or in hand at any stage
          yield* Effect.promise(() =>
            until(
              async () =>
                (await jsm.streams.info(STREAM.pipeline)).state.messages === 0 &&
                (await Promise.all(Object.values(CONSUMER).map((k) => jsm.consumers.info(STREAM.pipeline, k.name)))).every((i) => i.num_pending === 0 && i.num_ack_pending === 0),
              "an empty work queue",
              60_000
            )
          )
        }).pipe(
          Effect.provide(systemTestLayer({ actors: [], settings: { dataRoot: root, ackWaitMs: ACK_WAIT_MS }, topology: { ackWaitMs: ACK_WAIT_MS } })),
          Effect.ensuring(
            Effect.promise(async () => {
              await Promise.all(children.map((ch) => stopChild(ch)))
              rmSync(root, { recursive: true, force: true })
            })
          )
        )
      },
      600_000
    )
  }
})
