/**
 * Sessions on a real nats-server: the session actor runs as its own process
 * (`tickflow actors --only session`), the rest of the pipeline in this process. Additions go
 * through analyze → validate → provision → the pipeline; the process holding the session is
 * SIGKILLed and a successor takes over by lease with the state from KV.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, type Scope } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { generateCatalog } from "../src/data/index.js"
import { rsi } from "../src/engine/indicators.js"
import { Bus, kvGet } from "../src/streams/bus.js"
import { childEnv, Nats, NatsSettings } from "../src/streams/connection.js"
import { BUCKET, STREAM, SUBJECT } from "../src/streams/topology.js"
import { CLI_MAIN, TSX_LOADER } from "../src/cli/system.js"
import { sessionRequest } from "../src/cli/session.js"
import { BatchRecord } from "../src/schemas/results.js"
import { fetchSlice } from "../src/actors/slices.js"
import type { ActorMetrics, SliceCache } from "../src/actors/process-state.js"
import { systemTestLayer } from "./support/system.js"
import { publishFixture } from "./support/strategies.js"
import { replayAll } from "../src/streams/replay.js"

const PIPELINE = ["coordinator", "availability", "requirements", "loader", "quality", "executor", "reporter"] as const
const LEASE_MS = 1_500

const startSessionActor = (env: Record<string, string>, root: string): ChildProcess =>
  spawn(process.execPath, ["--import", TSX_LOADER, CLI_MAIN, "actors", "--only", "session", "--data-root", root], {
    stdio: ["ignore", "ignore", process.env.TICKFLOW_TEST_CHILD_LOGS ? "inherit" : "ignore"],
    env: { ...process.env, ...env, TICKFLOW_SESSION_LEASE_MS: String(LEASE_MS), TICKFLOW_LOG_LEVEL: process.env.TICKFLOW_TEST_CHILD_LOGS ? "info" : "warn" }
  })

const exited = (c: ChildProcess) => new Promise<void>((res) => (c.exitCode !== null || c.signalCode !== null ? res() : c.once("exit", () => res())))

const withSessionProcess = <A>(opts: { ticks?: boolean }, body: (ctx: { root: string; start: () => ChildProcess }) => Effect.Effect<A, unknown, NatsSettings | Nats | Bus | SliceCache | ActorMetrics | Scope.Scope>) => {
  const root = mkdtempSync(join(tmpdir(), "tf-session-"))
  const children: ChildProcess[] = []
  return Effect.gen(function* () {
    yield* generateCatalog({ root, symbols: ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"], freqs: ["1d"], start: "2016-01-01", end: "2019-12-31", seed: 7 })
    if (opts.ticks) yield* generateCatalog({ root, symbols: ["TCK"], freqs: ["tick"], start: "2020-03-02", end: "2020-03-06", seed: 7, ticksPerMinute: 2 })
    const env = childEnv(yield* NatsSettings)
    return yield* body({
      root,
      start: () => {
        const c = startSessionActor(env, root)
        children.push(c)
        return c
      }
    })
  }).pipe(
    Effect.provide(systemTestLayer({ actors: PIPELINE, settings: { dataRoot: root, execChunkSize: 4 } })),
    Effect.ensuring(
      Effect.promise(async () => {
        for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
        await Promise.all(children.map(exited))
        rmSync(root, { recursive: true, force: true })
      })
    )
  )
}

type Reply = Record<string, any>
const cmd = (session: string, body: unknown) => sessionRequest(SUBJECT.sessionCmd(session), body, { timeoutMs: 60_000, retryForMs: 60_000 }) as Effect.Effect<Reply, unknown, Nats>

/** Every result of the session's batch as it arrives, by scenario id (one live subscription). */
const followResults = (session: string) =>
  Effect.gen(function* () {
    const { js } = yield* Nats
    const seen = new Map<string, string>()
    const c = yield* Effect.promise(() => js.consumers.get(STREAM.results, { filter_subjects: SUBJECT.resultsOf(session) }))
    const messages = yield* Effect.promise(() => c.consume())
    void (async () => {
      for await (const m of messages) {
        const r = m.json<{ scenario_id: string; status: string }>()
        seen.set(r.scenario_id, r.status)
      }
    })()
    yield* Effect.addFinalizer(() => Effect.promise(() => messages.close().catch(() => undefined)))
    return seen
  })

const waitUntil = (what: string, f: () => boolean, timeoutMs = 90_000) =>
  Effect.gen(function* () {
    const deadline = Date.now() + timeoutMs
    while (!f()) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting for ${what}`))
      yield* Effect.sleep("100 millis")
    }
  })

const config = (id: string, symbols: string[]) => ({
  session_id: id,
  session_name: id,
  symbols,
  freqs: ["1d"],
  start_date: "2017-01-02",
  end_date: "2019-12-31",
  start_capital: 100_000,
  strategies: [{ id: "ema", strategy: "trend_baseline", grid: { fast: [5, 10, 15, 20], slow: [100, 150] } }]
})
const PER_SYMBOL = 8

describe("sessions", () => {
  it.scopedLive(
    "start with three symbols, add mid-flight (valid, no data, adhoc → full, duplicate), survive a SIGKILL of the session process",
    () =>
      withSessionProcess({}, ({ start }) =>
        Effect.gen(function* () {
          let actor = start()
          const results = yield* followResults("ses1")
          const started = yield* cmd("ses1", { op: "start", config: config("ses1", ["AAA", "BBB", "CCC"]) })
          expect(started.ok, JSON.stringify(started)).toBe(true)
          expect(started.outcome).toBe("started")
          expect(started.additions.map((a: Reply) => a.outcome)).toEqual(["added", "added", "added"])
          for (const a of started.additions) expect(a.validation).toMatchObject({ can_proceed: true, data_source_available: true, intervals_supported: true, has_historical_data: true, meets_config_requirements: true })

          // While the first runs execute: one valid symbol, one without data.
          const [valid, missing] = yield* Effect.all([cmd("ses1", { op: "add", symbol: "DDD" }), cmd("ses1", { op: "add", symbol: "ZZZ" })], { concurrency: 2 })
          expect(valid).toMatchObject({ ok: true, outcome: "added", scenarios: PER_SYMBOL, symbol: { symbol: "DDD", added_by: "config", status: "active", upgraded_from_adhoc: false } })
          expect(valid.provisioned.length).toBeGreaterThan(0)
          expect(missing).toMatchObject({ ok: true, outcome: "rejected", validation: { can_proceed: false, data_source_available: false, has_historical_data: false } })
          expect(missing.reason).toMatch(/ZZZ/)
          yield* waitUntil("DDD results on the session's subscription", () => [...results.keys()].filter((k) => k.startsWith("DDD-")).length === PER_SYMBOL)
          expect([...results.entries()].filter(([k]) => k.startsWith("DDD-")).every(([, s]) => s === "success")).toBe(true)

          // Adhoc, then a full addition upgrading it; indicator computed on the provisioned slice.
          const adhoc = yield* cmd("ses1", { op: "add", symbol: "EEE", adhoc: true, indicators: ["rsi:14"] })
          expect(adhoc).toMatchObject({ outcome: "added", scenarios: 0, symbol: { added_by: "adhoc", adhoc: true, auto_provisioned: true, upgraded_from_adhoc: false } })
          const full = yield* cmd("ses1", { op: "add", symbol: "EEE" })
          expect(full).toMatchObject({ outcome: "upgraded", scenarios: PER_SYMBOL, symbol: { adhoc: false, upgraded_from_adhoc: true, added_by: "config" } })
          // RSI: an independent computation on the same slice (plain Wilder RSI written here).
          const ind = full.symbol.indicator_values[0]
          expect(ind.spec).toBe("rsi:14")
          const slice = full.symbol.slices.sort((a: Reply, b: Reply) => b.warmup_bars - a.warmup_bars)[0]
          const series = yield* fetchSlice({ symbol: "EEE", key: slice.key, rows: slice.rows, warmup_rows: 0, resampled_from_ticks: false, bytes: 0 })
          const closes = Array.from(series.close)
          let gain = 0
          let loss = 0
          for (let i = 1; i <= 14; i++) {
            const d = closes[i] - closes[i - 1]
            gain += Math.max(d, 0)
            loss += Math.max(-d, 0)
          }
          gain /= 14
          loss /= 14
          for (let i = 15; i < closes.length; i++) {
            const d = closes[i] - closes[i - 1]
            gain = (gain * 13 + Math.max(d, 0)) / 14
            loss = (loss * 13 + Math.max(-d, 0)) / 14
          }
          const oracle = loss === 0 ? 100 : 100 - 100 / (1 + gain / loss)
          expect(ind.tail.at(-1).value).toBeCloseTo(oracle, 6)
          expect(ind.tail.at(-1).value).toBeCloseTo(rsi(series.close, 14).at(-1)!, 9)

          const dup = yield* cmd("ses1", { op: "add", symbol: "DDD" })
          expect(dup.outcome).toBe("duplicate")
          expect(dup.message).toMatch(/already in session ses1/)

          // Kill the process holding the session; a successor takes over and goes on.
          actor.kill("SIGKILL")
          yield* Effect.promise(() => exited(actor))
          actor = start()
          const shown = yield* cmd("ses1", { op: "show" })
          expect(shown.session.status).toBe("running")
          expect(shown.session.owner_token).toBeUndefined()
          expect(shown.session.symbols.ZZZ).toMatchObject({ status: "failed" })
          expect(shown.session.symbols.ZZZ.reason).toMatch(/ZZZ/)
          expect(shown.session.symbols.EEE).toMatchObject({ status: "active", upgraded_from_adhoc: true })
          expect(Object.keys(shown.session.symbols).sort()).toEqual(["AAA", "BBB", "CCC", "DDD", "EEE", "ZZZ"])
          const after = yield* cmd("ses1", { op: "add", symbol: "FFF" })
          expect(after).toMatchObject({ outcome: "added", scenarios: PER_SYMBOL })
          const again = yield* cmd("ses1", { op: "add", symbol: "AAA" })
          expect(again.outcome).toBe("duplicate")

          // Every submitted scenario's result arrives on the one subscription; the batch record counts them.
          const total = PER_SYMBOL * 6
          yield* waitUntil(`${total} results`, () => results.size === total, 120_000)
          expect([...results.values()].every((s) => s === "success")).toBe(true)
          const bus = yield* Bus
          let recordDone = false
          const deadline = Date.now() + 60_000
          while (!recordDone && Date.now() < deadline) {
            const rec = yield* kvGet(bus.batches, "ses1", BatchRecord)
            recordDone = rec?.value.total === total && rec.value.counts.success === total
            if (!recordDone) yield* Effect.sleep("200 millis")
          }
          expect(recordDone).toBe(true)
          const exported = yield* cmd("ses1", { op: "export" })
          expect(exported.export.symbols.FFF.scenarios).toBe(PER_SYMBOL)
        })
      ),
    240_000
  )

  it.scopedLive(
    "a session whose every symbol fails ends, saying why",
    () =>
      withSessionProcess({}, ({ start }) =>
        Effect.gen(function* () {
          start()
          const r = yield* cmd("ses2", { op: "start", config: config("ses2", ["NOPE1", "NOPE2"]) })
          expect(r.ok).toBe(true)
          expect(r.additions.map((a: Reply) => a.outcome)).toEqual(["rejected", "rejected"])
          expect(r.session.status).toBe("failed")
          expect(r.session.reason).toMatch(/every symbol failed: NOPE1: .*NOPE1.*; NOPE2: .*NOPE2/)
          const later = yield* cmd("ses2", { op: "add", symbol: "AAA" })
          expect(later).toMatchObject({ ok: false, outcome: "session_ended" })
          const bad = yield* cmd("ses3", { op: "start", config: { ...config("ses3", ["AAA"]), strategies: [{ strategy: "no_such_strategy" }] } })
          expect(bad.ok).toBe(false)
          expect(bad.error).toMatch(/no_such_strategy/)
          // the owner read its lease and the sessions (at least once each): no consumer left behind
          const { jsm } = yield* Nats
          const left = yield* Effect.promise(() => jsm.consumers.list(`KV_${BUCKET.sessions}`).next())
          expect(left.map((c) => c.name)).toEqual([])
        })
      ),
    120_000
  )

  it.scopedLive(
    "a symbol whose runs all fail in execution goes from active to failed with the reason; the session ends when every symbol failed",
    () =>
      withSessionProcess({}, ({ start }) =>
        Effect.gen(function* () {
          start()
          const throwing = yield* publishFixture("throwing-strategy.ts")
          const cfg = { ...config("ses5", ["AAA", "BBB"]), strategies: [{ id: "thr", strategy: throwing, grid: { after: [5, 20] } }] }
          const r = yield* cmd("ses5", { op: "start", config: cfg })
          expect(r.ok, JSON.stringify(r)).toBe(true)
          // validated and provisioned: the symbols start active, their runs are submitted
          expect(r.additions.map((a: Reply) => [a.outcome, a.symbol.status])).toEqual([["added", "active"], ["added", "active"]])
          let shown: Reply = {}
          const deadline = Date.now() + 90_000
          while (Date.now() < deadline) {
            shown = yield* cmd("ses5", { op: "show" })
            if (shown.session.status === "failed") break
            yield* Effect.sleep("200 millis")
          }
          for (const sym of ["AAA", "BBB"]) {
            expect(shown.session.symbols[sym].status).toBe("failed")
            expect(shown.session.symbols[sym].reason).toMatch(new RegExp(`every run of ${sym} ended without success \\(2 runs\\); first failure in execution: .*deliberate failure at bar`))
          }
          expect(shown.session.status).toBe("failed")
          expect(shown.session.reason).toMatch(/every symbol failed: AAA: every run of AAA .*; BBB: every run of BBB/)
          const events = (yield* replayAll(SUBJECT.sessionEvt("ses5"), { stream: STREAM.sessions })).map((m) => m.json<{ kind: string; data: Reply }>())
          expect(events.filter((e) => e.kind === "symbol_failed").map((e) => [e.data.symbol, e.data.phase, e.data.runs]).sort()).toEqual([["AAA", "execution", 2], ["BBB", "execution", 2]])
          expect(events.some((e) => e.kind === "session_failed")).toBe(true)
        })
      ),
    120_000
  )

  it.scopedLive(
    "a bar interval for a symbol with ticks only: provisioned by resampling, the strategies run on it, the indicator computed",
    () =>
      withSessionProcess({ ticks: true }, ({ start }) =>
        Effect.gen(function* () {
          start()
          const results = yield* followResults("ses4")
          const cfg = { ...config("ses4", []), start_date: "2020-03-03", end_date: "2020-03-06", strategies: [{ id: "ema", strategy: "trend_baseline", params: { fast: 5, slow: 20 } }] }
          const r = yield* cmd("ses4", { op: "start", config: cfg })
          expect(r.ok, JSON.stringify(r)).toBe(true)
          const add = yield* cmd("ses4", { op: "add", symbol: "TCK", interval: "5min", indicators: ["rsi:14"] })
          expect(add, JSON.stringify(add)).toMatchObject({ ok: true, outcome: "added", scenarios: 1, validation: { can_proceed: true, intervals_supported: true } })
          expect(add.provisioned.every((p: Reply) => p.freq === "5min" && p.resampled_from_ticks === true)).toBe(true)
          expect(add.symbol.intervals).toEqual(["5min"])
          expect(add.symbol.indicator_values[0]).toMatchObject({ spec: "rsi:14", freq: "5min" })
          yield* waitUntil("the 5min result", () => results.has("TCK-5min-ema"))
          expect(results.get("TCK-5min-ema")).toBe("success")
          // the same symbol at 1min too: an extension, not a duplicate
          const more = yield* cmd("ses4", { op: "add", symbol: "TCK", interval: "1min" })
          expect(more).toMatchObject({ outcome: "extended", scenarios: 1 })
          expect(more.symbol.intervals).toEqual(["5min", "1min"])
        })
      ),
    120_000
  )
})
