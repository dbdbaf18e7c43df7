/**
 * Sessions: how long an addition takes, on one embedded nats-server with every actor in this
 * process (the session actor included).
 *
 * - `session_add_p50_ms` (+ p95): add-symbol request → provisioned reply, the symbol's slice
 *   already cached (a second session adding symbols the first one provisioned).
 * - `session_add_cold_p50_ms` (+ p95): the same for symbols never loaded (the slice is read from
 *   the Parquet catalog, checked, stored in the object store).
 * - `session_add_first_result_p50_ms`: add request → the first result of the added symbol on
 *   `tf.res.<session>.>` (through all seven phases).
 * Peers measured in the same run: a bare request/reply round trip on the same server, and a
 * direct `loadSlice` of one symbol from the catalog (what a cold provision cannot beat).
 */
import { fmt, median, percentile, printResults, result, runBenchmark } from "./_support.js"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { generateCatalog, loadSlice } from "../src/data/index.js"
import { ACTOR_NAMES } from "../src/actors/index.js"
import { actorsOnEmbeddedServer } from "./_system.js"
import { sessionRequest } from "../src/cli/session.js"
import { Nats } from "../src/streams/connection.js"
import { STREAM, SUBJECT } from "../src/streams/topology.js"
import { LoggingLive } from "../src/logging.js"

const N = 20
const SYMBOLS = Array.from({ length: N + 1 }, (_, i) => `S${String(i).padStart(2, "0")}`)
const config = (id: string, symbols: string[]) => ({
  session_id: id,
  session_name: id,
  symbols,
  freqs: ["1d"],
  start_date: "2012-01-03",
  end_date: "2019-12-31",
  strategies: [{ id: "ema", strategy: "trend_baseline", params: { fast: 10, slow: 50 } }]
})

type Reply = Record<string, any>

const program = (root: string) =>
  Effect.gen(function* () {
    const { nc, js } = yield* Nats
    const ask = (session: string, body: unknown) => sessionRequest(SUBJECT.sessionCmd(session), body, { timeoutMs: 60_000 }) as Effect.Effect<Reply, unknown, Nats>
    // first result per (session, symbol): one live subscription per session
    const firstResult = new Map<string, number>()
    for (const session of ["cold", "warm"]) {
      const c = yield* Effect.promise(() => js.consumers.get(STREAM.results, { filter_subjects: SUBJECT.resultsOf(session) }))
      const messages = yield* Effect.promise(() => c.consume())
      void (async () => {
        for await (const m of messages) {
          const symbol = m.subject.split(".")[3].split("-")[0]
          const k = `${session}:${symbol}`
          if (!firstResult.has(k)) firstResult.set(k, Date.now())
        }
      })()
      yield* Effect.addFinalizer(() => Effect.promise(() => messages.close().catch(() => undefined)))
    }
    const started = yield* ask("cold", { op: "start", config: config("cold", [SYMBOLS[N]]) })
    if (started.ok !== true) return yield* Effect.die(new Error(`session start: ${JSON.stringify(started)}`))
    yield* ask("warm", { op: "start", config: config("warm", [SYMBOLS[N]]) })

    const measure = (session: string) =>
      Effect.gen(function* () {
        const add: number[] = []
        const first: number[] = []
        for (const symbol of SYMBOLS.slice(0, N)) {
          const t0 = Date.now()
          const r = yield* ask(session, { op: "add", symbol })
          add.push(Date.now() - t0)
          if (r.outcome !== "added") return yield* Effect.die(new Error(`add ${symbol}: ${JSON.stringify(r)}`))
          const deadline = Date.now() + 60_000
          while (!firstResult.has(`${session}:${symbol}`) && Date.now() < deadline) yield* Effect.sleep("2 millis")
          first.push((firstResult.get(`${session}:${symbol}`) ?? Number.NaN) - t0)
        }
        return { add, first }
      })
    const cold = yield* measure("cold")
    const warm = yield* measure("warm")

    // peers: a bare request/reply round trip, a direct catalog load of one slice
    const echo = nc.subscribe("bench.echo", { callback: (_e, m) => void m.respond(m.data) })
    const rtt: number[] = []
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now()
      yield* Effect.promise(() => nc.request("bench.echo", "x", { timeout: 5_000 }))
      rtt.push(performance.now() - t0)
    }
    echo.unsubscribe()
    const loads: number[] = []
    for (const symbol of SYMBOLS.slice(0, 10)) {
      const t0 = performance.now()
      yield* loadSlice(root, { symbol, freq: "1d", start: "2012-01-03", end: "2019-12-31", warmupBars: 50 })
      loads.push(performance.now() - t0)
    }
    console.log(`session adds: ${N} cold, ${N} cached; 1 scenario per symbol, 1d bars 2010-2019`)
    console.log(`  cold:   add p50 ${fmt(median(cold.add))} ms, p95 ${fmt(percentile(cold.add, 95))} ms; first result p50 ${fmt(median(cold.first))} ms`)
    console.log(`  cached: add p50 ${fmt(median(warm.add))} ms, p95 ${fmt(percentile(warm.add, 95))} ms; first result p50 ${fmt(median(warm.first))} ms`)
    console.log(`  peers:  request/reply round trip p50 ${fmt(median(rtt))} ms; direct loadSlice p50 ${fmt(median(loads))} ms`)
    result("session_add_p50_ms", median(warm.add), "250")
    result("session_add_p95_ms", percentile(warm.add, 95), "-")
    result("session_add_cold_p50_ms", median(cold.add), "250")
    result("session_add_cold_p95_ms", percentile(cold.add, 95), "-")
    result("session_add_first_result_p50_ms", median([...cold.first, ...warm.first]), "-")
    result("session_add_first_result_p95_ms", percentile([...cold.first, ...warm.first], 95), "-")
    result("session_peer_request_reply_p50_ms", median(rtt), "-")
    result("session_peer_load_slice_p50_ms", median(loads), "-")
  })

const main = Effect.gen(function* () {
  const root = mkdtempSync(join(tmpdir(), "tf-bench-session-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(root, { recursive: true, force: true })))
  yield* generateCatalog({ root, symbols: SYMBOLS, freqs: ["1d"], start: "2010-01-01", end: "2019-12-31", seed: 3 })
  yield* program(root).pipe(Effect.scoped, Effect.provide(actorsOnEmbeddedServer(ACTOR_NAMES, { dataRoot: root })))
})

runBenchmark(main.pipe(Effect.scoped, Effect.provide(LoggingLive), Effect.tap(() => Effect.sync(printResults))))
