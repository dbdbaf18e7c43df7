/**
 * Result summaries: what the reporter folds instead of every result.
 *
 * A result is ~1 KB; the reporter needs five fields of it (status, phase, reason, Sharpe, scan
 * matches). Followed one by one, results cost the reporter ~60 µs of CPU each (delivery, JSON,
 * the fold) and the server a delivery each: 0.6–0.8 core-s per 10,000-scenario sweep, the
 * largest single cost among the actors (bench/actor-cpu.ts, one process per actor).
 *
 * So whoever publishes results publishes, once they are stored, one summary per bulk on
 * `tf.evt.<batch>.<key>.summary` (a telemetry event of kind `results`, its entries in `data`):
 * one entry per result, carrying the stream sequence its result was stored under. The
 * reporter folds entries exactly as it folds results (the newer stream sequence wins), so a
 * summary and a replay of the results themselves agree, whichever comes first, and folding
 * either twice changes nothing.
 *
 * A summary goes out only after its results' acks (it never names a result that is not
 * stored), and only for results that were new (a duplicate's stored original may say something
 * else). A publisher that dies between its results and their summary leaves them unsummarised:
 * the reporter replays the results of a batch that goes quiet before it is done (reporter.ts),
 * so the summary is an optimisation and the results stay the truth.
 */
import { createHash } from "node:crypto"
import { Effect } from "effect"
import type { JsMsg } from "@nats-io/jetstream"
import type { PubAck } from "@nats-io/jetstream"
import { WIRE_VERSION } from "../schemas/common.js"
import type { ResultStatus, ScenarioResult } from "../schemas/results.js"
import { type OutgoingMessage, publishManyTrusted } from "../streams/bus.js"
import { SUBJECT } from "../streams/topology.js"

/** A reason is cut here, in a summary as in the reporter's fold of a result. */
export const MAX_REASON = 500
const STATUSES: ReadonlySet<string> = new Set(["success", "skipped", "failed"])

/** One stored result as the reporter folds it. */
export interface SummaryEntry {
  readonly id: string
  /** the stream sequence its result was stored under */
  readonly seq: number
  readonly status: ResultStatus
  readonly phase?: string
  readonly reason?: string
  readonly sharpe?: number
  readonly matches?: number
}

/** The entry of a result stored under `seq`. */
export const summaryEntry = (r: ScenarioResult, seq: number): SummaryEntry => {
  const sharpe = (r.metrics as { sharpe?: unknown } | undefined)?.sharpe
  const matches = r.scan?.match_count
  return {
    id: r.scenario_id,
    seq,
    status: r.status,
    ...(r.phase !== undefined ? { phase: r.phase } : {}),
    ...(r.reason !== undefined ? { reason: r.reason.slice(0, MAX_REASON) } : {}),
    ...(typeof sharpe === "number" ? { sharpe } : {}),
    ...(typeof matches === "number" ? { matches } : {})
  }
}

/**
 * The summary messages (one per batch) of results stored with these acks; results whose ack
 * says duplicate are left out. The key (subject token and msg-id) is a hash of the stored
 * sequences, so publishing the same summary again is dropped as a duplicate.
 */
export const summaryMessages = (results: ReadonlyArray<ScenarioResult>, acks: ReadonlyArray<PubAck>): OutgoingMessage[] => {
  const byBatch = new Map<string, SummaryEntry[]>()
  for (let i = 0; i < results.length; i++) {
    const ack = acks[i]
    if (ack === undefined || ack.duplicate) continue
    const r = results[i]
    let entries = byBatch.get(r.batch_id)
    if (entries === undefined) byBatch.set(r.batch_id, (entries = []))
    entries.push(summaryEntry(r, ack.seq))
  }
  return [...byBatch].map(([batch, entries]) => summaryMessage(batch, entries))
}

/** One batch's summary message of these entries. */
export const summaryMessage = (batch: string, entries: ReadonlyArray<SummaryEntry>): OutgoingMessage => {
  const key = `r${createHash("sha256").update(entries.map((e) => e.seq).join(",")).digest("hex").slice(0, 20)}`
  // a telemetry event like the others on tf.evt (kind `results`), its entries in `data`
  const event = { v: WIRE_VERSION, batch_id: batch, subject_id: key, kind: "results", phase: "summary", at: new Date().toISOString(), data: { entries } }
  return { subject: SUBJECT.resultSummary(batch, key), json: JSON.stringify(event), msgId: `${batch}:${key}:summary` }
}

/** Publish the summaries of results just stored (nothing when every one was a duplicate). */
export const publishSummaries = (results: ReadonlyArray<ScenarioResult>, acks: ReadonlyArray<PubAck>) =>
  Effect.suspend(() => {
    const messages = summaryMessages(results, acks)
    const duplicates = acks.reduce((n, a) => n + (a?.duplicate ? 1 : 0), 0)
    const publish = messages.length === 0 ? Effect.void : Effect.asVoid(publishManyTrusted(messages))
    return duplicates === 0
      ? publish
      : Effect.zipRight(
          Effect.logWarning("results already stored (duplicate acks) are left out of their summary").pipe(
            Effect.annotateLogs({ batch_id: results[0]?.batch_id, duplicates, results: results.length })
          ),
          publish
        )
  })

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0

/**
 * A summary message read back: its batch and the entries of the right shape (a bus message is
 * untrusted: anything else is passed over). The subject must be this batch's summary subject.
 */
export const readSummary = (m: JsMsg): { batch: string; entries: SummaryEntry[] } | undefined => {
  let s: Record<string, unknown>
  try {
    s = m.json<Record<string, unknown>>()
  } catch {
    return undefined
  }
  const data = s?.data as { entries?: unknown } | undefined
  if (s === null || typeof s !== "object" || s.kind !== "results" || typeof s.batch_id !== "string" || !Array.isArray(data?.entries)) return undefined
  if (!m.subject.startsWith(`tf.evt.${s.batch_id}.`) || !m.subject.endsWith(".summary")) return undefined
  const entries: SummaryEntry[] = []
  for (const e of data.entries as unknown[]) {
    if (e === null || typeof e !== "object") continue
    const x = e as Record<string, unknown>
    if (typeof x.id !== "string" || !isCount(x.seq) || !STATUSES.has(x.status as string)) continue
    entries.push({
      id: x.id,
      seq: x.seq,
      status: x.status as ResultStatus,
      ...(typeof x.phase === "string" ? { phase: x.phase } : {}),
      ...(typeof x.reason === "string" ? { reason: x.reason.slice(0, MAX_REASON) } : {}),
      ...(typeof x.sharpe === "number" ? { sharpe: x.sharpe } : {}),
      ...(isCount(x.matches) ? { matches: x.matches } : {})
    })
  }
  return { batch: s.batch_id, entries }
}
