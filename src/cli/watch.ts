/**
 * `tickflow watch <batch>`: a live results table from any machine that reaches NATS. Ordered
 * consumer on `tf.res.<batch>.>`: replays what is there, then follows until the batch is done
 * (or forever with --follow).
 */
import { Effect, Fiber, Ref, Stream } from "effect"
import { BatchRecord, ScenarioResult, type MetricName } from "../schemas/results.js"
import { kvGet } from "../streams/bus.js"
import { BusError } from "../streams/errors.js"
import { Nats, settingsFromEnv } from "../streams/connection.js"
import { followDecoded } from "../streams/follow.js"
import { BUCKET, SUBJECT } from "../streams/topology.js"
import { Layer } from "effect"
import { waitForSignal } from "./system.js"
import { problemsList, resultsTable } from "./table.js"

export interface WatchOptions {
  readonly batchId: string
  readonly sort: MetricName
  readonly top: number
  readonly follow: boolean
}

/** Only the batch records: a viewer may read them, not manage the topology. */
const openBatches = Effect.flatMap(Nats, ({ kvm }) =>
  Effect.tryPromise({
    try: () => kvm.open(BUCKET.batches, { bindOnly: true }),
    catch: (cause) => new BusError({ op: `open KV ${BUCKET.batches} (is tickflow running on this server?)`, cause, transient: false })
  })
)

export const watchBatch = (opts: WatchOptions) =>
  Effect.gen(function* () {
    const bus = { batches: yield* openBatches }
    const results = yield* Ref.make(new Map<string, ScenarioResult>())
    const tty = process.stdout.isTTY === true
    const follower = yield* Effect.fork(
      followDecoded(SUBJECT.resultsOf(opts.batchId), ScenarioResult).pipe(
        Stream.runForEach((r) => Ref.update(results, (m) => new Map(m).set(r.scenario_id, r)))
      )
    )
    const render = (rec: BatchRecord | undefined, list: ScenarioResult[]) => {
      const head = rec
        ? `batch ${rec.batch_id} (${rec.batch_name}): ${rec.status} — ${list.length}/${rec.total} results, ${rec.counts.success} ok, ${rec.counts.skipped} skipped, ${rec.counts.failed} failed`
        : `batch ${opts.batchId}: ${list.length} results (no batch record yet)`
      return `${head}\n${resultsTable(list, opts.sort, opts.top)}`
    }
    const loop = Effect.gen(function* () {
      let last = ""
      for (;;) {
        const rec = (yield* kvGet(bus.batches, opts.batchId, BatchRecord))?.value
        const list = [...(yield* Ref.get(results)).values()]
        const screen = render(rec, list)
        if (tty && screen !== last) {
          process.stdout.write(`\x1b[2J\x1b[H${screen}\n`)
          last = screen
        }
        const finished = rec && (rec.status === "done" || rec.status === "failed") && list.length >= rec.total
        if (finished && !opts.follow) return { rec, list }
        yield* Effect.sleep("500 millis")
      }
    })
    const outcome = yield* loop.pipe(Effect.raceFirst(waitForSignal.pipe(Effect.as(undefined))))
    yield* Fiber.interrupt(follower)
    const list = [...(yield* Ref.get(results)).values()]
    const rec = outcome?.rec ?? (yield* kvGet(bus.batches, opts.batchId, BatchRecord))?.value
    if (!tty) console.log(render(rec, list))
    const problems = problemsList(list)
    if (problems) console.log(`\nnot run:\n${problems}`)
  }).pipe(Effect.provide(Nats.Default.pipe(Layer.provideMerge(settingsFromEnvRequired()))))

/** watch joins an existing system: without NATS_URL there is nothing to watch. */
const settingsFromEnvRequired = () => {
  if (!process.env.NATS_URL) throw new Error("watch needs NATS_URL (and NATS_USER/NATS_PASSWORD) pointing at the server the batch runs on")
  return settingsFromEnv()
}
