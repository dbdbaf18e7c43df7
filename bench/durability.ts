/**
 * Durability benchmark: what acknowledged writes cost with the server's default fsync policy
 * and with `jetstream { sync_interval: always }` (fsync before every ack), side by side.
 *
 *  (a) JetStream publish to a file stream, 200 B payloads, awaited one at a time (the latency a
 *      single writer sees; fsync per write shows here first) and 256 in flight (throughput);
 *      on a server with the default policy, and on one started with `sync_interval: always`.
 *  (b) nats-server 2.9.10 does not know `sync_interval` (it refuses the config: "unknown field";
 *      its interval is fixed at 2 minutes). Then (a) cannot run with `always`, and the bench
 *      prints the refusal and, as the peer measure, the raw cost of an fsync per 200 B write on
 *      the same file system (write+fsync vs write), which is what `always` adds per message.
 *
 * Run: npx tsx bench/durability.ts   (or npm run bench -- durability)
 */
import { fmt, printResults, result, runBenchmark } from "./_support.js"
import { Effect, Layer } from "effect"
import { closeSync, fsyncSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { RetentionPolicy, StorageType } from "@nats-io/jetstream"
import { embeddedSettings, Nats } from "../src/streams/connection.js"
import { defaultNatsConf } from "../src/streams/embedded.js"
import { LoggingLive } from "../src/logging.js"

const N_SERIAL = Number(process.env.DUR_N_SERIAL ?? 3_000)
const N_WINDOW = Number(process.env.DUR_N_WINDOW ?? 20_000)
const IN_FLIGHT = 256
const N_FSYNC = Number(process.env.DUR_N_FSYNC ?? 2_000)
const payload = new TextEncoder().encode("x".repeat(200))

/** Publish rates (msgs/s) on the server `settings` points at. */
const publishRates = (label: string) =>
  Effect.gen(function* () {
    const { js, jsm } = yield* Nats
    yield* Effect.promise(() =>
      jsm.streams.add({ name: "BENCH_DUR", subjects: ["bench.dur.>"], retention: RetentionPolicy.Limits, storage: StorageType.File, num_replicas: 1 })
    )
    const serial = yield* Effect.promise(async () => {
      const t0 = performance.now()
      for (let i = 0; i < N_SERIAL; i++) await js.publish("bench.dur.s", payload)
      return N_SERIAL / ((performance.now() - t0) / 1000)
    })
    const windowed = yield* Effect.promise(async () => {
      const t0 = performance.now()
      let next = 0
      const worker = async () => {
        while (next < N_WINDOW) {
          next++
          await js.publish("bench.dur.w", payload)
        }
      }
      await Promise.all(Array.from({ length: IN_FLIGHT }, worker))
      return N_WINDOW / ((performance.now() - t0) / 1000)
    })
    console.log(`${label}: ${fmt(serial)} msgs/s one at a time, ${fmt(windowed)} msgs/s with ${IN_FLIGHT} in flight`)
    return { serial, windowed }
  })

const onServer = (config: string | undefined, label: string) =>
  publishRates(label).pipe(Effect.provide(Nats.Default.pipe(Layer.provideMerge(embeddedSettings(config ? { config } : {})))), Effect.scoped)

/** µs per 200 B append, with and without an fsync after each: the per-message cost of `always`. */
const fsyncCost = (dir: string) => {
  const run = (sync: boolean) => {
    const fd = openSync(join(dir, sync ? "sync.log" : "nosync.log"), "a")
    const t0 = performance.now()
    for (let i = 0; i < N_FSYNC; i++) {
      writeSync(fd, payload)
      if (sync) fsyncSync(fd)
    }
    const us = ((performance.now() - t0) * 1000) / N_FSYNC
    closeSync(fd)
    return us
  }
  return { plain: run(false), synced: run(true) }
}

const program = Effect.gen(function* () {
  const dir = mkdtempSync(join(tmpdir(), "tf-bench-dur-"))
  try {
    const base = yield* onServer(undefined, "default (fsync every 2 min)")
    result("durability_default_serial_msgs_per_s", base.serial, "peer")
    result("durability_default_window_msgs_per_s", base.windowed, "peer")
    // The same nats.conf with `sync_interval: always` in its jetstream block.
    const conf = join(dir, "nats-sync-always.conf")
    writeFileSync(conf, readFileSync(defaultNatsConf(), "utf8").replace(/jetstream\s*\{/, "jetstream {\n  sync_interval: always"))
    const always = yield* onServer(conf, "sync_interval: always").pipe(Effect.either)
    if (always._tag === "Right") {
      result("durability_always_serial_msgs_per_s", always.right.serial, "peer")
      result("durability_always_window_msgs_per_s", always.right.windowed, "peer")
      result("durability_always_serial_cost_ratio", always.right.serial / base.serial, ">= 0.5")
      result("durability_always_window_cost_ratio", always.right.windowed / base.windowed, ">= 0.5")
    } else {
      const output = String((always.left as { output?: string }).output ?? always.left)
      const why = /unknown field "sync_interval"/.test(output) ? "unknown field sync_interval (nats-server < 2.10)" : output.split("\n")[0]
      console.log(`sync_interval: always: the server refused the config: ${why}`)
      result("durability_sync_always_supported", 0, "1 (needs nats-server >= 2.10)")
    }
    const f = fsyncCost(dir)
    console.log(`200 B append: ${f.plain.toPrecision(3)} µs; with fsync: ${f.synced.toPrecision(3)} µs (${tmpdir()})`)
    result("durability_fsync_per_write_us", f.synced, "peer")
    result("durability_append_per_write_us", f.plain, "peer")
    // one writer at a time: what fsync per message would cap serial publishes at
    result("durability_fsync_serial_ceiling_msgs_per_s", 1e6 / f.synced, "peer")
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  printResults()
}).pipe(Effect.provide(LoggingLive))

runBenchmark(program)
