/**
 * Scanner jobs through the pipeline on a real nats-server, with the scanning engine's acceptance
 * table: 3 symbols → 3 results, no errors; 4 symbols → progress (1,4) … (4,4); the second symbol
 * failing → the first and third answered, the second with its error, the job completes; 5
 * symbols → the summary (processed, errors, matches, total time) in the record and the log line.
 * Matches are checked against the same formula computed here, in plain code, on the real SPX
 * series. The jobs run with one group for all their symbols (scanGroups: 1), so a bad symbol
 * shares its group with good ones. `--add-to` adds exactly the matching symbols to a session.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { catalogRelPath, ensureSampleCatalog, generateCatalog, loadSlice } from "../src/data/index.js"
import { readFile, writeFile } from "node:fs/promises"
import { dayEndMs, dayStartMs } from "../src/schemas/common.js"
import { publishRaw } from "../src/streams/bus.js"
import { SUBJECT } from "../src/streams/topology.js"
import { replayAll } from "../src/streams/replay.js"
import { openRejectionBucket, rejectionOf } from "../src/security/rejections.js"
import { groupScan, scanGroupSize } from "../src/actors/coordinator.js"
import { addMatchesToSession, checkSession, matchingSymbols, scanJob } from "../src/cli/scan.js"
import { sessionRequest } from "../src/cli/session.js"
import type { Scenario } from "../src/schemas/batch.js"
import { systemTestLayer } from "./support/system.js"
import { runChild } from "./support/child.js"
import { resolve } from "node:path"

const PIPELINE = ["coordinator", "availability", "requirements", "loader", "quality", "executor", "reporter"] as const
const FORMULA = "close < sma(close, 50) and rsi(close, 14) < 30"
const START = "2005-01-03"
const END = "2019-12-31"

/** Closes of a symbol over the whole catalog, read from its Parquet files (no pipeline). */
const closesOf = (root: string, symbol: string, start: string, end: string) =>
  loadSlice(root, { symbol, freq: "1d", start, end, warmupBars: 0 }).pipe(Effect.map((l) => l.series))

/**
 * The oracle: the formula written out in plain code over the symbol's own window (the formula's
 * lookback — 50 rows — before the first row of the start date, through the end date): SMA as a
 * mean of the last 50 closes, RSI with Wilder's smoothing seeded by the mean of the first 14
 * changes.
 */
const oracle = (ts: Float64Array, close: Float64Array, lookback: number) => {
  let first = 0
  while (first < ts.length && ts[first] < dayStartMs(START)) first++
  let end = first
  while (end < ts.length && ts[end] < dayEndMs(END)) end++
  const from = Math.max(0, first - lookback)
  const c = Array.from(close.subarray(from, end))
  const out: Array<{ ts: number; sma: number; rsi: number }> = []
  let avgGain = 0
  let avgLoss = 0
  for (let i = 1; i < c.length; i++) {
    const change = c[i] - c[i - 1]
    const gain = Math.max(change, 0)
    const loss = Math.max(-change, 0)
    if (i <= 14) {
      avgGain += gain / 14
      avgLoss += loss / 14
    } else {
      avgGain = (avgGain * 13 + gain) / 14
      avgLoss = (avgLoss * 13 + loss) / 14
    }
    if (i < 14 || i < 49) continue
    let sum = 0
    for (let j = i - 49; j <= i; j++) sum += c[j]
    const sma = sum / 50
    const rsi = avgLoss === 0 ? (avgGain === 0 ? 50 : 100) : 100 - 100 / (1 + avgGain / avgLoss)
    if (from + i >= first && c[i] < sma && rsi < 30) out.push({ ts: ts[from + i], sma, rsi })
  }
  return out
}

describe("scan jobs (pure parts)", () => {
  it("groups of about S / scanGroups symbols, every symbol once, each item reading its own", () => {
    expect(scanGroupSize(500, 8)).toBe(63)
    expect(scanGroupSize(4, 8)).toBe(1)
    expect(scanGroupSize(5, 1)).toBe(5)
    const scenarios = ["A", "B", "C", "D", "E"].map(
      (s) => ({ v: 1, batch_id: "j", scenario_id: s, strategy: "scan", params: { formula: "close > 1" }, strict: true, freq: "1d", start_date: START, end_date: END, universe: [s], start_capital: 1, costs: { commission_bps: 0, spread_w: 0, impact_w: 0, slippage_bps: 0 }, batch_seed: 0 }) as Scenario
    )
    const groups = groupScan(scenarios, "s1", 2)
    expect(groups.map((g) => g.slice.universe)).toEqual([["A", "B", "C"], ["D", "E"]])
    expect(groups.flatMap((g) => g.items.map((it) => it.scenario.universe))).toEqual([["A"], ["B"], ["C"], ["D"], ["E"]])
    expect(new Set(groups.map((g) => g.group_id)).size).toBe(2)
  })
})

describe("scan jobs through the pipeline", () => {
  it.scopedLive(
    "acceptance table: 3 results; progress (1,4)…(4,4); a failing second symbol; the summary of 5; matches equal the formula computed here on SPX",
    () => {
      const root = mkdtempSync(join(tmpdir(), "tf-scan-"))
      const logged: Array<{ message: string; annotations: Record<string, unknown> }> = []
      const capture = Logger.make(({ message, annotations }) => {
        const text = (Array.isArray(message) ? message : [message]).map(String).join(" ")
        if (text.includes("Phase 7")) logged.push({ message: text, annotations: Object.fromEntries(annotations) })
      })
      return Effect.gen(function* () {
        yield* ensureSampleCatalog(root)
        // three more symbols, BBB's 2016 file truncated: outside the scanned dates (availability
        // passes) but inside a long formula's warm-up (the loader fails it)
        // and DDD with a month missing in the scanned dates (a quality error in strict mode)
        yield* generateCatalog({ root, symbols: ["AAA", "BBB", "CCC", "DDD"], freqs: ["1d"], start: "2014-01-01", end: "2019-12-31", seed: 5, gaps: [{ symbol: "DDD", from: "2018-03-01", to: "2018-03-31" }] })
        yield* Effect.promise(async () => {
          const file = join(root, catalogRelPath("1d", "BBB", "2016-01-01"))
          const bytes = await readFile(file)
          await writeFile(file, bytes.subarray(0, Math.floor(bytes.length / 2)))
        })

        // 3 symbols: 3 results, no errors; SPX's matches are the oracle's.
        const three = yield* scanJob({ symbols: ["SPX", "SYN1", "SYN2"], freq: "1d", start: START, end: END, formula: FORMULA, jobId: "scan-three" })
        expect(three.results.map((r) => [r.universe[0], r.status])).toEqual([["SPX", "success"], ["SYN1", "success"], ["SYN2", "success"]])
        expect(three.record).toMatchObject({ status: "done", kind: "scan", groups: 1, counts: { success: 3, skipped: 0, failed: 0 } })
        const spx = yield* closesOf(root, "SPX", "2000-01-03", END)
        const expected = oracle(spx.ts, spx.close, 50)
        const got = three.results[0].scan!
        expect(expected.length).toBeGreaterThan(3)
        expect(got.match_count).toBe(expected.length)
        expect(got.matches.map((m) => m.ts)).toEqual(expected.map((e) => e.ts))
        got.matches.forEach((m, i) => {
          expect(m.values["sma(close, 50)"]).toBeCloseTo(expected[i].sma, 9)
          expect(m.values["rsi(close, 14)"]).toBeCloseTo(expected[i].rsi, 9)
          expect(m.values.close).toBeLessThan(m.values["sma(close, 50)"]!)
        })

        // 4 symbols: progress (1,4), (2,4), (3,4), (4,4) on the job's events.
        const seen: Array<[number, number]> = []
        yield* scanJob({ symbols: ["SYN1", "SYN2", "SYN3", "SYN4"], freq: "1d", start: START, end: END, formula: FORMULA, jobId: "scan-four", onProgress: (c, t) => seen.push([c, t]) })
        const events = yield* Effect.gen(function* () {
          for (let i = 0; ; i++) {
            const evts = yield* replayAll(SUBJECT.event("scan-four", "job", "progress"))
            if (evts.length >= 4 || i > 100) return evts
            yield* Effect.sleep("100 millis")
          }
        })
        expect(events.map((m) => m.json<{ data: { completed: number; total: number } }>().data).map((d) => [d.completed, d.total])).toEqual([[1, 4], [2, 4], [3, 4], [4, 4]])
        // what the CLI showed: the same steps, in order (the last may trail the record)
        expect(seen).toEqual([[1, 4], [2, 4], [3, 4], [4, 4]].slice(0, seen.length))

        // The second symbol fails (no data), in the same group as the others: the first and
        // third are answered, the second carries its error, the job completes.
        const missing = yield* scanJob({ symbols: ["SYN1", "NOPE", "SYN2"], freq: "1d", start: START, end: END, formula: FORMULA, jobId: "scan-missing" })
        expect(missing.record).toMatchObject({ status: "done", groups: 1, scan: { processed: 3, errors: 1 } })
        expect(missing.results.map((r) => [r.universe[0], r.status])).toEqual([["SYN1", "success"], ["NOPE", "skipped"], ["SYN2", "success"]])
        expect(missing.results[1].reason).toMatch(/no 1d data for NOPE/)

        // A symbol the loader cannot load, between two it can, in one group: only its own result fails.
        // So does one whose data fails the quality checks.
        const broken = yield* scanJob({ symbols: ["AAA", "BBB", "CCC", "DDD"], freq: "1d", start: "2017-01-03", end: END, formula: "close > sma(close, 300)", jobId: "scan-broken" })
        expect(broken.results.map((r) => [r.universe[0], r.status, r.phase])).toEqual([["AAA", "success", undefined], ["BBB", "failed", "loading"], ["CCC", "success", undefined], ["DDD", "skipped", "quality"]])
        expect(broken.results[1].reason).toMatch(/1d\/BBB\/2016\.parquet/)
        expect(broken.results[3].reason).toMatch(/data quality: DDD/)
        expect(broken.record).toMatchObject({ status: "done", groups: 1, scan: { processed: 4, errors: 2 } })

        // 5 symbols: the summary in the record and in the summary phase's log line.
        const five = yield* scanJob({ symbols: ["SPX", "SYN1", "SYN2", "SYN3", "SYN4"], freq: "1d", start: START, end: END, formula: FORMULA, jobId: "scan-five" })
        const matches = five.results.reduce((n, r) => n + (r.scan?.match_count ?? 0), 0)
        expect(five.record.scan).toMatchObject({ formula: FORMULA, processed: 5, errors: 0, matches })
        expect(five.record.scan!.total_ms).toBeGreaterThan(0)
        expect(five.record.phases.availability).toMatchObject({ in: 5, pass: 5 })
        const line = logged.find((l) => l.annotations.batch_id === "scan-five")
        expect(line?.message).toMatch(new RegExp(`Phase 7: scan done: 5 processed, 0 errors, ${matches} matches in \\d+\\.\\d\\d s`))
        expect(line?.annotations).toMatchObject({ processed: 5, errors: 0, matches })

        // A bad formula is refused before anything is loaded, with its column.
        const rejections = yield* openRejectionBucket(60_000)
        const ack = yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "scan", job_id: "scan-bad", symbols: ["SPX"], freq: "1d", start_date: START, end_date: END, formula: "close > > 3" }))
        const refused = yield* Effect.gen(function* () {
          for (let i = 0; ; i++) {
            const r = yield* rejectionOf(rejections, ack.seq)
            if (r || i > 200) return r
            yield* Effect.sleep("50 millis")
          }
        })
        expect(refused?.reason).toMatch(/formula: unexpected '>' at column 9; expected a number, a column, a function or '\('/)
      }).pipe(
        Effect.provide(systemTestLayer({ actors: PIPELINE, settings: { dataRoot: root, scanGroups: 1 } }).pipe(Layer.provide(Logger.add(capture)))),
        Effect.ensuring(Effect.sync(() => rmSync(root, { recursive: true, force: true })))
      )
    },
    600_000
  )

  it.scopedLive(
    "--add-to: a scan adds exactly the matching symbols to a running session as scanner additions; a bad session id is a clear error",
    () => {
      const root = mkdtempSync(join(tmpdir(), "tf-scan-ses-"))
      const symbols = ["BBB", "CCC", "DDD", "EEE", "FFF"]
      return Effect.gen(function* () {
        yield* generateCatalog({ root, symbols: ["AAA", ...symbols], freqs: ["1d"], start: "2016-01-01", end: "2019-12-31", seed: 11 })
        // The threshold from the data, read here: the symbols whose highest close in the window is above it match.
        const highs = new Map<string, number>()
        for (const s of symbols) {
          const series = yield* closesOf(root, s, "2017-01-02", "2019-12-31")
          let max = -Infinity
          for (let i = series.startIndex; i < series.close.length; i++) max = Math.max(max, series.close[i])
          highs.set(s, max)
        }
        const sorted = [...highs.values()].sort((a, b) => a - b)
        const threshold = (sorted[1] + sorted[2]) / 2
        const expected = symbols.filter((s) => highs.get(s)! > threshold)
        expect(expected.length).toBe(3)

        const started = (yield* sessionRequest(SUBJECT.sessionCmd("watch1"), {
          op: "start",
          config: {
            session_id: "watch1",
            session_name: "watch1",
            symbols: ["AAA"],
            freqs: ["1d"],
            start_date: "2017-01-02",
            end_date: "2019-12-31",
            start_capital: 100_000,
            strategies: [{ id: "ema", strategy: "trend_baseline", params: { fast: 10, slow: 50 } }]
          }
        })) as Record<string, any>
        expect(started.ok, JSON.stringify(started)).toBe(true)

        // A bad session id: refused before the scan runs, naming the id.
        const nope = yield* Effect.flip(checkSession("nope"))
        expect(nope.message).toMatch(/--add-to nope: no session "nope"/)
        const invalid = yield* Effect.flip(checkSession("not a session"))
        expect(invalid.message).toMatch(/"not a session" is not a session id/)

        yield* checkSession("watch1")
        const job = yield* scanJob({ symbols, freq: "1d", start: "2017-01-02", end: "2019-12-31", formula: `close > ${threshold}`, jobId: "scan-addto" })
        expect(matchingSymbols(job.results)).toEqual(expected)
        const added = yield* addMatchesToSession("watch1", matchingSymbols(job.results))
        expect(added.map((a) => [a.symbol, a.outcome])).toEqual(expected.map((s) => [s, "added"]))

        const shown = (yield* sessionRequest(SUBJECT.sessionCmd("watch1"), { op: "show" })) as Record<string, any>
        const inSession = shown.session.symbols as Record<string, { added_by: string; status: string }>
        expect(Object.keys(inSession).sort()).toEqual(["AAA", ...expected].sort())
        for (const s of expected) expect(inSession[s]).toMatchObject({ added_by: "scanner", status: "active" })
        expect(inSession.AAA.added_by).toBe("config")
        // `all`: every symbol of the actors' catalog at the frequency
        const all = yield* scanJob({ symbols: "all", freq: "1d", start: "2017-01-02", end: "2019-12-31", formula: "close > 0", jobId: "scan-all" })
        expect(all.results.map((r) => [r.universe[0], r.status])).toEqual(["AAA", ...symbols].map((s) => [s, "success"]))
        expect(all.record.groups).toBe(2)
        // the session's events record the scanner as the source
        const evts = yield* replayAll(SUBJECT.sessionEvt("watch1"), { stream: "TF_SESSIONS" })
        const addedEvents = evts.map((m) => m.json<{ kind: string; data: { symbol: string; source: string } }>()).filter((e) => e.kind === "symbol_added" && e.data.source === "scanner")
        expect(addedEvents.map((e) => e.data.symbol)).toEqual(expected)
      }).pipe(
        Effect.provide(systemTestLayer({ actors: [...PIPELINE, "session"], settings: { dataRoot: root, scanGroups: 2, sessionLeaseMs: 1_000 } })),
        Effect.ensuring(Effect.sync(() => rmSync(root, { recursive: true, force: true })))
      )
    },
    600_000
  )
})

describe("tickflow scan (the command, as a child process)", () => {
  it(
    "prints progress and one JSON object per symbol (exit 1: one symbol has no data); a bad formula is refused with its column (exit 2)",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "tf-scan-cli-"))
      try {
        await Effect.runPromise(generateCatalog({ root: join(dir, "catalog"), symbols: ["AAA", "BBB"], freqs: ["1d"], start: "2016-01-01", end: "2019-12-31", seed: 3 }))
        const env: Record<string, string | undefined> = { ...process.env, TICKFLOW_LOG_FORMAT: "json", TICKFLOW_LOG_LEVEL: "warn" }
        delete env.NATS_URL
        const bin = resolve(__dirname, "..", "bin", "tickflow.mjs")
        const args = ["scan", "--symbols", "AAA,NOPE,BBB", "--freq", "1d", "--start", "2017-01-03", "--end", "2019-12-31", "--data-root", "catalog"]
        const r = await runChild(process.execPath, [bin, ...args, "--formula", "crossover(close, sma(close, 20))", "--json"], { cwd: dir, env, timeoutMs: 300_000 })
        expect(r.status, r.stderr).toBe(1)
        const out = JSON.parse(r.stdout) as Array<Record<string, any>>
        expect(out.map((o) => [o.symbol, o.status])).toEqual([["AAA", "success"], ["NOPE", "skipped"], ["BBB", "success"]])
        expect(out[0].match_count).toBeGreaterThan(0)
        expect(out[0].matches[0]).toEqual(expect.objectContaining({ time: expect.any(String), close: expect.any(Number), "sma(close, 20)": expect.any(Number) }))
        expect(out[1].error).toMatch(/no 1d data for NOPE/)
        expect(r.stderr).toMatch(/progress: 3\/3 /)
        expect(r.stderr).toMatch(/scan scan-\S+ done: 3 processed, 1 errors, \d+ matches in/)
        const bad = await runChild(process.execPath, [bin, ...args, "--formula", "close > sma(close)"], { cwd: dir, env, timeoutMs: 120_000 })
        expect(bad.status).toBe(2)
        expect(bad.stderr).toMatch(/--formula: sma takes 2 arguments \(sma\(x, n\)\), got 1 at column 12/)
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
    600_000
  )
})
