/**
 * `tickflow scan`: a scanner job through the pipeline. The formula is checked here first (its
 * position and what was expected), the job goes to `tf.submit` as `{"kind": "scan", ...}`,
 * progress comes from the job's events (`tf.evt.<job>.job.progress`, published by the reporter),
 * and the per-symbol results from `tf.res.<job>.>`. `--add-to <session>` then sends each symbol
 * with matches to the session through the same request `tickflow session add` sends
 * (`sessionRequest`), with `source: "scanner"`.
 */
import { createHash } from "node:crypto"
import { Effect, Fiber, Stream } from "effect"
import { FormulaParseError, parseFormula } from "../engine/index.js"
import { ConfigError, ID_RE } from "../schemas/batch.js"
import { WIRE_VERSION, type Freq } from "../schemas/common.js"
import { BatchRecord, ScenarioResult, type ScenarioResult as ScenarioResultT } from "../schemas/results.js"
import { SubmitScan } from "../schemas/wire.js"
import { formatIssues } from "../schemas/errors.js"
import { Bus, kvGet, publishRaw } from "../streams/bus.js"
import { follow } from "../streams/follow.js"
import { replayAll } from "../streams/replay.js"
import { SUBJECT } from "../streams/topology.js"
import { currentSecuritySettings } from "../security/limits.js"
import { openRejectionBucket, rejectionOf } from "../security/rejections.js"
import { sessionRequest } from "./session.js"

export interface ScanJobOptions {
  readonly symbols: ReadonlyArray<string> | "all"
  readonly freq: Freq
  readonly start: string
  readonly end: string
  readonly formula: string
  readonly jobId?: string
  /** called once per finished symbol, in order: (1, N), (2, N), ... */
  readonly onProgress?: (completed: number, total: number, symbol: string, status: string) => void
}

export interface ScanJobOutcome {
  readonly jobId: string
  readonly record: BatchRecord
  /** one per symbol, in the job's symbol order when it was a list */
  readonly results: ReadonlyArray<ScenarioResultT>
}

/** A job id for a CLI scan: `scan-<utc stamp>-<6 hex of the job>`, new for each run. */
export const makeScanJobId = (o: Pick<ScanJobOptions, "symbols" | "freq" | "start" | "end" | "formula">, now = new Date()) => {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15)
  const h = createHash("sha256").update(JSON.stringify([o.symbols, o.freq, o.start, o.end, o.formula, now.getTime()])).digest("hex").slice(0, 6)
  return `scan-${stamp}-${h}`
}

/** The formula checked on this machine before anything is sent (ConfigError naming the column). */
export const checkFormula = (formula: string) =>
  Effect.try({
    try: () => parseFormula(formula),
    catch: (e) => new ConfigError([`--formula: ${e instanceof FormulaParseError ? e.message : String((e as Error)?.message ?? e)}`], "scan")
  })

/**
 * Submit a scan job and wait for it: progress as the reporter publishes it, then every symbol's
 * result. A refused submission fails with the coordinator's reason.
 */
export const scanJob = (o: ScanJobOptions) =>
  Effect.gen(function* () {
    const bus = yield* Bus
    yield* checkFormula(o.formula)
    const jobId = o.jobId ?? makeScanJobId(o)
    const message = SubmitScan.safeParse(
      { v: WIRE_VERSION, kind: "scan", job_id: jobId, symbols: o.symbols, freq: o.freq, start_date: o.start, end_date: o.end, formula: o.formula },
      { reportInput: true }
    )
    if (!message.success) return yield* Effect.fail(new ConfigError(formatIssues(message.error), "scan"))
    const rejections = yield* openRejectionBucket((yield* currentSecuritySettings).rejectionTtlMs)
    let seen = 0
    const progress = yield* follow(SUBJECT.event(jobId, "job", "progress")).pipe(
      Stream.runForEach((m) =>
        Effect.sync(() => {
          const d = (m.json<{ data?: Record<string, unknown> }>().data ?? {}) as { completed?: number; total?: number; scenario_id?: string; status?: string }
          if (typeof d.completed !== "number" || d.completed <= seen) return
          seen = d.completed
          o.onProgress?.(d.completed, Number(d.total ?? 0), String(d.scenario_id ?? ""), String(d.status ?? ""))
        })
      ),
      Effect.forkScoped
    )
    const ack = yield* publishRaw(SUBJECT.submit, JSON.stringify(message.data), `submit:${jobId}`)
    yield* Effect.logInfo(`scan ${jobId} submitted`).pipe(Effect.annotateLogs({ batch_id: jobId, symbols: o.symbols === "all" ? "all" : o.symbols.length }))
    const record = yield* Effect.gen(function* () {
      for (;;) {
        const rec = (yield* kvGet(bus.batches, jobId, BatchRecord))?.value
        if (rec && (rec.status === "done" || rec.status === "failed")) return rec
        const refused = rec ? undefined : yield* rejectionOf(rejections, ack.seq)
        if (refused) return yield* Effect.fail(new ConfigError([refused.reason], `scan ${jobId}`))
        yield* Effect.sleep("100 millis")
      }
    })
    const stored = yield* replayAll(SUBJECT.resultsOf(jobId), { lastPerSubject: true })
    const results = stored.flatMap((m) => {
      const r = ScenarioResult.safeParse(m.json())
      return r.success ? [r.data] : []
    })
    const order = o.symbols === "all" ? undefined : new Map(o.symbols.map((s, i) => [s.toUpperCase(), i]))
    results.sort((a, b) => (order ? (order.get(a.universe[0]) ?? 0) - (order.get(b.universe[0]) ?? 0) : a.universe[0].localeCompare(b.universe[0])))
    // the last progress events may trail the record by a moment: they were shown or are not needed
    yield* Fiber.interrupt(progress)
    return { jobId, record, results } satisfies ScanJobOutcome
  })

/** The symbols of a scan whose formula matched at least once, in result order. */
export const matchingSymbols = (results: ReadonlyArray<ScenarioResultT>): string[] =>
  results.filter((r) => r.status === "success" && (r.scan?.match_count ?? 0) > 0).map((r) => r.universe[0])

export class SessionNotFound {
  readonly _tag = "SessionNotFound"
  constructor(readonly message: string) {}
}

/** `--add-to`: the session must exist before the scan runs (a bad id is an error at once). */
export const checkSession = (sessionId: string) =>
  Effect.gen(function* () {
    if (!ID_RE.test(sessionId))
      return yield* Effect.fail(new SessionNotFound(`--add-to: ${JSON.stringify(sessionId)} is not a session id; use letters, digits, '-' and '_' (see \`tickflow session list\`)`))
    const reply = yield* sessionRequest(SUBJECT.sessionCmd(sessionId), { op: "show" }, { timeoutMs: 10_000, retryForMs: 10_000 }).pipe(
      Effect.mapError((e) => new SessionNotFound(`--add-to ${sessionId}: ${e.message}`))
    )
    if (reply.ok !== true) return yield* Effect.fail(new SessionNotFound(`--add-to ${sessionId}: ${String(reply.error ?? "the session actor refused")}`))
    const status = (reply.session as { status?: string } | undefined)?.status
    if (status !== "running") return yield* Effect.fail(new SessionNotFound(`--add-to ${sessionId}: the session has ended (${status}); start a new one or choose a running session`))
  })

export interface SessionAddition {
  readonly symbol: string
  readonly outcome: string
  readonly reason?: string
}

/**
 * Each matching symbol to the session as an addition from the scanner: the request `tickflow
 * session add <id> <symbol> --source scanner` sends. One at a time, in order (the session
 * handles its commands one by one anyway); a refused symbol is reported and the rest go on.
 */
export const addMatchesToSession = (sessionId: string, symbols: ReadonlyArray<string>) =>
  Effect.forEach(symbols, (symbol) =>
    sessionRequest(SUBJECT.sessionCmd(sessionId), { op: "add", symbol, source: "scanner" }).pipe(
      Effect.map(
        (reply): SessionAddition =>
          reply.ok === true
            ? { symbol, outcome: String(reply.outcome), ...(typeof reply.reason === "string" ? { reason: reply.reason } : {}) }
            : { symbol, outcome: "error", reason: String(reply.error ?? "refused") }
      ),
      Effect.catchAll((e) => Effect.succeed<SessionAddition>({ symbol, outcome: "error", reason: e.message }))
    )
  )

const fmtValue = (v: number | null) => (v === null ? "–" : Math.abs(v) >= 1000 ? v.toFixed(0) : v.toPrecision(5))

/** The matches as a table: one row per matching candle (symbol, time, the values used), then problems. */
export const scanTable = (results: ReadonlyArray<ScenarioResultT>, maxRowsPerSymbol = 20): string => {
  const lines: string[] = []
  for (const r of results) {
    const symbol = r.universe[0]
    if (r.status !== "success") {
      lines.push(`${symbol.padEnd(10)} ${r.status.toUpperCase()}: ${r.reason ?? ""}`)
      continue
    }
    const scan = r.scan
    if (!scan || scan.match_count === 0) {
      lines.push(`${symbol.padEnd(10)} no match (${scan?.rows ?? 0} rows)`)
      continue
    }
    lines.push(`${symbol.padEnd(10)} ${scan.match_count} match${scan.match_count === 1 ? "" : "es"} in ${scan.rows} rows`)
    for (const m of scan.matches.slice(-maxRowsPerSymbol)) {
      const values = Object.entries(m.values).map(([k, v]) => `${k}=${fmtValue(v)}`).join("  ")
      lines.push(`  ${m.time.slice(0, m.time.endsWith("T00:00:00.000Z") ? 10 : 19).padEnd(19)}  ${values}`)
    }
    if (scan.match_count > maxRowsPerSymbol) lines.push(`  … ${scan.match_count - Math.min(maxRowsPerSymbol, scan.matches.length)} earlier matches (--json for all${scan.truncated ? " that a result holds" : ""})`)
  }
  return lines.join("\n")
}

/** `--json`: one object per symbol: symbol, status, matches or error. */
export const scanJson = (results: ReadonlyArray<ScenarioResultT>) =>
  results.map((r) =>
    r.status === "success"
      ? { symbol: r.universe[0], status: r.status, match_count: r.scan?.match_count ?? 0, truncated: r.scan?.truncated ?? false, matches: (r.scan?.matches ?? []).map((m) => ({ time: m.time, ...m.values })) }
      : { symbol: r.universe[0], status: r.status, phase: r.phase, error: r.reason ?? r.status }
  )

export interface ScanCommandOptions {
  readonly symbols?: string
  readonly universe?: string
  readonly all: boolean
  readonly freq: string
  readonly start: string
  readonly end: string
  readonly formula: string
  readonly json: boolean
  readonly addTo?: string
  readonly dataRoot?: string
  readonly jobId?: string
}

const usage = (message: string) => {
  console.error(`error: ${message}`)
  process.exitCode = 2
}

/** The `tickflow scan` action: checks, then the job (embedded system unless NATS_URL), output, --add-to. */
export const runScanCommand = async (o: ScanCommandOptions) => {
  const { Freq, IsoDate } = await import("../schemas/common.js")
  const sources = [o.symbols !== undefined, o.universe !== undefined, o.all].filter(Boolean).length
  if (sources !== 1) return usage("give exactly one of --symbols A,B,C, --universe FILE or --all")
  const freq = Freq.safeParse(o.freq)
  if (!freq.success) return usage(`--freq: ${formatIssues(freq.error).join("; ")}`)
  for (const [name, v] of [["--start", o.start], ["--end", o.end]] as const) {
    const d = IsoDate.safeParse(v)
    if (!d.success) return usage(`${name}: ${formatIssues(d.error).join("; ")}`)
  }
  try {
    parseFormula(o.formula)
  } catch (e) {
    return usage(`--formula: ${(e as Error).message}`)
  }
  if (o.addTo !== undefined && !process.env.NATS_URL)
    return usage("--add-to needs NATS_URL: a session lives on a shared server where `tickflow actors` runs the session actor")
  if (o.jobId !== undefined && !ID_RE.test(o.jobId)) return usage(`--job-id: ${JSON.stringify(o.jobId)} is not valid; use letters, digits, '-' and '_'`)
  let symbols: string[] | "all"
  if (o.all) symbols = "all"
  else if (o.universe !== undefined) {
    const { universeFileReader } = await import("../actors/coordinator.js")
    try {
      symbols = universeFileReader(process.cwd())(o.universe)
    } catch (e) {
      return usage(`--universe: cannot read ${o.universe}: ${(e as Error).message}`)
    }
    if (symbols.length === 0) return usage(`--universe: ${o.universe} lists no symbols (one per line, or CSV with the symbol first)`)
  } else symbols = o.symbols!.split(",").map((s) => s.trim().toUpperCase()).filter(Boolean)
  const [{ systemLayer, runCli }, { ACTOR_NAMES }] = await Promise.all([import("./system.js"), import("../actors/index.js")])
  // Embedded: the whole pipeline in this process, on its own catalog; with NATS_URL: a client only.
  const actors = process.env.NATS_URL ? [] : ACTOR_NAMES.filter((a) => a !== "session")
  const layer = systemLayer({ actors, settings: o.dataRoot !== undefined ? { dataRoot: o.dataRoot } : {} })
  const tty = process.stderr.isTTY === true
  const outcome = await runCli(
    Effect.gen(function* () {
      if (o.addTo !== undefined) yield* checkSession(o.addTo)
      const job = yield* scanJob({
        symbols,
        freq: freq.data,
        start: o.start,
        end: o.end,
        formula: o.formula,
        ...(o.jobId !== undefined ? { jobId: o.jobId } : {}),
        onProgress: (completed, total, symbol, status) => {
          const line = `progress: ${completed}/${total} ${symbol} ${status}`
          if (tty) process.stderr.write(`\r${line}\u001b[K${completed === total ? "\n" : ""}`)
          else console.error(line)
        }
      })
      const added = o.addTo !== undefined ? yield* addMatchesToSession(o.addTo, matchingSymbols(job.results)) : []
      return { ...job, added }
    }).pipe(Effect.scoped, Effect.provide(layer))
  )
  if (!outcome) return
  const scan = outcome.record.scan
  if (o.json) console.log(JSON.stringify(scanJson(outcome.results), null, 2))
  else console.log(scanTable(outcome.results))
  console.error(
    `scan ${outcome.jobId} ${outcome.record.status}: ${scan?.processed ?? outcome.results.length} processed, ${scan?.errors ?? 0} errors, ${scan?.matches ?? 0} matches in ${((scan?.total_ms ?? 0) / 1000).toFixed(2)} s`
  )
  for (const a of outcome.added) console.error(`--add-to ${o.addTo}: ${a.symbol} ${a.outcome}${a.reason ? ` (${a.reason})` : ""}`)
  if ((scan?.errors ?? 0) > 0 || outcome.added.some((a) => a.outcome === "error" || a.outcome === "rejected")) process.exitCode = 1
}
