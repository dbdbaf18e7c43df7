/**
 * session: a long-lived context owning a symbol set, strategies (parameters or sweep grids),
 * bar intervals and a date window. Commands arrive by core request/reply on `tf.ses.<id>.cmd`
 * (start, add, remove, show, export; `tf.ses.list` lists), events go to `tf.ses.<id>.evt`
 * (stored in TF_SESSIONS), state lives in KV `tf_sessions`.
 *
 * Every addition takes the pipeline's own path, from any source and of any kind:
 * - analyze = the requirements phase's functions: strategies resolved, parameters validated,
 *   warm-up per interval (done once at start for the session's strategies);
 * - validate = the availability phase's `availabilityProblem` on the coverage index: the
 *   validation answer (`can_proceed`, `reason`, ...) is replied and published as an event;
 * - provision = the loader's `ensureSliceFor` (slice loaded once, cached by content key in
 *   `tf_data`) and the quality checks; indicators computed on the provisioned slice;
 * - then the (symbol × strategy × interval) scenarios are submitted on `tf.submit` as single
 *   scenarios into the batch named after the session, owned by the session's token (the
 *   coordinator's ownership rule), so they run through all phases and their results stream on
 *   `tf.res.<session>.>` like any batch's; the reporter's record counts them.
 *
 * One owner at a time, by lease (bucket-level, no KV compare-and-set, which is unsafe on a 2.9
 * cluster): lease epochs are keys `lease.<n>` created create-only; the holder renews its own key
 * by timestamp; a candidate that sees the newest epoch unrenewed for `sessionLeaseMs` creates
 * `lease.<n+1>` (one creator wins) and the old holder steps down when it sees a newer epoch.
 * Only the holder subscribes to the command subjects and writes session state.
 */
import { createHash, randomBytes } from "node:crypto"
import { Deferred, Duration, Effect, Fiber, Runtime, Stream } from "effect"
import type { Msg, Subscription } from "@nats-io/transport-node"
import type { KV } from "@nats-io/kv"
import type { JetStreamManager } from "@nats-io/jetstream"
import { checkQuality, coverageFor, type CoverageReport } from "../data/index.js"
import { validateParams } from "../engine/index.js"
import { ema, rsi, sma } from "../engine/indicators.js"
import { ConfigError, expandBatch, parseBatchConfig, type Scenario } from "../schemas/batch.js"
import { WIRE_VERSION, type Freq } from "../schemas/common.js"
import { formatIssues } from "../schemas/errors.js"
import {
  INDICATOR_RE,
  publicSession,
  SessionCommand,
  SessionConfig,
  type AddSource,
  type IndicatorValue,
  type ProvisionedSlice,
  type SessionState,
  type SessionSymbol,
  type Validation
} from "../schemas/session.js"
import type { SliceSpec } from "../schemas/wire.js"
import { Bus, kvCreate, kvKeysAsync, publishTrusted } from "../streams/bus.js"
import { Nats } from "../streams/connection.js"
import { BUCKET, SUBJECT } from "../streams/topology.js"
import { StrategyStore } from "../strategies-store.js"
import { availabilityProblem } from "./availability.js"
import { ActorSettings, Shutdown } from "./common.js"
import { coverageOf } from "./coverage.js"
import { ensureSliceFor } from "./loader.js"
import { fetchSlice } from "./slices.js"
import type { ActorMetrics, CoverageIndex, FileFooters, SliceCache, SliceLoadsInFlight, SliceLoadTurns } from "./process-state.js"
import { follow } from "../streams/follow.js"

const now = () => new Date().toISOString()
const hash = (s: string, n: number) => createHash("sha256").update(s).digest("hex").slice(0, n)
const encoder = new TextEncoder()
/** Most scenarios one addition may submit (a grid × intervals). */
const MAX_SCENARIOS_PER_ADDITION = 5_000

class CommandError {
  readonly _tag = "CommandError"
  constructor(readonly message: string) {}
}

// ---------- analyze: the requirements phase's functions, once per session ----------

/** A session's strategies as a batch config for one symbol and interval (ids made unique per symbol). */
const batchConfigFor = (cfg: SessionConfig, symbol: string, freq: Freq) => ({
  batch_name: cfg.session_name,
  defaults: { freq, start_date: cfg.start_date, end_date: cfg.end_date, universe: [symbol], start_capital: cfg.start_capital },
  runs: cfg.strategies
    .map((s, i) => ({ s, i }))
    .filter(({ s }) => s.grid === undefined)
    .map(({ s, i }) => ({ id: s.id ?? `${s.strategy.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 60)}-${i}`, strategy: s.strategy, params: s.params ?? {} })),
  sweep: cfg.strategies
    .map((s, i) => ({ s, i }))
    .filter(({ s }) => s.grid !== undefined)
    .map(({ s, i }) => ({ id: s.id ?? `${s.strategy.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 60)}-${i}`, strategy: s.strategy, params: s.params ?? {}, grid: s.grid }))
})

const symbolToken = (symbol: string) => symbol.replace(/[^A-Za-z0-9_-]/g, "_")

/** The session's scenarios for one symbol at one interval (batch = session, ids `<SYMBOL>-<freq>-<run>`). */
export const scenariosFor = (state: Pick<SessionState, "session_id" | "config">, symbol: string, freq: Freq): Scenario[] => {
  const cfg = parseBatchConfig(batchConfigFor(state.config, symbol, freq), "session strategies")
  return expandBatch(cfg, { batchId: state.session_id, maxScenarios: MAX_SCENARIOS_PER_ADDITION }).map((s) => ({
    ...s,
    scenario_id: `${symbolToken(symbol)}-${freq}-${s.scenario_id}`.slice(0, 128)
  }))
}

/**
 * Analyze: every strategy resolves and its parameters validate (the requirements phase's
 * checks); returns the warm-ups each interval needs, or the problems.
 */
const analyze = (state: Pick<SessionState, "session_id" | "config">, freqs: ReadonlyArray<Freq>) =>
  Effect.gen(function* () {
    const strategies = yield* StrategyStore
    const problems: string[] = []
    const warmups = new Map<Freq, Set<number>>()
    for (const freq of freqs) {
      let scenarios: Scenario[]
      try {
        scenarios = scenariosFor(state, "PROBE", freq)
      } catch (e) {
        problems.push(...(e instanceof ConfigError ? e.problems : [String((e as Error).message)]))
        continue
      }
      const set = new Set<number>()
      const seen = new Set<string>()
      for (const s of scenarios) {
        const k = JSON.stringify([s.strategy, s.params])
        if (seen.has(k)) continue
        seen.add(k)
        const def = yield* Effect.either(strategies.load(s.strategy))
        if (def._tag === "Left") {
          problems.push(`strategy ${JSON.stringify(s.strategy)}: ${String((def.left as { message?: string }).message ?? def.left)}`)
          continue
        }
        const v = validateParams(def.right, s.params, { strict: s.strict })
        if (!v.ok) {
          problems.push(`${s.strategy} ${JSON.stringify(s.params)}: ${v.errors.join("; ")}`)
          continue
        }
        try {
          set.add(def.right.calculateRequirements(v.params, freq).warmupBars)
        } catch (e) {
          problems.push(`${s.strategy}: calculateRequirements threw: ${(e as Error).message}`)
        }
      }
      warmups.set(freq, set)
    }
    return { problems: [...new Set(problems)].slice(0, 10), warmups }
  })

// ---------- validate: the availability phase's function on the coverage index ----------

export const validateAddition = (
  report: CoverageReport,
  root: string,
  cfg: Pick<SessionConfig, "freqs" | "start_date" | "end_date">,
  symbol: string,
  asked: ReadonlyArray<Freq>
): Validation => {
  const dataSource = report.entries.some((e) => e.symbol === symbol)
  const supported = (f: Freq) => coverageFor(report, symbol, f) !== undefined || (f !== "tick" && coverageFor(report, symbol, "tick") !== undefined)
  const problemOf = (f: Freq) => availabilityProblem({ universe: [symbol], freq: f, start_date: cfg.start_date, end_date: cfg.end_date, warmup_bars: 0 }, report, root)
  const askedProblems = asked.map(problemOf).filter((p): p is string => p !== undefined)
  const intervals = asked.every(supported)
  const history = dataSource && intervals && askedProblems.length === 0
  const meets = cfg.freqs.every((f) => problemOf(f) === undefined)
  const reason = !dataSource ? `no data for ${symbol} in the catalog (no interval at all); import it with \`tickflow data import\`` : askedProblems[0] ?? null
  return {
    can_proceed: history,
    reason,
    data_source_available: dataSource,
    intervals_supported: intervals,
    has_historical_data: history,
    meets_config_requirements: meets
  }
}

// ---------- indicators ----------

const INDICATORS = { rsi, sma, ema } as const
const TAIL = 20

export const computeIndicator = (spec: string, freq: Freq, ts: ArrayLike<number>, close: ArrayLike<number>): IndicatorValue => {
  const m = INDICATOR_RE.exec(spec)
  if (!m) throw new Error(`indicator ${JSON.stringify(spec)}: write rsi:<period>, sma:<period> or ema:<period>`)
  const values = INDICATORS[m[1] as keyof typeof INDICATORS](close, Number(m[2]))
  const tail: Array<{ ts: number; value: number | null }> = []
  for (let i = Math.max(0, values.length - TAIL); i < values.length; i++) tail.push({ ts: Number(ts[i]), value: Number.isFinite(values[i]) ? values[i] : null })
  return { spec, freq, rows: values.length, tail }
}

// ---------- the actor ----------

interface Ctx {
  readonly kv: KV
  readonly jsm: JetStreamManager
  readonly sessions: Map<string, SessionState>
  readonly locks: Map<string, Effect.Semaphore>
  /** follow a session's results (once per session while this process owns it): see watchRuns */
  readonly watch: (s: SessionState) => void
}

const stateKey = (id: string) => `s.${id}`

const save = (ctx: Ctx, s: SessionState) =>
  Effect.tryPromise({
    try: () => {
      s.updated_at = now()
      return ctx.kv.put(stateKey(s.session_id), JSON.stringify(s))
    },
    catch: (e) => new CommandError(`session state not saved: ${(e as Error).message}`)
  })

const event = (s: SessionState, kind: string, data: Record<string, unknown>) =>
  Effect.gen(function* () {
    const seq = ++s.event_seq
    yield* publishTrusted(SUBJECT.sessionEvt(s.session_id), { v: WIRE_VERSION, session_id: s.session_id, seq, kind, at: now(), data }, { msgId: `ses:${s.session_id}:evt:${seq}` }).pipe(
      Effect.catchAll((e) => Effect.logWarning("session event not published", e))
    )
  })

/** End the session when every symbol it ever had has failed (removed ones do not count). */
const checkAllFailed = (s: SessionState) =>
  Effect.gen(function* () {
    const all = Object.values(s.symbols).filter((x) => x.status !== "removed")
    if (s.status !== "running" || all.length === 0 || !all.every((x) => x.status === "failed")) return
    s.status = "failed"
    s.reason = `every symbol failed: ${all.map((x) => `${x.symbol}: ${x.reason ?? "failed"}`).join("; ")}`.slice(0, 2000)
    yield* event(s, "session_failed", { reason: s.reason })
    yield* Effect.logWarning(`session failed: ${s.reason}`).pipe(Effect.annotateLogs({ session_id: s.session_id }))
  })

interface AddRequest {
  readonly symbol: string
  readonly interval?: Freq
  readonly indicators: ReadonlyArray<string>
  readonly adhoc: boolean
  readonly source: AddSource
  /** at start: the session's end is judged after every config symbol was tried */
  readonly deferEnd?: boolean
}

/**
 * One addition through analyze → validate → provision → submit. Returns the reply. State is
 * saved before provisioning (a successor resumes `provisioning` symbols) and after.
 */
const addSymbol = (ctx: Ctx, s: SessionState, req: AddRequest) =>
  Effect.gen(function* () {
    const settings = yield* ActorSettings
    if (s.status !== "running") return { ok: false, outcome: "session_ended", error: `session ${s.session_id} has ended: ${s.reason ?? s.status}` }
    const existing = s.symbols[req.symbol]
    const asked: Freq[] = req.interval !== undefined ? [req.interval] : [...s.config.freqs]
    const indicators = [...new Set([...s.config.indicators, ...req.indicators])]
    const live = existing !== undefined && existing.status !== "failed" && existing.status !== "removed"
    // What this addition brings that the symbol does not have yet.
    const upgrade = live && existing.adhoc && !req.adhoc
    const newIntervals = live ? asked.filter((f) => !existing.intervals.includes(f)) : asked
    const newIndicators = live ? indicators.filter((i) => !existing.indicators.includes(i)) : indicators
    if (live && !upgrade && newIntervals.length === 0 && newIndicators.length === 0) {
      const reply = {
        ok: true,
        outcome: "duplicate",
        message: `${req.symbol} is already in session ${s.session_id} with ${existing.intervals.join(", ")}${existing.indicators.length ? ` and ${existing.indicators.join(", ")}` : ""}${existing.adhoc ? " (adhoc)" : ""}: nothing to do`,
        symbol: existing
      }
      yield* event(s, "duplicate", { symbol: req.symbol, source: req.source })
      return reply
    }
    const root = settings.dataRoot
    const report = yield* coverageOf(root).pipe(Effect.mapError((e) => new CommandError(`coverage index unreadable: ${e.message}`)))
    const validation = validateAddition(report, root, s.config, req.symbol, asked)
    const t = now()
    const sym: SessionSymbol = live
      ? existing
      : {
          symbol: req.symbol,
          status: "provisioning",
          added_by: req.source,
          meets_session_config_requirements: validation.meets_config_requirements,
          auto_provisioned: req.source !== "config",
          added_at: t,
          upgraded_from_adhoc: false,
          adhoc: req.adhoc,
          intervals: [],
          indicators: [],
          slices: [],
          indicator_values: [],
          scenarios: 0
        }
    sym.validation = validation
    s.symbols[req.symbol] = sym
    yield* event(s, "validated", { symbol: req.symbol, source: req.source, intervals: asked, adhoc: req.adhoc, ...validation })
    if (!validation.can_proceed) {
      const reason = validation.reason ?? "cannot proceed"
      if (!live) {
        // A failed symbol is dropped with its reason (recorded, never run).
        sym.status = "failed"
        sym.reason = reason
        yield* event(s, "symbol_failed", { symbol: req.symbol, reason })
        if (!req.deferEnd) yield* checkAllFailed(s)
      }
      yield* save(ctx, s)
      return { ok: true, outcome: "rejected", symbol: req.symbol, validation, reason, session_status: s.status, ...(s.reason ? { session_reason: s.reason } : {}) }
    }
    yield* save(ctx, s)

    // ---- provision: the loader's slice cache, the quality checks, indicators ----
    const runFreqs = req.adhoc && !upgrade ? newIntervals : upgrade ? [...new Set([...existing!.intervals, ...newIntervals])] : newIntervals
    const provisionFreqs = newIntervals.length > 0 ? newIntervals : []
    const { problems, warmups } = yield* analyze(s, provisionFreqs.length > 0 ? provisionFreqs : asked)
    if (problems.length > 0) return yield* Effect.fail(new CommandError(`session strategies: ${problems.join("; ")}`))
    const provisioned: ProvisionedSlice[] = []
    const failure = yield* Effect.gen(function* () {
      for (const freq of provisionFreqs) {
        for (const warmup of [...(warmups.get(freq) ?? new Set([0]))].sort((a, b) => a - b)) {
          const slice: SliceSpec = { universe: [req.symbol], freq, start_date: s.config.start_date, end_date: s.config.end_date, warmup_bars: warmup }
          const ref = yield* ensureSliceFor(slice, report.dataVersion, req.symbol, root, settings.instance)
          const series = yield* fetchSlice(ref)
          const findings = checkQuality(series, { strict: true, warmupBarsRequired: warmup })
          const errors = findings.filter((f) => f.severity === "error")
          if (errors.length > 0) return `data quality of ${req.symbol} ${freq}: ${errors.slice(0, 3).map((f) => f.message).join("; ")}`
          provisioned.push({
            freq,
            warmup_bars: warmup,
            key: ref.key,
            rows: ref.rows,
            resampled_from_ticks: ref.resampled_from_ticks,
            quality_warnings: findings.filter((f) => f.severity === "warning").slice(0, 5).map((f) => f.message)
          })
        }
      }
      return undefined
    }).pipe(Effect.catchAll((e) => Effect.succeed(`provisioning ${req.symbol} failed: ${(e as { reason?: string; message?: string }).reason ?? (e as Error).message ?? String(e)}`)))
    if (failure !== undefined) {
      if (!live) {
        sym.status = "failed"
        sym.reason = failure
        yield* event(s, "symbol_failed", { symbol: req.symbol, reason: failure })
        if (!req.deferEnd) yield* checkAllFailed(s)
      }
      yield* save(ctx, s)
      return { ok: true, outcome: "rejected", symbol: req.symbol, validation: { ...validation, can_proceed: false, reason: failure }, reason: failure, session_status: s.status }
    }
    sym.slices.push(...provisioned)
    sym.intervals = [...new Set([...sym.intervals, ...newIntervals])]
    // Indicators: on the interval's slice (the one with the most history), no backtest.
    for (const spec of newIndicators) {
      const freq = req.interval ?? sym.intervals[0]
      const best = [...sym.slices].filter((x) => x.freq === freq).sort((a, b) => b.warmup_bars - a.warmup_bars)[0]
      if (!best) continue
      const series = yield* fetchSlice({ symbol: req.symbol, key: best.key, rows: best.rows, warmup_rows: 0, resampled_from_ticks: best.resampled_from_ticks, bytes: 0 })
      const value = computeIndicator(spec, freq, series.ts, series.close)
      sym.indicator_values = [...sym.indicator_values.filter((v) => !(v.spec === spec && v.freq === freq)), value]
      sym.indicators = [...new Set([...sym.indicators, spec])]
      yield* event(s, "indicator_computed", { symbol: req.symbol, spec, freq, rows: value.rows, last: value.tail.at(-1) ?? null })
    }

    // ---- submit: (symbol × strategy × interval) scenarios into the session's batch ----
    let submitted = 0
    if (!req.adhoc) {
      for (const freq of runFreqs) {
        const scenarios = scenariosFor(s, req.symbol, freq)
        yield* Effect.forEach(
          scenarios,
          (sc) => {
            const { v: _v, ...rest } = sc
            return publishTrusted(SUBJECT.submit, { kind: "scenario", ...rest, owner_token: s.owner_token }, { msgId: `ses:${s.session_id}:${sc.scenario_id}` })
          },
          { concurrency: 64, discard: true }
        )
        submitted += scenarios.length
      }
      sym.scenarios += submitted
    }
    const outcome = !live ? "added" : upgrade ? "upgraded" : "extended"
    if (upgrade) {
      sym.upgraded_from_adhoc = true
      sym.adhoc = false
      sym.added_by = req.source
      sym.meets_session_config_requirements = validation.meets_config_requirements
    }
    sym.status = "active"
    delete sym.reason
    yield* event(s, outcome === "added" ? "symbol_added" : outcome === "upgraded" ? "symbol_upgraded" : "symbol_extended", {
      symbol: req.symbol,
      source: req.source,
      adhoc: sym.adhoc,
      intervals: newIntervals,
      indicators: newIndicators,
      scenarios: submitted,
      slices: provisioned.length
    })
    yield* save(ctx, s)
    return { ok: true, outcome, symbol: sym, validation, scenarios: submitted, provisioned }
  })

const startSession = (ctx: Ctx, raw: unknown, subjectId: string) =>
  Effect.gen(function* () {
    const bus = yield* Bus
    const parsed = SessionConfig.safeParse(raw, { reportInput: true })
    if (!parsed.success) return yield* Effect.fail(new CommandError(`session config: ${formatIssues(parsed.error).join("; ")}`))
    const cfg = parsed.data
    const id = cfg.session_id ?? subjectId
    if (id !== subjectId) return yield* Effect.fail(new CommandError(`session_id ${JSON.stringify(cfg.session_id)} differs from the subject's ${JSON.stringify(subjectId)}; send it to ${SUBJECT.sessionCmd(cfg.session_id!)}`))
    const known = ctx.sessions.get(id)
    if (known) {
      const same = JSON.stringify(known.config) === JSON.stringify({ ...cfg, session_id: id })
      if (same) return { ok: true, outcome: "duplicate", message: `session ${id} is already started with this config`, session: publicSession(known) }
      return yield* Effect.fail(new CommandError(`session ${id} exists with another config; choose a new session_id`))
    }
    const state: SessionState = {
      v: WIRE_VERSION,
      session_id: id,
      config: { ...cfg, session_id: id },
      status: "running",
      created_at: now(),
      updated_at: now(),
      owner_token: randomBytes(24).toString("hex"),
      event_seq: 0,
      symbols: {}
    }
    const { problems } = yield* analyze(state, cfg.freqs)
    if (problems.length > 0) return yield* Effect.fail(new CommandError(`session strategies: ${problems.join("; ")}`))
    // The session's batch id must be free (or already the session's, after a takeover).
    const batch = yield* Effect.promise(() => bus.batches.get(id).catch(() => null))
    if (batch && batch.operation === "PUT") return yield* Effect.fail(new CommandError(`batch id ${JSON.stringify(id)} is already used by a batch; choose another session_id`))
    if (!(yield* kvCreate(ctx.kv, stateKey(id), state).pipe(Effect.mapError((e) => new CommandError(e.message)))))
      return yield* Effect.fail(new CommandError(`session ${id} already exists; choose a new session_id`))
    ctx.sessions.set(id, state)
    ctx.watch(state)
    yield* event(state, "started", { session_name: cfg.session_name, symbols: cfg.symbols, freqs: cfg.freqs, strategies: cfg.strategies.length })
    yield* Effect.logInfo("session started").pipe(Effect.annotateLogs({ session_id: id, symbols: cfg.symbols.length }))
    const additions = []
    for (const symbol of cfg.symbols) additions.push(yield* addSymbol(ctx, state, { symbol, indicators: [], adhoc: false, source: "config", deferEnd: true }))
    yield* checkAllFailed(state)
    yield* save(ctx, state)
    return { ok: true, outcome: "started", session: publicSession(state), additions }
  })

const handleCommand = (ctx: Ctx, sessionId: string, raw: unknown) =>
  Effect.gen(function* () {
    const parsed = SessionCommand.safeParse(raw, { reportInput: true })
    if (!parsed.success) return yield* Effect.fail(new CommandError(`command: ${formatIssues(parsed.error).join("; ")}`))
    const cmd = parsed.data
    if (cmd.op === "start") return yield* startSession(ctx, cmd.config, sessionId)
    const s = ctx.sessions.get(sessionId)
    if (!s) return yield* Effect.fail(new CommandError(`no session ${JSON.stringify(sessionId)}; start it with \`tickflow session start <config.yaml>\``))
    switch (cmd.op) {
      case "show":
        return { ok: true, session: publicSession(s) }
      case "export":
        return { ok: true, export: { ...publicSession(s), exported_at: now() } }
      case "remove": {
        const sym = s.symbols[cmd.symbol]
        if (!sym || sym.status === "removed") return { ok: true, outcome: "not_present", message: `${cmd.symbol} is not in session ${sessionId}` }
        sym.status = "removed"
        yield* event(s, "symbol_removed", { symbol: cmd.symbol })
        yield* save(ctx, s)
        return { ok: true, outcome: "removed", message: `${cmd.symbol} removed: no new scenarios (submitted ones finish)`, symbol: sym }
      }
      case "add":
        return yield* addSymbol(ctx, s, {
          symbol: cmd.symbol,
          ...(cmd.interval !== undefined ? { interval: cmd.interval } : {}),
          indicators: cmd.indicators ?? [],
          adhoc: cmd.adhoc ?? cmd.source === "adhoc",
          source: cmd.source ?? (cmd.adhoc ? "adhoc" : "config")
        })
    }
  })

// ---------- runs: a symbol whose every run ended without success has failed ----------

/** What the session knows of one run from its result on `tf.res.<session>.<scenario>`. */
interface RunOutcome {
  readonly status: string
  readonly phase: string | undefined
  readonly reason: string | undefined
}

/**
 * Symbols whose submitted runs have all ended and none succeeded (they failed in execution, or
 * were skipped or failed by a phase) go from `active` to `failed`, with the first failure's phase
 * and reason; then the session ends if every symbol has failed. Returns true when it changed
 * the state.
 */
export const judgeRuns = (s: SessionState, outcomes: ReadonlyMap<string, RunOutcome>, idsOf: (symbol: SessionSymbol) => ReadonlyArray<string>) =>
  Effect.gen(function* () {
    let changed = false
    for (const sym of Object.values(s.symbols)) {
      if (sym.status !== "active" || sym.adhoc || sym.scenarios === 0) continue
      const ids = idsOf(sym)
      if (ids.length === 0) continue
      const ended = ids.map((id) => outcomes.get(id))
      if (ended.some((o) => o === undefined || o.status === "success")) continue
      const first = (ended.find((o) => o!.status === "failed") ?? ended[0])!
      const reason = `every run of ${sym.symbol} ended without success (${ids.length} runs); first failure in ${first.phase ?? "execution"}: ${first.reason ?? first.status}`.slice(0, 1000)
      sym.status = "failed"
      sym.reason = reason
      changed = true
      yield* event(s, "symbol_failed", { symbol: sym.symbol, reason, phase: first.phase ?? "execution", runs: ids.length })
      yield* Effect.logWarning(`session symbol failed: ${reason}`).pipe(Effect.annotateLogs({ session_id: s.session_id, symbol: sym.symbol }))
    }
    if (changed) yield* checkAllFailed(s)
    return changed
  })

/**
 * Follows a session's results (replayed from the start, so a successor sees what happened
 * before it took over) and judges its symbols after each burst of results, under the
 * session's lock like any command.
 */
const watchRuns = (c: Ctx, sessionId: string) =>
  Effect.gen(function* () {
    const outcomes = new Map<string, RunOutcome>()
    const idCache = new Map<string, ReadonlyArray<string>>()
    const idsOf = (s: SessionState) => (sym: SessionSymbol) => {
      const k = `${sym.symbol}|${sym.intervals.join(",")}`
      let ids = idCache.get(k)
      if (!ids) {
        ids = sym.intervals.flatMap((f) => {
          try {
            return scenariosFor(s, sym.symbol, f).map((x) => x.scenario_id)
          } catch {
            return []
          }
        })
        idCache.set(k, ids)
      }
      return ids
    }
    yield* follow(SUBJECT.resultsOf(sessionId)).pipe(
      Stream.groupedWithin(1_000, Duration.millis(200)),
      Stream.runForEach((chunk) =>
        Effect.gen(function* () {
          for (const m of chunk) {
            try {
              const r = m.json<{ scenario_id?: unknown; status?: unknown; phase?: unknown; reason?: unknown }>()
              if (typeof r.scenario_id !== "string" || typeof r.status !== "string") continue
              outcomes.set(r.scenario_id, {
                status: r.status,
                phase: typeof r.phase === "string" ? r.phase : undefined,
                reason: typeof r.reason === "string" ? r.reason.slice(0, 500) : undefined
              })
            } catch {
              // not JSON: not a result this session can read
            }
          }
          const s = c.sessions.get(sessionId)
          const lock = c.locks.get(sessionId)
          if (!s || !lock || s.status !== "running") return
          yield* lock.withPermits(1)(
            judgeRuns(s, outcomes, idsOf(s)).pipe(Effect.flatMap((changed) => (changed ? save(c, s) : Effect.void)))
          )
        })
      )
    )
  })

/** Resume what a predecessor left half-done: symbols still `provisioning` go through again. */
const resume = (ctx: Ctx, s: SessionState) =>
  Effect.gen(function* () {
    for (const sym of Object.values(s.symbols)) {
      if (sym.status !== "provisioning") continue
      delete s.symbols[sym.symbol]
      yield* addSymbol(ctx, s, { symbol: sym.symbol, indicators: sym.indicators, adhoc: sym.adhoc, source: sym.added_by }).pipe(
        Effect.catchAll((e) => Effect.logWarning(`resuming ${sym.symbol} failed: ${e.message}`))
      )
    }
  })

const loadSessions = (ctx: Ctx) =>
  Effect.tryPromise({
    try: async () => {
      const out: SessionState[] = []
      for (const k of await kvKeysAsync(ctx.jsm, BUCKET.sessions, "s.>")) {
        const e = await ctx.kv.get(k)
        if (e && e.operation === "PUT") out.push(e.json<SessionState>())
      }
      return out
    },
    catch: (e) => new CommandError(`sessions not loaded: ${(e as Error).message}`)
  })

// ---------- lease ----------

interface Lease {
  readonly epoch: number
  readonly owner: string
  readonly renewed_at: number
}
const leaseKey = (epoch: number) => `lease.${String(epoch).padStart(9, "0")}`

const newestLease = (kv: KV, jsm: JetStreamManager) =>
  Effect.tryPromise({
    try: async (): Promise<Lease | undefined> => {
      let max = 0
      for (const k of await kvKeysAsync(jsm, BUCKET.sessions, "lease.>")) max = Math.max(max, Number(k.slice(6)))
      if (max === 0) return undefined
      const e = await kv.get(leaseKey(max))
      return e && e.operation === "PUT" ? { ...e.json<Lease>(), epoch: max } : { epoch: max, owner: "", renewed_at: 0 }
    },
    catch: (e) => new CommandError(`lease not read: ${(e as Error).message}`)
  })

export const sessionActor = Effect.gen(function* () {
  const settings = yield* ActorSettings
  const bus = yield* Bus
  const { nc, jsm } = yield* Nats
  const shutdown = yield* Shutdown
  const runtime = yield* Effect.runtime<ActorSettings | Bus | Nats | StrategyStore | SliceCache | ActorMetrics | CoverageIndex | FileFooters | SliceLoadsInFlight | SliceLoadTurns>()
  const kv = bus.sessions
  const leaseMs = settings.sessionLeaseMs
  let mine: Lease | undefined
  let subs: Subscription[] = []
  /** one results follower per session while this process owns the sessions */
  const watchers = new Map<string, Fiber.RuntimeFiber<void, never>>()
  const watch = (c: Ctx) => (s: SessionState) => {
    if (watchers.has(s.session_id)) return
    watchers.set(
      s.session_id,
      Runtime.runFork(runtime)(
        watchRuns(c, s.session_id).pipe(
          Effect.catchAllCause((cause) => Effect.logWarning("session results follower stopped", cause)),
          Effect.annotateLogs({ actor: "session", session_id: s.session_id })
        )
      )
    )
  }

  const reply = (m: Msg, body: unknown) => {
    if (m.reply) m.respond(encoder.encode(JSON.stringify(body)))
  }
  const serve = (c: Ctx, m: Msg, sessionId: string) => {
    let raw: unknown
    try {
      raw = m.json()
    } catch {
      return reply(m, { ok: false, error: "command is not JSON" })
    }
    let lock = c.locks.get(sessionId)
    if (!lock) c.locks.set(sessionId, (lock = Effect.unsafeMakeSemaphore(1)))
    const started = Date.now()
    Runtime.runFork(runtime)(
      lock.withPermits(1)(handleCommand(c, sessionId, raw)).pipe(
        Effect.tap((r) => Effect.sync(() => reply(m, r))),
        Effect.tap(() =>
          Effect.logInfo("session command").pipe(Effect.annotateLogs({ session_id: sessionId, op: String((raw as { op?: unknown })?.op), ms: Date.now() - started }))
        ),
        Effect.catchAll((e) =>
          Effect.sync(() => reply(m, { ok: false, error: e instanceof CommandError ? e.message : String((e as Error)?.message ?? e) })).pipe(
            Effect.zipRight(Effect.logWarning(`session command refused: ${(e as Error).message}`).pipe(Effect.annotateLogs({ session_id: sessionId })))
          )
        ),
        Effect.catchAllDefect((d) => Effect.sync(() => reply(m, { ok: false, error: `internal error: ${String((d as Error)?.message ?? d)}` }))),
        Effect.annotateLogs({ actor: "session" })
      )
    )
  }

  const becomeOwner = (lease: Lease) =>
    Effect.gen(function* () {
      mine = lease
      const c: Ctx = { kv, jsm, sessions: new Map(), locks: new Map(), watch: (s) => watch(c)(s) }
      for (const s of yield* loadSessions(c)) c.sessions.set(s.session_id, s)
      subs = [
        nc.subscribe(SUBJECT.sessionCmds, {
          callback: (err, m) => {
            if (err) return
            const id = m.subject.split(".")[2]
            serve(c, m, id)
          }
        }),
        nc.subscribe(SUBJECT.sessionList, {
          callback: (err, m) => {
            if (err) return
            reply(m, { ok: true, sessions: [...c.sessions.values()].map((s) => ({ session_id: s.session_id, session_name: s.config.session_name, status: s.status, symbols: Object.keys(s.symbols).length })) })
          }
        })
      ]
      yield* Effect.logInfo("session owner").pipe(Effect.annotateLogs({ epoch: lease.epoch, sessions: c.sessions.size, instance: settings.instance }))
      for (const s of c.sessions.values()) {
        if (s.status !== "running") continue
        const lock = (c.locks.get(s.session_id) ?? Effect.unsafeMakeSemaphore(1))
        c.locks.set(s.session_id, lock)
        yield* event(s, "owner_changed", { epoch: lease.epoch, instance: settings.instance })
        yield* Effect.forkDaemon(lock.withPermits(1)(resume(c, s)))
        c.watch(s)
      }
    })

  const stepDown = (why: string, graceful = false) =>
    Effect.gen(function* () {
      for (const s of subs) s.unsubscribe()
      subs = []
      for (const f of watchers.values()) yield* Fiber.interrupt(f)
      watchers.clear()
      if (mine) {
        const log = graceful ? Effect.logInfo(`session ownership handed back: ${why}`) : Effect.logWarning(`session ownership given up: ${why}`)
        yield* log.pipe(Effect.annotateLogs({ epoch: mine.epoch }))
      }
      mine = undefined
    })

  const tick = Effect.gen(function* () {
    const newest = yield* newestLease(kv, jsm)
    if (mine) {
      if (newest && newest.epoch > mine.epoch) return yield* stepDown(`epoch ${newest.epoch} taken by ${newest.owner}`)
      yield* Effect.tryPromise({
        try: () => kv.put(leaseKey(mine!.epoch), JSON.stringify({ ...mine!, renewed_at: Date.now() })),
        catch: (e) => new CommandError(String(e))
      })
      mine = { ...mine, renewed_at: Date.now() }
      return
    }
    if (newest && Date.now() - newest.renewed_at < leaseMs) return
    const lease: Lease = { epoch: (newest?.epoch ?? 0) + 1, owner: settings.instance, renewed_at: Date.now() }
    const won = yield* kvCreate(kv, leaseKey(lease.epoch), lease)
    if (won) yield* becomeOwner(lease)
  })

  const loop = Effect.gen(function* () {
    for (;;) {
      yield* tick.pipe(Effect.catchAll((e) => Effect.logWarning(`session lease: ${e.message}`)))
      if (mine && Date.now() - mine.renewed_at > leaseMs) yield* stepDown("lease not renewed in time")
      yield* Effect.sleep(Math.max(100, Math.floor(leaseMs / 4)))
    }
  })
  const fiber = yield* Effect.fork(loop)
  yield* Deferred.await(shutdown)
  yield* Fiber.interrupt(fiber)
  // A graceful stop lets a successor take over at once: the lease is marked expired.
  if (mine) {
    const last = mine
    yield* stepDown("shutting down", true)
    yield* Effect.promise(() => kv.put(leaseKey(last.epoch), JSON.stringify({ ...last, renewed_at: 0 })).catch(() => undefined))
  }
})
