/**
 * How fast the coordinator refuses a batch far over the limits (a ~1 KB message asking for
 * 1,000,000 scenarios), and what it costs in memory, against a peer measured in the same run:
 * the refusal of a tiny invalid submission (a schema error), which does no counting at all.
 * Time = publish → rejection stored in tf_rejections, median of 7.
 */
import { Effect } from "effect"
import { connect } from "@nats-io/transport-node"
import { actorsOnEmbeddedServer } from "./_system.js"
import { Nats, NatsSettings } from "../src/streams/connection.js"
import { REJECTION_BUCKET } from "../src/security/rejections.js"
import { fmt, gc, median, printResults, result, runBenchmark } from "./_support.js"

const base = { strategy: "trend_baseline", freq: "1d", start_date: "2017-01-03", end_date: "2019-12-31", universe: ["AAA"], start_capital: 10_000 }
const axis = { from: 1, to: 100, step: 1 }
const huge = (i: number) => ({ kind: "batch", batch_id: `huge${i}`, config: { batch_name: "huge", defaults: base, sweep: { id: "g", grid: { a: axis, b: axis, c: axis } } } })
const tiny = (i: number) => ({ ...base, batch_id: `tiny${i}`, scenario_id: "s", start_capital: "lots" })

const program = Effect.gen(function* () {
  const settings = yield* NatsSettings
  const { kvm } = yield* Nats
  const c = settings.embedded!.credentials.submitter
  const nc = yield* Effect.acquireRelease(
    Effect.promise(() => connect({ servers: settings.servers, user: c.user, pass: c.pass })),
    (n) => Effect.promise(() => n.close())
  )
  const kv = yield* Effect.promise(() => kvm.open(REJECTION_BUCKET))
  const refusal = (body: unknown) =>
    Effect.promise(async () => {
      const t0 = performance.now()
      const ack = await nc.request("tf.submit", JSON.stringify(body), { timeout: 10_000 })
      const seq = (ack.json() as { seq: number }).seq
      for (;;) {
        const e = await kv.get(String(seq))
        if (e && e.operation === "PUT") return performance.now() - t0
        await new Promise((r) => setTimeout(r, 2))
      }
    })
  const hugeMs: number[] = []
  const tinyMs: number[] = []
  gc()
  const heap0 = process.memoryUsage().heapUsed
  let heapMax = heap0
  for (let i = 0; i < 7; i++) {
    tinyMs.push(yield* refusal(tiny(i)))
    hugeMs.push(yield* refusal(huge(i)))
    heapMax = Math.max(heapMax, process.memoryUsage().heapUsed)
  }
  const growthMb = (heapMax - heap0) / 1024 / 1024
  console.log(`message ${JSON.stringify(huge(0)).length} bytes for 1,000,000 scenarios`)
  console.log(`refusal of the 1,000,000-scenario batch: median ${fmt(median(hugeMs))} ms; of a tiny invalid scenario: ${fmt(median(tinyMs))} ms`)
  console.log(`heap growth during 14 refusals (coordinator in this process): ${fmt(growthMb)} MB`)
  result("security_oversize_refusal_ms", median(hugeMs), "< 1000")
  result("security_oversize_vs_tiny_refusal", median(hugeMs) / median(tinyMs), "< 3")
  result("security_oversize_heap_growth_mb", growthMb, "< 50")
  printResults()
}).pipe(
  Effect.scoped,
  Effect.provide(actorsOnEmbeddedServer(["coordinator"]))
)

runBenchmark(program)
