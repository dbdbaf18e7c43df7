/**
 * Bus benchmark: what the embedded nats-server and the client can move, the ceiling the pipeline
 * benchmark is compared against. One private server (`nats-server -c nats.conf`, embeddedNatsServer),
 * one admin connection with `noAsyncTraces: true` (Nats.Default), a work-queue stream of its own.
 *
 *  (a) raw JetStream async publish: 200 B payloads, ~2,000 in flight (a sliding window of
 *      `js.publish` promises), a Nats-Msg-Id per message — no Effect, no schema;
 *  (b) `consumer.consume()` + `m.ack()` on a durable pull consumer (raw), and, for the record,
 *      tickflow's `consume()` Stream (zod decode) + `Delivery.ack` (ackAck: waits for the server)
 *      in chunks with 256 acks in flight, as the reporter acks results;
 *  (c) the same publishes through tickflow's typed `publish` (zod-validated, Effect, retries),
 *      2,000 in flight (Effect.forEach concurrency) — its ratio to (a) in the same round; and
 *      both again at 256 in flight (what `publishResults` uses), for the record;
 *  (d) core NATS pub/sub (no JetStream) as a reference;
 *  (e) bulks of 250 messages (an execution chunk's results) through AckedPublisher (acks on one
 *      inbox subscription, one timer per bulk) against the same bulks as `js.publish` requests
 *      (Promise.all): messages/s and this process's CPU per message, both measured per round.
 * Rounds interleave (a), (c), (b) so noise on this shared 2-core machine hits them alike;
 * figures are medians of 3 rounds.
 *
 * Run: npx tsx bench/bus.ts   (or npm run bench -- bus)
 */
import { fmt, median, printResults, result, runBenchmark } from "./_support.js"
import { Duration, Effect, Layer, Stream } from "effect"
import { z } from "zod"
import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType } from "@nats-io/jetstream"
import { embeddedSettings, Nats } from "../src/streams/connection.js"
import { consume, publish } from "../src/streams/bus.js"
import { LoggingLive } from "../src/logging.js"

const ROUNDS = 3
const N_JS = Number(process.env.BUS_N ?? 40_000)
const N_CORE = Number(process.env.BUS_N_CORE ?? 400_000)
/** tickflow's consume + ackAck is two orders slower than raw consume + ack: fewer messages */
const N_TYPED_CONSUME = Number(process.env.BUS_N_TYPED_CONSUME ?? 8_000)
const IN_FLIGHT = 2_000
const STREAM_NAME = "BENCH_BUS"
const SUBJECT = "bench.bus.wq"
const DURABLE = "bench_bus"

/** A 200-byte JSON message and its schema (what a typed publish validates). */
const Msg = z.object({ id: z.string(), seq: z.number().int(), batch: z.string(), pad: z.string() })
type Msg = z.infer<typeof Msg>
const makeMsg = (round: number, i: number): Msg => {
  const base = { id: `r${round}-${i}`, seq: i, batch: "bench-bus", pad: "" }
  const len = JSON.stringify(base).length
  return { ...base, pad: "x".repeat(Math.max(0, 200 - len)) }
}
const encoder = new TextEncoder()

/** Sliding window: keep `inFlight` promises outstanding until `n` have been started and settled. */
const windowed = (n: number, inFlight: number, start: (i: number) => Promise<unknown>): Promise<void> =>
  new Promise((resolve, reject) => {
    let next = 0
    let done = 0
    let failed = false
    const launch = () => {
      const i = next++
      start(i).then(
        () => {
          done++
          if (done === n) resolve()
          else if (next < n) launch()
        },
        (e) => {
          if (!failed) {
            failed = true
            reject(e)
          }
        }
      )
    }
    for (let k = 0; k < Math.min(inFlight, n); k++) launch()
    if (n === 0) resolve()
  })

const timed = async (fn: () => Promise<unknown>): Promise<number> => {
  const t0 = performance.now()
  await fn()
  return (performance.now() - t0) / 1000
}

const program = Effect.gen(function* () {
  const { nc, js, jsm, publisher } = yield* Nats
  yield* Effect.promise(async () => {
    await jsm.streams.add({ name: STREAM_NAME, subjects: [SUBJECT], retention: RetentionPolicy.Workqueue, storage: StorageType.File })
    await jsm.consumers.add(STREAM_NAME, {
      durable_name: DURABLE,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      max_ack_pending: 20_000
    })
  })
  const sample = JSON.stringify(makeMsg(0, 0)).length
  console.log(`nats-server ${nc.info?.version ?? "?"}; ${N_JS.toLocaleString("en")} JetStream messages of ${sample} B per measurement, ${IN_FLIGHT} in flight; ${ROUNDS} rounds`)

  const rawPub: number[] = []
  const typedPub: number[] = []
  const rawPub256: number[] = []
  const typedPub256: number[] = []
  const rawCons: number[] = []
  const typedCons: number[] = []
  const core: number[] = []
  const bulkJs: Array<{ rate: number; cpuUs: number }> = []
  const bulkAcked: Array<{ rate: number; cpuUs: number }> = []
  const BULK = 250
  let seq = 0
  /** N_JS messages in bulks of BULK, one bulk after the other; rate and client CPU µs/message */
  const bulkPublish = (send: (payloads: Uint8Array[], ids: string[]) => Promise<unknown>) =>
    Effect.promise(async () => {
      const base = seq
      seq += N_JS
      const payloads = Array.from({ length: N_JS }, (_, i) => encoder.encode(JSON.stringify(makeMsg(0, base + i))))
      const ids = payloads.map((_, i) => `bulk:${base + i}`)
      const cpu0 = process.cpuUsage()
      const t0 = performance.now()
      for (let i = 0; i < N_JS; i += BULK) await send(payloads.slice(i, i + BULK), ids.slice(i, i + BULK))
      const s = (performance.now() - t0) / 1000
      const cpu = process.cpuUsage(cpu0)
      return { rate: N_JS / s, cpuUs: (cpu.user + cpu.system) / N_JS }
    })
  const typedPublish = (inFlight: number) =>
    Effect.gen(function* () {
      const msgs = Array.from({ length: N_JS }, () => makeMsg(0, seq++))
      const t0 = performance.now()
      yield* Effect.forEach(msgs, (m) => publish(SUBJECT, Msg, m, { msgId: `typed:${m.seq}` }), { concurrency: inFlight, discard: true })
      return N_JS / ((performance.now() - t0) / 1000)
    })
  const rawPublishAt = (inFlight: number) =>
    Effect.promise(() => {
      // payloads built up front: (a) measures the client and server, not JSON.stringify
      const base = seq
      seq += N_JS
      const payloads = Array.from({ length: N_JS }, (_, i) => encoder.encode(JSON.stringify(makeMsg(0, base + i))))
      return timed(() => windowed(N_JS, inFlight, (i) => js.publish(SUBJECT, payloads[i], { msgID: `raw:${base + i}` })))
    }).pipe(Effect.map((s) => N_JS / s))

  for (let round = 0; round < ROUNDS; round++) {
    yield* Effect.promise(() => jsm.streams.purge(STREAM_NAME))
    // (a) raw js.publish and (c) typed publish, each at 2,000 and at 256 in flight
    const a = yield* rawPublishAt(IN_FLIGHT)
    const c = yield* typedPublish(IN_FLIGHT)
    const a256 = yield* rawPublishAt(256)
    const c256 = yield* typedPublish(256)
    // (e) bulks: js.publish requests vs AckedPublisher, alternating
    yield* Effect.promise(() => jsm.streams.purge(STREAM_NAME))
    const ej = yield* bulkPublish((p, ids) => Promise.all(p.map((payload, k) => js.publish(SUBJECT, payload, { msgID: ids[k] }))))
    const ea = yield* bulkPublish(async (p, ids) => {
      const outcomes = await publisher.publishAll(p.map((payload, k) => ({ subject: SUBJECT, payload, msgId: ids[k] })), 10_000)
      if (outcomes.some((o) => !o.ok)) throw new Error("a bulk message was not acknowledged")
    })
    bulkJs.push(ej)
    bulkAcked.push(ea)
    rawPub.push(a)
    typedPub.push(c)
    rawPub256.push(a256)
    typedPub256.push(c256)

    // (b) raw consume() + ack of N_JS messages (4 N_JS are queued)
    const b = yield* Effect.promise(async () => {
      const consumer = await js.consumers.get(STREAM_NAME, DURABLE)
      const t = performance.now()
      const messages = await consumer.consume({ max_messages: 1_000 })
      let n = 0
      for await (const m of messages) {
        m.ack()
        if (++n === N_JS) break
      }
      await nc.flush() // every ack has reached the server
      const s = (performance.now() - t) / 1000
      await messages.close()
      return N_JS / s
    })
    rawCons.push(b)
    // ... and tickflow's consume() Stream, acked as the reporter acks: chunks, ackAck 256 at a time
    const t1 = performance.now()
    yield* consume(DURABLE, Msg, { stream: STREAM_NAME, maxMessages: 2_000 }).pipe(
      Stream.take(N_TYPED_CONSUME),
      Stream.groupedWithin(2_000, Duration.millis(100)),
      Stream.mapEffect((chunk) =>
        Effect.forEach(chunk, (d) => (d.decoded._tag === "Right" ? d.ack : Effect.die("undecodable")), { concurrency: 256, discard: true })
      ),
      Stream.runDrain
    )
    const bt = N_TYPED_CONSUME / ((performance.now() - t1) / 1000)
    typedCons.push(bt)

    // (d) core pub/sub: one subscriber, same connection; count until all arrived
    const d = yield* Effect.promise(
      () =>
        new Promise<number>((resolve) => {
          const payload = encoder.encode(JSON.stringify(makeMsg(round, 0)))
          let got = 0
          let t = 0
          const sub = nc.subscribe("bench.core", {
            callback: () => {
              if (++got === N_CORE) {
                sub.unsubscribe()
                resolve((performance.now() - t) / 1000)
              }
            }
          })
          void nc.flush().then(async () => {
            t = performance.now()
            for (let i = 0; i < N_CORE; i++) {
              nc.publish("bench.core", payload)
              // let the socket drain now and then so the client's outbound buffer stays bounded
              if (i % 20_000 === 19_999) await new Promise((r) => setImmediate(r))
            }
          })
        })
    )
    core.push(N_CORE / d)
    console.log(
      `round ${round + 1}: publish raw ${fmt(a)}/s typed ${fmt(c)}/s (${(c / a).toFixed(2)}x) | at 256 in flight raw ${fmt(a256)}/s typed ${fmt(c256)}/s (${(c256 / a256).toFixed(2)}x) | ` +
        `consume+ack ${fmt(b)}/s, tickflow consume+ackAck ${fmt(bt)}/s | core ${fmt(N_CORE / d)}/s | ` +
        `bulks of ${BULK}: js.publish ${fmt(bulkJs[round].rate)}/s (${bulkJs[round].cpuUs.toFixed(0)} µs CPU each), AckedPublisher ${fmt(bulkAcked[round].rate)}/s (${bulkAcked[round].cpuUs.toFixed(0)} µs)`
    )
  }

  const ratios = rawPub.map((r, i) => typedPub[i] / r)
  console.log("")
  console.log(`(a) JetStream async publish (raw js.publish, msgID, ${IN_FLIGHT} in flight): median ${fmt(median(rawPub))} msgs/s  [NATS.md: ~24k]`)
  console.log(`(b) consume() + ack, durable pull consumer:                      median ${fmt(median(rawCons))} msgs/s  [NATS.md: ~87k]`)
  console.log(`    tickflow consume() (zod decode) + Delivery.ack (ackAck, reporter-style 256 at a time): median ${fmt(median(typedCons))} msgs/s (${(median(typedCons) / median(rawCons)).toFixed(2)}x raw consume+ack)`)
  console.log(`(c) tickflow typed publish (zod + Effect + retry):               median ${fmt(median(typedPub))} msgs/s = ${median(ratios).toFixed(2)}x raw (per-round ratios ${ratios.map((r) => r.toFixed(2)).join(", ")})`)
  const ratios256 = rawPub256.map((r, i) => typedPub256[i] / r)
  console.log(`    at 256 in flight (what publishResults uses): raw ${fmt(median(rawPub256))}/s, typed ${fmt(median(typedPub256))}/s = ${median(ratios256).toFixed(2)}x`)
  console.log(`(d) core pub/sub (reference):                                    median ${fmt(median(core))} msgs/s  [NATS.md: ~600k]`)
  console.log(`    one JetStream publish costs ~${(1e6 / median(rawPub)).toFixed(0)} µs of client+server time, a consume+ack ~${(1e6 / median(rawCons)).toFixed(0)} µs`)
  result("bus_js_publish_per_s", Math.round(median(rawPub)), 20000)
  result("bus_consume_ack_per_s", Math.round(median(rawCons)), 50000)
  result("bus_typed_vs_raw_publish", Number(median(ratios).toFixed(2)), 0.7)
  const bulkRate = median(bulkAcked.map((x, i) => x.rate / bulkJs[i].rate))
  const bulkCpu = median(bulkAcked.map((x, i) => x.cpuUs / bulkJs[i].cpuUs))
  console.log(
    `(e) bulks of ${BULK}: AckedPublisher ${fmt(median(bulkAcked.map((x) => x.rate)))}/s, ${median(bulkAcked.map((x) => x.cpuUs)).toFixed(0)} µs client CPU a message; ` +
      `js.publish ${fmt(median(bulkJs.map((x) => x.rate)))}/s, ${median(bulkJs.map((x) => x.cpuUs)).toFixed(0)} µs (medians of per-round ratios: ${bulkRate.toFixed(2)}× the rate, ${bulkCpu.toFixed(2)}× the CPU)`
  )
  result("bus_acked_bulk_vs_js_publish_rate", Number(bulkRate.toFixed(2)), 1)
  result("bus_acked_bulk_vs_js_publish_cpu", Number(bulkCpu.toFixed(2)), "< 1")
})

runBenchmark(
  program.pipe(
    Effect.provide(Nats.Default.pipe(Layer.provideMerge(embeddedSettings()))),
    Effect.provide(LoggingLive),
    Effect.scoped,
    Effect.tap(() => Effect.sync(printResults))
  )
)
