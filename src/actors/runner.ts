/**
 * The generic actor: consume a stage's durable consumer → decode (zod) → handle → the handler
 * publishes its outputs (msg-id de-duplicated) → ack once they are stored.
 *
 * Failure tiers:
 * - undecodable message: poison. term + dead letter on `tf.dlq.<stage>`.
 * - the handler fails with a TransientFault (bus hiccup, loader busy): nak with backoff, until
 *   max_deliver; then the group is dead: its scenarios get `failed` results, term, dead letter.
 * - a defect in the handler: treated like a transient fault (a bug that a retry cannot fix ends
 *   as dead letter + failed results, never a crash of the actor).
 * Validation and runtime failures of single scenarios are the handler's business: they are
 * results (`skipped` / `failed`), never errors here.
 */
import { Cause, Data, Deferred, Duration, Effect, Either, Fiber, Option, Schedule, Stream } from "effect"
import type { z } from "zod"
import { consume, publishRaw, type Delivery } from "../streams/bus.js"
import { CONSUMER, type PipelineConsumer, SUBJECT } from "../streams/topology.js"
import { ActorSettings, freezeAt, Shutdown, stopGroup } from "./common.js"
import { GroupOnWire, type GroupMessage } from "../schemas/wire.js"
import type { Nats } from "../streams/connection.js"
import type { Phase, ScenarioResult } from "../schemas/results.js"
import { ID_RE } from "../schemas/batch.js"
import { FREQS, isRealDate, WIRE_VERSION } from "../schemas/common.js"
import { ENGINE_VERSION } from "../engine/index.js"
import { publishResults } from "./common.js"

/** A fault worth retrying later (nak with delay). */
export class TransientFault extends Data.TaggedError("TransientFault")<{ readonly reason: string; readonly cause?: unknown }> {}

export interface ActorSpec<S extends z.ZodType, R> {
  /** actor name, for logs */
  readonly name: string
  readonly consumer: PipelineConsumer | { readonly stream: string; readonly durable: string; readonly stage: string }
  readonly schema: S
  readonly handle: (value: z.output<S>, delivery: Delivery<z.output<S>>) => Effect.Effect<void, TransientFault, R>
  /**
   * called for a message that cannot be decoded (too deep, not JSON, wrong shape); by default
   * its readable scenario ids get `failed` results. The coordinator answers refused submissions
   * elsewhere instead (tf_rejections: a submission never writes under ids it names).
   */
  readonly onPoison?: (raw: unknown, reason: string, delivery: Delivery<z.output<S>>) => Effect.Effect<void, unknown, R>
  /** called when a message is given up on: publish failed results for what it carried */
  readonly onDead?: (value: z.output<S>, reason: string, delivery: Delivery<z.output<S>>) => Effect.Effect<void, unknown, R>
  /** messages buffered ahead of the handler */
  readonly maxMessages?: number
  /** competing consumers pull one message only when ready, so no process hoards work */
  readonly oneAtATime?: boolean
  /** messages handled at once */
  readonly concurrency?: number
  /** annotate log lines (batch_id, group_id, ...) from a decoded message */
  readonly annotate?: (value: z.output<S>) => Record<string, unknown>
}

/** The phase that answers for a stage's messages it cannot handle (undecodable, or given up on). */
export const STAGE_PHASE: Record<string, Phase> = {
  coordinator: "submission",
  availability: "availability",
  requirements: "requirements",
  loader: "loading",
  quality: "quality",
  executor: "execution"
}

/**
 * `failed` results for an undecodable message whose ids can still be read (a scenario's
 * batch_id + scenario_id, or a group's batch_id + item ids): its sender hears back instead of
 * waiting for ever. Only ids and short scalar fields are taken from it; never its values.
 */
export const answersForUndecodable = (raw: unknown, reason: string, phase: Phase): ScenarioResult[] => {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return []
  const r = raw as Record<string, unknown>
  const isId = (v: unknown): v is string => typeof v === "string" && ID_RE.test(v)
  if (!isId(r.batch_id)) return []
  const ids = new Set<string>()
  if (isId(r.scenario_id)) ids.add(r.scenario_id)
  if (Array.isArray(r.items))
    for (const it of r.items.slice(0, 100_000)) {
      const item = (it ?? {}) as Record<string, unknown>
      const scenario = (item.scenario ?? {}) as Record<string, unknown>
      if (isId(item.id)) ids.add(item.id)
      else if (isId(item.scenario_id)) ids.add(item.scenario_id)
      else if (isId(scenario.scenario_id)) ids.add(scenario.scenario_id)
    }
  const short = (v: unknown, d: string) => (typeof v === "string" && v.length <= 200 ? v : d)
  const date = (v: unknown) => (typeof v === "string" && isRealDate(v) ? v : "1970-01-01")
  const batchId = r.batch_id
  return [...ids].map((scenarioId) => ({
    v: WIRE_VERSION,
    batch_id: batchId,
    scenario_id: scenarioId,
    status: "failed" as const,
    phase,
    reason: `message could not be decoded: ${reason}`,
    strategy: short(r.strategy, "unknown"),
    params: {},
    universe: [],
    freq: FREQS.includes(r.freq as never) ? (r.freq as ScenarioResult["freq"]) : "1d",
    start_date: date(r.start_date),
    end_date: date(r.end_date),
    warnings: [],
    engine_version: ENGINE_VERSION,
    timings: {},
    finished_at: new Date().toISOString()
  }))
}

/** Backoff for nak: 0.5 s, 1 s, 2 s, ... capped at 15 s. */
const nakDelayMs = (deliveryCount: number) => Math.min(15_000, 500 * 2 ** Math.max(0, deliveryCount - 1))

export const runActor = <S extends z.ZodType, R>(spec: ActorSpec<S, R>) =>
  Effect.gen(function* () {
    const settings = yield* ActorSettings
    const shutdown = yield* Shutdown
    const durable = typeof spec.consumer === "string" ? CONSUMER[spec.consumer].name : spec.consumer.durable
    const stage = typeof spec.consumer === "string" ? spec.consumer : spec.consumer.stage
    const stream = typeof spec.consumer === "string" ? undefined : spec.consumer.stream

    const deadLetter = (d: Delivery<z.output<S>>, reason: string) =>
      publishRaw(
        SUBJECT.dlq(stage),
        JSON.stringify({ stage, subject: d.subject, stream_seq: d.streamSeq, deliveries: d.deliveryCount, reason, at: new Date().toISOString(), payload: new TextDecoder().decode(d.msg.data.subarray(0, 65_536)) }),
        `dlq:${stage}:${d.streamSeq}`
      ).pipe(Effect.catchAll((e) => Effect.logError("dead letter publish failed", e)))

    const heartbeatMs = settings.heartbeatMs ?? Math.max(100, Math.floor(settings.ackWaitMs / 3))
    const heartbeat = (d: Delivery<unknown>) =>
      heartbeatMs > 0 ? d.working.pipe(Effect.repeat(Schedule.spaced(Duration.millis(heartbeatMs)))) : Effect.never
    /** this stage's phase (undefined for the session actor's commands), for fault-test freezes */
    const phase: Phase | undefined = STAGE_PHASE[stage]
    const freeze = (point: "received" | "handled") => (phase === undefined ? Effect.void : freezeAt(phase, point))

    const processOne = (d: Delivery<z.output<S>>) =>
      Effect.gen(function* () {
        if (Either.isLeft(d.decoded)) {
          yield* Effect.logError("poison message: not a valid message, dead-lettered").pipe(
            Effect.annotateLogs({ problems: d.decoded.left.problems, subject: d.subject })
          )
          const problems = d.decoded.left.problems.join("; ")
          if (spec.onPoison) yield* spec.onPoison(d.decoded.left.raw, problems, d).pipe(Effect.catchAllCause((c) => Effect.logError("answering an undecodable message failed", c)))
          else {
            const answers = answersForUndecodable(d.decoded.left.raw, problems, STAGE_PHASE[stage] ?? "execution")
            if (answers.length > 0) yield* publishResults(answers).pipe(Effect.catchAll((e) => Effect.logError("answering an undecodable message failed", e)))
          }
          yield* deadLetter(d, d.decoded.left.message)
          yield* d.term
          return
        }
        const value = d.decoded.right
        yield* freeze("received")
        const beat = yield* Effect.fork(heartbeat(d))
        const outcome = yield* spec.handle(value, d).pipe(Effect.sandbox, Effect.either)
        yield* Fiber.interrupt(beat)
        if (Either.isRight(outcome)) {
          yield* freeze("handled")
          yield* d.ack.pipe(Effect.catchAll((e) => Effect.logWarning("ack failed; the message will be redelivered", e)))
          return
        }
        const cause = outcome.left
        if (Cause.isInterruptedOnly(cause)) return // shutting down: the server redelivers it
        const failure = Cause.failureOption(cause)
        const reason = Option.isSome(failure) ? failure.value.reason : Cause.pretty(cause).split("\n")[0]
        if (d.deliveryCount < settings.maxDeliver) {
          const delay = nakDelayMs(d.deliveryCount)
          yield* Effect.logWarning(`retrying in ${delay} ms: ${reason}`).pipe(Effect.annotateLogs({ delivery: d.deliveryCount }))
          yield* d.nak(delay)
          return
        }
        yield* Effect.logError(`giving up after ${d.deliveryCount} deliveries: ${reason}`)
        if (spec.onDead) yield* spec.onDead(value, reason, d).pipe(Effect.catchAllCause((c) => Effect.logError("onDead failed", c)))
        yield* deadLetter(d, reason)
        yield* d.term
      }).pipe(
        Effect.annotateLogs({
          actor: spec.name,
          ...(Either.isRight(d.decoded) && spec.annotate ? spec.annotate(d.decoded.right) : {})
        })
      )

    yield* Effect.logInfo(`${spec.name} actor consuming ${durable}`)
    yield* consume(durable, spec.schema, { ...(stream ? { stream } : {}), maxMessages: spec.maxMessages ?? 64, oneAtATime: spec.oneAtATime ?? false }).pipe(
      // On shutdown the pull for the next message is interrupted; the message in hand (downstream,
      // in mapEffect) still finishes and is acked.
      Stream.interruptWhen(Deferred.await(shutdown)),
      Stream.mapEffect(processOne, { concurrency: spec.concurrency ?? 1 }),
      Stream.runDrain,
      // The consumer can fail (server gone for longer than reconnects cover): start it again.
      Effect.tapError((e) => Effect.logError(`${spec.name} consumer failed; restarting`, e)),
      // Capped at 500 ms: the schedule's state lives as long as the actor, and a server restart
      // must not cost a 5 s wait once the server is back.
      Effect.retry(Schedule.exponential(Duration.millis(100)).pipe(Schedule.union(Schedule.spaced(Duration.millis(500)))))
    )
    yield* Effect.logInfo(`${spec.name} actor stopped`)
  })

/**
 * An actor of a group stage (availability … execution): decodes a group from its wire form, annotates logs
 * with batch and group ids, turns handler errors into retryable faults, and answers for the
 * group's scenarios with `failed` results when the message is given up on.
 */
export const groupActor = <R>(spec: {
  readonly name: string
  readonly consumer: PipelineConsumer
  readonly phase: Phase
  readonly concurrency?: number
  readonly oneAtATime?: boolean
  readonly handle: (group: GroupMessage, delivery: Delivery<GroupMessage>) => Effect.Effect<void, { readonly message: string }, R>
}) =>
  runActor<typeof GroupOnWire, R | Nats>({
    name: spec.name,
    consumer: spec.consumer,
    schema: GroupOnWire,
    ...(spec.concurrency !== undefined ? { concurrency: spec.concurrency } : {}),
    ...(spec.oneAtATime !== undefined ? { oneAtATime: spec.oneAtATime } : {}),
    annotate: (g) => ({ batch_id: g.batch_id, group_id: g.group_id }),
    handle: (group, delivery) =>
      spec.handle(group, delivery).pipe(
        Effect.mapError((e) => (e instanceof TransientFault ? e : new TransientFault({ reason: e.message, cause: e })))
      ),
    onDead: (group, reason) => stopGroup(group, group.items, "failed", spec.phase, `gave up after repeated failures: ${reason}`)
  })
