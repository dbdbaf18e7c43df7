/**
 * High availability on a real three-node JetStream cluster (nats-server, loopback), replicas 3:
 * - TICKFLOW_REPLICAS=3 gives every stream, bucket and object store of the topology a replica
 *   on each node.
 * - Batches run while the node leading each part of the topology in turn (every stream, bucket
 *   and object store, the pipeline's durable consumers and the JetStream meta group) is
 *   SIGKILLed and restarted on its store: every batch completes `done` with exact counts and
 *   exactly one stored result per scenario (lost 0, duplicated 0); nothing processed stays in
 *   the work queue. Failover times are printed as `RECOVERY ...` lines, never asserted.
 *
 * The stage actors run in this process, two executors as child processes with the executor
 * role; every client is given all three server URLs (NATS_URL=url1,url2,url3).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import type { KV } from "@nats-io/kv"
import { spawn, type ChildProcess } from "node:child_process"
import { createWriteStream, mkdtempSync, readFileSync, rmSync, type WriteStream } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { generateCatalog } from "../src/data/index.js"
import { kvCreate, publishRaw } from "../src/streams/bus.js"
import { Nats } from "../src/streams/connection.js"
import { BUCKET, CONSUMER, OBJECT_STORE, STREAM, SUBJECT } from "../src/streams/topology.js"
import { CLI_MAIN, TSX_LOADER } from "../src/cli/system.js"
import { systemTestLayer } from "./support/system.js"
import { startCluster, type NatsCluster } from "./support/cluster.js"
import { readResults, storedResultCounts, waitForBatch, waitForRecord } from "./support/results.js"
import { publishFixture } from "./support/strategies.js"
import { stopChild, until } from "./support/child.js"

const ACK_WAIT_MS = 5_000
/** Scenarios of the first batch, and of each batch added when the one in flight nears its end. */
const FIRST_BATCH = 60
const TOP_UP = 30
/** scenarios a batch must still have to run at a kill (else another batch is submitted first) */
const IN_FLIGHT = 15
const REPLICAS = 3
/** TICKFLOW_REPLICAS=3 through the one place that reads it (ReplicaConfig), the rest from the environment. */
const replicasFromEnv = ConfigProvider.fromMap(new Map([["TICKFLOW_REPLICAS", String(REPLICAS)]])).pipe(
  ConfigProvider.orElse(() => ConfigProvider.fromEnv())
)

/** Every stream the topology creates (streams, the streams behind KV buckets and object stores). */
const TOPOLOGY_STREAMS = [
  STREAM.pipeline,
  STREAM.results,
  STREAM.events,
  ...Object.values(BUCKET).map((b) => `KV_${b}`),
  `OBJ_${OBJECT_STORE}`,
  "OBJ_tf_strategies",
  "KV_tf_rejections",
  STREAM.dlq,
  STREAM.sessions
]

const STAGE_ACTORS = ["coordinator", "availability", "requirements", "loader", "quality", "reporter"] as const

/**
 * A batch of slow scenarios (~spin_us per bar over ~750 daily bars). Without the result cache:
 * a later batch of the same scenarios would be answered from it at once, with nothing in flight.
 */
const slowBatch = (name: string, count: number, strategy: string) => ({
  batch_name: name,
  cache: false,
  defaults: { strategy, freq: "1d", start_date: "2017-01-02", end_date: "2019-12-31", universe: ["AAA"], start_capital: 100_000 },
  sweep: { id: "slow", grid: { fast: { from: 1, to: count, step: 1 }, spin_us: [150] } }
})

let cluster: NatsCluster
let root: string

beforeAll(async () => {
  cluster = await startCluster(3)
  root = mkdtempSync(join(tmpdir(), "tf-cluster-data-"))
  await Effect.runPromise(generateCatalog({ root, symbols: ["AAA"], freqs: ["1d"], start: "2016-01-01", end: "2019-12-31", seed: 3 }))
}, 180_000)

afterAll(async () => {
  await cluster?.stop()
  if (root) rmSync(root, { recursive: true, force: true })
}, 60_000)

describe("three-node JetStream cluster", () => {
  it.scopedLive(
    "TICKFLOW_REPLICAS=3 puts a current replica of every stream, bucket and object store on each of the three nodes",
    () =>
      Effect.gen(function* () {
        const nodes = cluster.nodes.map((n) => n.name).sort()
        for (const name of TOPOLOGY_STREAMS) {
          const info = yield* Effect.promise(() => cluster.streamInfo(name))
          expect(info, `stream ${name}`).toBeDefined()
          expect(info!.config.num_replicas, name).toBe(REPLICAS)
          const c = info!.cluster!
          expect([c.leader, ...(c.replicas ?? []).map((r) => r.name)].sort(), name).toEqual(nodes)
        }
        for (const c of Object.values(CONSUMER)) expect(yield* Effect.promise(() => cluster.consumerLeader(STREAM.pipeline, c.name)), c.name).toBeDefined()
      }).pipe(
        Effect.provide(systemTestLayer({ actors: [], nats: cluster.settings, settings: { dataRoot: root } })),
        Effect.withConfigProvider(replicasFromEnv)
      ),
    300_000
  )

  it.scopedLive(
    "batches complete with one result per scenario while the leader of each stream, consumer and the meta group in turn is SIGKILLed and restarted",
    () => {
      const executors: ChildProcess[] = []
      let logFile: WriteStream | undefined
      return Effect.gen(function* () {
        const admin = yield* Nats
        // What is killed: the node leading each of these when its turn comes. One kill takes
        // down every leader on that node; the next turn goes to the first target not hit yet.
        const targets: Array<{ label: string; leader: () => Promise<string | undefined> }> = [
          ...TOPOLOGY_STREAMS.map((s) => ({ label: s, leader: () => cluster.streamLeader(s) })),
          ...Object.values(CONSUMER).map((c) => ({ label: `${STREAM.pipeline}/${c.name}`, leader: () => cluster.consumerLeader(STREAM.pipeline, c.name) })),
          { label: "JetStream meta", leader: () => cluster.metaLeader() }
        ]

        // Two executors, each given every server URL, with the executor role.
        logFile = createWriteStream(join(root, "executors.log"))
        for (const name of ["cx1", "cx2"]) {
          const child = spawn(process.execPath, ["--import", TSX_LOADER, CLI_MAIN, "executor"], {
            stdio: ["ignore", "ignore", "pipe"],
            env: {
              ...process.env,
              ...cluster.roleEnv("executor"),
              TICKFLOW_REPLICAS: String(REPLICAS),
              TICKFLOW_DATA_ROOT: root,
              TICKFLOW_ACK_WAIT_MS: String(ACK_WAIT_MS),
              TICKFLOW_LOG_LEVEL: "info",
              TICKFLOW_LOG_FORMAT: "json",
              TICKFLOW_INSTANCE_SUFFIX: name
            }
          })
          child.stderr!.pipe(logFile, { end: false })
          executors.push(child)
        }

        const slow = yield* publishFixture("slow-strategy.ts")
        const batches: Array<{ id: string; n: number }> = []
        const submit = (n: number) =>
          Effect.gen(function* () {
            const id = `cl${batches.length + 1}`
            batches.push({ id, n })
            yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: id, config: slowBatch(`cluster_${id}`, n, slow) }), `submit:${id}`)
          })
        /** Results stored so far per batch (distinct subjects), through the cluster's own admin connection. */
        const storedOf = async (id: string) => {
          const info = await cluster.streamInfo(STREAM.results, { subjects_filter: SUBJECT.resultsOf(id) })
          return info ? Object.keys(info.state.subjects ?? {}).length : undefined
        }
        const storedTotal = async () => {
          let total = 0
          for (const b of batches) {
            const n = await storedOf(b.id)
            if (n === undefined) return undefined
            total += n
          }
          return total
        }

        /** What the pipeline's consumers hold, for a failure message. */
        const diagnose = async () => {
          const lines: string[] = []
          for (const c of Object.values(CONSUMER)) {
            const i = await admin.jsm.consumers.info(STREAM.pipeline, c.name).catch((e) => String(e))
            lines.push(
              typeof i === "string"
                ? `${c.name}: ${i}`
                : `${c.name}: leader ${i.cluster?.leader} pending ${i.num_pending} ack_pending ${i.num_ack_pending} waiting ${i.num_waiting} redelivered ${i.num_redelivered} delivered ${i.delivered.stream_seq} ack_floor ${i.ack_floor.stream_seq}`
            )
          }
          const executorTrouble = readFileSync(join(root, "executors.log"), "utf8")
            .split("\n")
            .filter((l) => /"level":(40|50|60)/.test(l))
            .slice(-20)
          console.log(`DIAGNOSE consumers of ${STREAM.pipeline}:\n${lines.join("\n")}\nexecutor warnings (last 20):\n${executorTrouble.join("\n")}`)
        }

        yield* submit(FIRST_BATCH)
        const covered = new Map<string, string>()
        let round = 0
        for (const target of targets) {
          if (covered.has(target.label)) continue
          round++
          // Who leads what right now: every target led by the victim is hit by this kill.
          let leaders: ReadonlyArray<readonly [(typeof targets)[number], string | undefined]> = []
          yield* Effect.promise(() =>
            until(
              async () => {
                leaders = await Promise.all(targets.map(async (t) => [t, await t.leader()] as const))
                return leaders.find(([t]) => t === target)?.[1] !== undefined
              },
              `a leader of ${target.label}`,
              120_000
            )
          )
          const victim = leaders.find(([t]) => t === target)![1]!
          const hit = leaders.filter(([, l]) => l === victim).map(([t]) => t)

          // A batch in flight at the kill: the newest has results stored and IN_FLIGHT to go
          // (checked last, just before the kill; otherwise another batch is submitted).
          let before: number | undefined
          for (;;) {
            const current = batches[batches.length - 1]
            yield* Effect.promise(() => until(async () => ((await storedOf(current.id)) ?? 0) >= 1, `first result of ${current.id}`, 300_000))
            const stored = yield* Effect.promise(() => storedOf(current.id))
            before = yield* Effect.promise(storedTotal)
            if (stored !== undefined && before !== undefined && current.n - stored >= IN_FLIGHT) break
            yield* submit(TOP_UP)
          }
          console.log(`cluster round ${round}: SIGKILL ${victim}, leader of ${hit.map((t) => t.label).join(", ")}; ${before} results stored`)
          const killedAt = Date.now()
          yield* Effect.promise(() => cluster.kill(victim, "SIGKILL"))
          for (const t of hit) covered.set(t.label, victim)

          // Progress (a new result stored anywhere) is watched from the kill on.
          let progressMs: number | undefined
          yield* Effect.forkScoped(
            Effect.gen(function* () {
              for (;;) {
                const now = yield* Effect.promise(storedTotal)
                if (now !== undefined && before !== undefined && now > before) return (progressMs = Date.now() - killedAt)
                yield* Effect.sleep("200 millis")
              }
            })
          )

          // New leaders for everything the victim led (bounded wait: elections may need the node back).
          const elected = new Map<string, number>()
          const electDeadline = Date.now() + 60_000
          while (elected.size < hit.length && Date.now() < electDeadline) {
            // asked together: a request to a leaderless group waits out its timeout (2 s)
            yield* Effect.promise(() =>
              Promise.all(
                hit
                  .filter((t) => !elected.has(t.label))
                  .map(async (t) => {
                    const l = await t.leader()
                    if (l !== undefined && l !== victim) elected.set(t.label, Date.now() - killedAt)
                  })
              )
            )
            yield* Effect.sleep("100 millis")
          }
          const restartAt = Date.now()
          yield* Effect.promise(() => cluster.start(victim))
          const healthyMs = Date.now() - restartAt
          yield* Effect.promise(() => until(() => cluster.settled(TOPOLOGY_STREAMS), "the cluster to settle after the restart", 300_000))
          const settledMs = Date.now() - restartAt
          yield* Effect.promise(() => until(() => progressMs !== undefined, "a new result after the kill", 150_000)).pipe(
            Effect.tapDefect(() => Effect.promise(diagnose))
          )
          const electedText = hit.map((t) => `${t.label} ${elected.has(t.label) ? `${elected.get(t.label)} ms` : "not re-elected before the restart"}`).join(", ")
          const electedMs = [...elected.values()]
          console.log(
            `RECOVERY cluster round ${round}: SIGKILL ${victim} (leader of ${hit.length}); first new result ${progressMs} ms after the kill ` +
              `(${progressMs! < restartAt - killedAt ? "before" : "after"} the node's restart at ${restartAt - killedAt} ms); ` +
              `new leaders after ${Math.min(...electedMs)}–${Math.max(...electedMs)} ms (${electedText}); node healthy ${healthyMs} ms after its restart, all replicas current after ${settledMs} ms`
          )
        }
        expect([...covered.keys()].sort()).toEqual(targets.map((t) => t.label).sort())

        // Every batch done, exact counts, one stored result per scenario.
        let scenarios = 0
        let distinct = 0
        let stored = 0
        for (const b of batches) {
          const rec = yield* waitForBatch(b.id, 480_000)
          expect(rec.status, b.id).toBe("done")
          const settledRec = yield* waitForRecord(b.id, (r) => r.counts.success === b.n, 120_000)
          expect(settledRec.counts, b.id).toEqual({ success: b.n, skipped: 0, failed: 0 })
          const perSubject = Object.values(yield* storedResultCounts(b.id))
          scenarios += b.n
          distinct += perSubject.length
          stored += perSubject.reduce((a, x) => a + x, 0)
          expect(perSubject, b.id).toHaveLength(b.n)
          expect(perSubject.every((x) => x === 1), b.id).toBe(true)
          const results = yield* readResults(b.id)
          expect(results.filter((r) => r.status === "success"), b.id).toHaveLength(b.n)
        }
        console.log(`RECOVERY cluster totals: ${round} kills, ${batches.length} batches, ${scenarios} scenarios, lost ${scenarios - distinct}, duplicated ${stored - distinct}`)

        // Nothing processed stays in the work queue (acked messages that reappear after a
        // crash are deleted by the janitor).
        const left = async () => (await admin.jsm.streams.info(STREAM.pipeline)).state.messages
        yield* Effect.promise(() => until(async () => (await left()) === 0, "an empty TF_PIPELINE", 300_000))
      }).pipe(
        Effect.provide(
          systemTestLayer({
            actors: STAGE_ACTORS,
            nats: cluster.settings,
            settings: { dataRoot: root, execChunkSize: 3, ackWaitMs: ACK_WAIT_MS },
            topology: { ackWaitMs: ACK_WAIT_MS }
          })
        ),
        Effect.withConfigProvider(replicasFromEnv),
        Effect.ensuring(
          Effect.promise(async () => {
            await Promise.all(executors.map((c) => stopChild(c)))
            logFile?.end()
          })
        )
      )
    },
    600_000
  )

  it.scopedLive(
    "kvCreate on a replicated bucket: a create whose answer was lost is this call's own on the retry; a rival's key is not",
    () =>
      Effect.gen(function* () {
        const { kvm } = yield* Nats
        const kv = yield* Effect.promise(() => kvm.create("tf_test_create", { replicas: REPLICAS, history: 1 }))
        // The server is real; only the answer to the first create is lost on the way back (as
        // when a stream leader dies after storing the write), with or without the write stored.
        const firstAnswerLost = (real: KV, stored: boolean): KV => {
          let first = true
          return new Proxy(real, {
            get: (target, prop) => {
              if (prop === "create")
                return async (key: string, value: string) => {
                  if (!first) return target.create(key, value)
                  first = false
                  if (stored) await target.create(key, value)
                  throw new Error("TIMEOUT: the answer was lost")
                }
              const v = Reflect.get(target, prop, target) as unknown
              return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v
            }
          })
        }
        expect(yield* kvCreate(firstAnswerLost(kv, true), "mine", { by: "a", at: 1 })).toBe(true)
        expect(yield* kvCreate(kv, "fresh", { by: "a", at: 1 })).toBe(true)
        yield* Effect.promise(() => kv.create("theirs", JSON.stringify({ by: "b", at: 1 })))
        expect(yield* kvCreate(kv, "theirs", { by: "a", at: 1 })).toBe(false)
        expect(yield* kvCreate(firstAnswerLost(kv, false), "theirs", { by: "a", at: 1 })).toBe(false)
        expect((yield* Effect.promise(() => kv.get("theirs")))?.json()).toEqual({ by: "b", at: 1 })
      }).pipe(Effect.provide(Nats.Default.pipe(Layer.provide(cluster.settings)))),
    120_000
  )
})
