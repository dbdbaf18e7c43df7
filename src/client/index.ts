/**
 * `tickflow/client`: a typed client for services that submit scenarios or batches and read
 * their results. Built on the documented subjects (README "The wire") and the same zod schemas
 * the actors use, so what it sends is what the coordinator accepts and what it returns has
 * been validated:
 *
 *   submit   JetStream publish on `tf.submit` (PubAck back; `Nats-Msg-Id` makes a retry of
 *            the same submission a no-op)
 *   results  ordered consumers on TF_RESULTS: `tf.res.<batch>.<scenario>` (one scenario, or
 *            `tf.res.<batch>.>`) replayed from the start and then followed, so a result that
 *            arrived before the caller looked is not missed; the batch summary
 *            `tf.evt.<batch>.batch` on TF_EVENTS (its last value, then changes) says when a
 *            batch is done.
 *            They start again by themselves after a server restart or a cluster node's loss,
 *            from the message after the last one read (src/streams/ordered.ts)
 *
 * The `submitter` role of nats.conf has exactly the permissions this needs. Sessions
 * (`tf.ses.*`, adding symbols to a running scenario) are not offered: the server side does not
 * exist yet.
 */
import { Data } from "effect"
import { connect as natsConnect, type NatsConnection } from "@nats-io/transport-node"
import { jetstream, type JetStreamClient } from "@nats-io/jetstream"
import { ConfigError, makeBatchId, parseBatchConfig, type BatchConfigInput, type ScenarioInput } from "../schemas/batch.js"
import { WIRE_VERSION } from "../schemas/common.js"
import { formatIssues } from "../schemas/errors.js"
import { BatchRecord, ScenarioResult } from "../schemas/results.js"
import { SubmitScenario } from "../schemas/wire.js"
import { STREAM, streamOf, SUBJECT } from "../streams/topology.js"
import { orderedFollowerIterable } from "../streams/ordered.js"

/**
 * Pulls of the client's followers expire after 5 s (the client library's default is 30 s): after
 * the loss of the cluster node holding an ordered consumer, a pull is renewed within seconds
 * instead of ~45 s (the actors' consumers do the same: CONSUME_EXPIRES_MS in src/streams/bus.ts).
 */
const PULL_EXPIRES_MS = 5_000

export type { BatchConfigInput, ScenarioInput } from "../schemas/batch.js"
export type { BatchRecord, MetricsRecord, ScenarioResult } from "../schemas/results.js"

export interface ConnectOptions {
  /** `nats://host:4222`, or several servers of one cluster */
  readonly servers: string | ReadonlyArray<string>
  /** a role of nats.conf; `submitter` is the one meant for services */
  readonly user?: string
  readonly pass?: string
  readonly token?: string
  /** connection name the server shows in its monitoring */
  readonly name?: string
}

export interface WaitOptions {
  /** give up (TickflowTimeoutError) after this long; default: wait as long as it takes */
  readonly timeoutMs?: number
  /** stop waiting when aborted (TickflowTimeoutError naming the reason) */
  readonly signal?: AbortSignal
}

/** A submission that fails its schema: `problems` name the field, the value and what is allowed. */
export class TickflowInvalidError extends Data.TaggedError("TickflowInvalidError")<{
  readonly message: string
  readonly problems: ReadonlyArray<string>
}> {}

/** The server did not take the message (no JetStream, no permission, not connected). */
export class TickflowBusError extends Data.TaggedError("TickflowBusError")<{
  readonly message: string
  readonly cause: unknown
}> {}

/** A result or a batch did not finish in time, or the caller aborted. */
export class TickflowTimeoutError extends Data.TaggedError("TickflowTimeoutError")<{
  readonly message: string
}> {}

export interface SubmitReceipt {
  readonly batchId: string
  /** sequence of the submission in the TF_PIPELINE stream */
  readonly seq: number
  /** true when the same submission was already accepted (same ids): nothing new will run */
  readonly duplicate: boolean
}

export interface BatchOutcome {
  /** the batch record as the reporter last published it (status done or failed) */
  readonly record: BatchRecord
  /** one result per scenario, in arrival order */
  readonly results: ReadonlyArray<ScenarioResult>
}

export interface TickflowClient {
  /** Publish one scenario (ids required: they name the result subject). */
  submitScenario(scenario: ScenarioInput): Promise<SubmitReceipt>
  /** Publish one scenario and wait for its result (success, skipped or failed). */
  runScenario(scenario: ScenarioInput, options?: WaitOptions): Promise<ScenarioResult>
  /**
   * Publish a batch config (the object form of a batch YAML), checked here first: every
   * problem at once. The id is `<batch_name>-<utc stamp>-<hash>` unless `batchId` is given.
   */
  submitBatch(config: BatchConfigInput, options?: { readonly batchId?: string }): Promise<SubmitReceipt>
  /** Publish a batch and wait until every scenario has its result. */
  runBatch(config: BatchConfigInput, options?: WaitOptions & { readonly batchId?: string }): Promise<BatchOutcome>
  /**
   * A batch's results as they arrive (replayed from the start, then followed), one per
   * scenario; the iteration ends when the batch is done and every result has been yielded.
   * Breaking out of the loop stops the consumer.
   */
  followBatch(batchId: string, options?: WaitOptions): AsyncIterableIterator<ScenarioResult>
  /** Wait for a batch to finish and return its record and results. */
  awaitBatch(batchId: string, options?: WaitOptions): Promise<BatchOutcome>
  /** The underlying connection, for anything else on the documented subjects. */
  readonly connection: NatsConnection
  close(): Promise<void>
}

const encoder = new TextEncoder()
const errorText = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

/** Connect to the NATS server (or cluster) tickflow runs on. */
export const connect = async (options: ConnectOptions): Promise<TickflowClient> => {
  const servers = typeof options.servers === "string" ? options.servers.split(",").map((s) => s.trim()) : [...options.servers]
  let nc: NatsConnection
  try {
    nc = await natsConnect({
      servers,
      name: options.name ?? "tickflow-client",
      ...(options.user !== undefined ? { user: options.user } : {}),
      ...(options.pass !== undefined ? { pass: options.pass } : {}),
      ...(options.token !== undefined ? { token: options.token } : {})
    })
  } catch (cause) {
    throw new TickflowBusError({ message: `cannot connect to ${servers.join(",")}: ${errorText(cause)}`, cause })
  }
  return makeClient(nc)
}

const makeClient = (nc: NatsConnection): TickflowClient => {
  const js = jetstream(nc)

  const publishSubmission = async (payload: unknown, msgId: string, batchId: string): Promise<SubmitReceipt> => {
    try {
      const ack = await js.publish(SUBJECT.submit, encoder.encode(JSON.stringify(payload)), { msgID: msgId })
      return { batchId, seq: ack.seq, duplicate: ack.duplicate === true }
    } catch (cause) {
      throw new TickflowBusError({ message: `publish to ${SUBJECT.submit} failed: ${errorText(cause)}`, cause })
    }
  }

  const submitChecked = (s: CheckedScenario) => publishSubmission(s.message, `submit:${s.batchId}:${s.scenarioId}`, s.batchId)

  const submitScenario = async (scenario: ScenarioInput): Promise<SubmitReceipt> => submitChecked(checkScenario(scenario))

  const submitBatch = (config: BatchConfigInput, options: { readonly batchId?: string } = {}): Promise<SubmitReceipt> => {
    let batchId: string
    try {
      batchId = options.batchId ?? makeBatchId(parseBatchConfig(config, "batch config"))
    } catch (e) {
      const problems = e instanceof ConfigError ? e.problems : [errorText(e)]
      return Promise.reject(new TickflowInvalidError({ message: errorText(e), problems }))
    }
    // No base_dir: the coordinator resolves universe files against its own directory, never a
    // path a message names.
    return publishSubmission({ v: WIRE_VERSION, kind: "batch", batch_id: batchId, config }, `submit:${batchId}`, batchId)
  }

  const followBatch = (batchId: string, options: WaitOptions = {}): AsyncIterableIterator<ScenarioResult> =>
    followResults(nc, js, batchId, options)

  const awaitBatch = async (batchId: string, options: WaitOptions = {}): Promise<BatchOutcome> => {
    const follower = followResults(nc, js, batchId, options)
    const results: ScenarioResult[] = []
    for await (const r of follower) results.push(r)
    const record = follower.record()
    // the feeds end without a summary only when the connection closes under the wait
    if (record === undefined) throw new TickflowBusError({ message: `batch ${batchId}: the connection closed before the batch finished`, cause: undefined })
    return { record, results }
  }

  const runScenario = async (scenario: ScenarioInput, options: WaitOptions = {}): Promise<ScenarioResult> => {
    const s = checkScenario(scenario)
    // Follow, then publish: the ordered consumer replays, so a result that arrives first (or
    // exists from an earlier identical submission) is found all the same.
    const found = firstMessage(nc, js, SUBJECT.result(s.batchId, s.scenarioId), ScenarioResult, options, `result of scenario ${s.scenarioId} (batch ${s.batchId})`)
    try {
      await submitChecked(s)
    } catch (e) {
      found.cancel()
      found.value.catch(() => undefined) // the wait ends with the cancel; the publish error is the news
      throw e
    }
    return found.value
  }

  return {
    connection: nc,
    submitScenario,
    runScenario,
    submitBatch,
    runBatch: async (config, options = {}) => {
      const receipt = await submitBatch(config, options.batchId ? { batchId: options.batchId } : {})
      return awaitBatch(receipt.batchId, options)
    },
    followBatch,
    awaitBatch,
    close: async () => {
      await nc.drain().catch(() => nc.close())
    }
  }
}

interface CheckedScenario {
  readonly message: unknown
  readonly batchId: string
  readonly scenarioId: string
}

/** The scenario schema of the wire, plus the ids a client needs to find the result. */
const checkScenario = (scenario: ScenarioInput): CheckedScenario => {
  const parsed = SubmitScenario.safeParse({ ...scenario, kind: "scenario" }, { reportInput: true })
  const problems = parsed.success ? [] : formatIssues(parsed.error, "scenario")
  for (const id of ["batch_id", "scenario_id"] as const)
    if (typeof (scenario as Partial<ScenarioInput> | null)?.[id] !== "string")
      problems.push(`scenario.${id}: required here: the result arrives on tf.res.<batch_id>.<scenario_id> ([A-Za-z0-9_-], e.g. "my-service")`)
  if (!parsed.success || problems.length > 0)
    throw new TickflowInvalidError({ message: `scenario has ${problems.length} problem(s):\n  ${problems.join("\n  ")}`, problems: [...new Set(problems)] })
  return { message: parsed.data, batchId: parsed.data.batch_id!, scenarioId: parsed.data.scenario_id! }
}

interface Decoder<A> {
  safeParse(data: unknown): { success: true; data: A } | { success: false; error: unknown }
}

const decode = <A>(schema: Decoder<A>, data: Uint8Array): A | undefined => {
  try {
    const r = schema.safeParse(JSON.parse(new TextDecoder().decode(data)))
    return r.success ? r.data : undefined
  } catch {
    return undefined
  }
}

/** Rejects with TickflowTimeoutError on timeout or abort; `clear` releases the timer. */
const deadline = (what: string, options: WaitOptions) => {
  let timer: ReturnType<typeof setTimeout> | undefined
  let onAbort: (() => void) | undefined
  const promise = new Promise<never>((_, reject) => {
    if (options.timeoutMs !== undefined)
      timer = setTimeout(() => reject(new TickflowTimeoutError({ message: `no ${what} within ${options.timeoutMs} ms` })), options.timeoutMs)
    if (options.signal) {
      onAbort = () => reject(new TickflowTimeoutError({ message: `stopped waiting for ${what}: ${errorText(options.signal!.reason ?? "aborted")}` }))
      if (options.signal.aborted) onAbort()
      else options.signal.addEventListener("abort", onAbort, { once: true })
    }
  })
  promise.catch(() => undefined)
  return {
    promise,
    clear: () => {
      if (timer) clearTimeout(timer)
      if (onAbort) options.signal?.removeEventListener("abort", onAbort)
    }
  }
}

/** The first valid message on `subject` (TF_RESULTS or TF_EVENTS: streamOf), replayed or new. */
const firstMessage = <A>(nc: NatsConnection, js: JetStreamClient, subject: string, schema: Decoder<A>, options: WaitOptions, what: string) => {
  let stop: (() => void) | undefined
  let cancelled = false
  const limit = deadline(what, options)
  const value = (async () => {
    try {
      const messages = await orderedFollowerIterable({ nc, js, stream: streamOf(subject), filter: subject, start: "all", maxMessages: 16, expiresMs: PULL_EXPIRES_MS })
      stop = () => messages.stop()
      if (cancelled) stop()
      const first = (async () => {
        for await (const m of messages) {
          const v = decode(schema, m.data)
          if (v !== undefined) return v
        }
        throw new TickflowTimeoutError({ message: `stopped waiting for ${what}` })
      })()
      return await Promise.race([first, limit.promise])
    } catch (cause) {
      if (cause instanceof TickflowTimeoutError) throw cause
      throw new TickflowBusError({ message: `cannot read ${subject} from ${streamOf(subject)}: ${errorText(cause)}`, cause })
    } finally {
      limit.clear()
      stop?.()
    }
  })()
  return {
    value,
    cancel: () => {
      cancelled = true
      stop?.()
    }
  }
}

type BatchFollower = AsyncIterableIterator<ScenarioResult> & { record(): BatchRecord | undefined }

type Source = "result" | "summary"
interface Feed {
  readonly messages: { stop(): void }
  readonly iterator: AsyncIterator<{ subject: string; data: Uint8Array }>
}

/**
 * Results (`tf.res.<batch>.>`, all) and the batch summary (`tf.evt.<batch>.batch`, last then
 * new) of one batch: two ordered consumers, since nats-server 2.9 takes one filter per consumer
 * and a filter must be a subset of the stream's subjects. Ends once the batch is done or
 * failed and `total` distinct results have been yielded.
 */
const followResults = (nc: NatsConnection, js: JetStreamClient, batchId: string, options: WaitOptions): BatchFollower => {
  const seen = new Set<string>()
  let record: BatchRecord | undefined
  const limit = deadline(`end of batch ${batchId}`, options)
  const feeds: Partial<Record<Source, Feed>> = {}
  const pending = new Map<Source, Promise<{ source: Source; r: IteratorResult<{ subject: string; data: Uint8Array }> }>>()
  let finished = false

  const open = async (source: Source, filter: string, start: "all" | "lastPerSubject") => {
    const messages = await orderedFollowerIterable({ nc, js, stream: streamOf(filter), filter, start, maxMessages: source === "result" ? 1_000 : 16, expiresMs: PULL_EXPIRES_MS })
    feeds[source] = { messages, iterator: messages[Symbol.asyncIterator]() }
  }
  const pull = (source: Source) => pending.set(source, feeds[source]!.iterator.next().then((r) => ({ source, r })))

  const complete = () => record !== undefined && (record.status === "done" || record.status === "failed") && seen.size >= record.total
  const finish = () => {
    finished = true
    limit.clear()
    feeds.result?.messages.stop()
    feeds.summary?.messages.stop()
  }

  const next = async (): Promise<IteratorResult<ScenarioResult>> => {
    if (finished) return { done: true, value: undefined }
    try {
      if (pending.size === 0) {
        await Promise.all([
          open("result", SUBJECT.resultsOf(batchId), "all"),
          open("summary", SUBJECT.batchEvent(batchId), "lastPerSubject")
        ])
        pull("result")
        pull("summary")
      }
      for (;;) {
        if (complete() || pending.size === 0) {
          finish()
          return { done: true, value: undefined }
        }
        const { source, r } = await Promise.race([...pending.values(), limit.promise])
        if (r.done) {
          pending.delete(source)
          continue
        }
        pull(source)
        if (source === "summary") {
          record = decode(BatchRecord, r.value.data) ?? record
          continue
        }
        const result = decode(ScenarioResult, r.value.data)
        // one per scenario: a redelivered scenario's result is published again under the same id
        if (result !== undefined && !seen.has(result.scenario_id)) {
          seen.add(result.scenario_id)
          return { done: false, value: result }
        }
      }
    } catch (cause) {
      finish()
      if (cause instanceof TickflowTimeoutError) throw cause
      throw new TickflowBusError({ message: `cannot follow batch ${batchId} on ${STREAM.results} and ${STREAM.events}: ${errorText(cause)}`, cause })
    }
  }

  const follower: BatchFollower = {
    next,
    return: async () => {
      finish()
      return { done: true, value: undefined }
    },
    [Symbol.asyncIterator]() {
      return follower
    },
    record: () => record
  }
  return follower
}
