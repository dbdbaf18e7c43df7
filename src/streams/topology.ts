/**
 * The wire topology of DESIGN.md, created idempotently: streams, durable consumers, KV buckets
 * and the object store. Safe to call from every process at start-up.
 */
import { Config, Duration, Effect, Schedule } from "effect"
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type StreamConfig
} from "@nats-io/jetstream"
import { nanos } from "@nats-io/transport-node"
import type { KV } from "@nats-io/kv"
import type { ObjectStore } from "@nats-io/obj"
import { Nats } from "./connection.js"
import { BusError } from "./errors.js"

export const STREAM = {
  pipeline: "TF_PIPELINE",
  results: "TF_RESULTS",
  events: "TF_EVENTS",
  dlq: "TF_DLQ",
  sessions: "TF_SESSIONS"
} as const

export const SUBJECT = {
  submit: "tf.submit",
  stage: (stage: string, batch: string) => `tf.scn.${stage}.${batch}`,
  result: (batch: string, scenario: string) => `tf.res.${batch}.${scenario}`,
  resultsOf: (batch: string) => `tf.res.${batch}.>`,
  event: (batch: string, id: string, kind: string) => `tf.evt.${batch}.${id}.${kind}`,
  batchEvent: (batch: string) => `tf.evt.${batch}.batch`,
  /** the equity curves of one execution chunk's scenarios (results carry this as `equity_ref`) */
  curves: (batch: string, group: string) => `tf.evt.${batch}.${group}.curves`,
  /** phase telemetry of every group of every batch: what the reporter folds into phase counts */
  allPhaseEvents: "tf.evt.*.*.phase",
  /** phase telemetry of every group of one batch (a reporter's replay) */
  phaseEventsOf: (batch: string) => `tf.evt.${batch}.*.phase`,
  /** what a bulk of stored results says, for the reporter (actors/summaries.ts) */
  resultSummary: (batch: string, key: string) => `tf.evt.${batch}.${key}.summary`,
  allResultSummaries: "tf.evt.*.*.summary",
  dlq: (stage: string) => `tf.dlq.${stage}`,
  /** session commands (core request/reply), events (stored in TF_SESSIONS), listing */
  sessionCmd: (session: string) => `tf.ses.${session}.cmd`,
  sessionCmds: "tf.ses.*.cmd",
  sessionEvt: (session: string) => `tf.ses.${session}.evt`,
  sessionList: "tf.ses.list"
} as const

/**
 * The stream that stores a subject. Results (`tf.res.>`) and telemetry (`tf.evt.>`) live in
 * separate streams. The reporter follows summaries and phase events without a break; on a
 * stream shared with 10,000 results a sweep, nats-server 2.9 then looks for each follower's next
 * message among the results' subjects, and keeps the block being written in memory, growing it
 * by copies, because it is being read (server profile: 23% of its CPU in growslice under
 * writeMsgRecord). Measured on nats-server 2.9.10, 30,000 acked 1 KB results with a summary and
 * a phase event after every 250, server CPU, medians of 5: 1.14 s with no follower, 1.50 s with
 * two followers (`tf.evt.*.*.summary`, `tf.evt.*.*.phase`) on the same stream, 1.16 s with them
 * on a stream of their own.
 */
export const streamOf = (subject: string): string =>
  subject.startsWith("tf.evt.")
    ? STREAM.events
    : subject.startsWith("tf.dlq.")
      ? STREAM.dlq
      : subject.startsWith("tf.ses.")
        ? STREAM.sessions
        : subject.startsWith("tf.scn.") || subject === SUBJECT.submit
          ? STREAM.pipeline
          : STREAM.results

export const BUCKET = {
  batches: "tf_batches",
  runs: "tf_runs",
  coverage: "tf_coverage",
  sessions: "tf_sessions",
  claims: "tf_claims",
  cache: "tf_cache"
} as const
export const OBJECT_STORE = "tf_data"

/** Durable consumer name per pipeline stage; executors share `executor` (competing consumers). */
export const CONSUMER = {
  coordinator: { name: "coordinator", filter: "tf.submit" },
  availability: { name: "availability", filter: "tf.scn.avail.>" },
  requirements: { name: "requirements", filter: "tf.scn.reqs.>" },
  loader: { name: "loader", filter: "tf.scn.load.>" },
  quality: { name: "quality", filter: "tf.scn.quality.>" },
  executor: { name: "executor", filter: "tf.scn.exec.>" }
} as const
export type PipelineConsumer = keyof typeof CONSUMER
/**
 * The reporter used to share this durable consumer; it now follows the results stream with its
 * own ordered consumers (every reporter derives the same counts). A leftover durable of that
 * name is removed at start-up so it does not keep state on the server.
 */
export const LEGACY_REPORTER_CONSUMER = "reporter"

export interface TopologyOptions {
  /** ack wait for stage consumers (executors call working() at half of it) */
  readonly ackWaitMs?: number
  /** deliveries before a message is dead-lettered */
  readonly maxDeliver?: number
  /** how long results and events are kept */
  readonly resultsMaxAgeMs?: number
  /** result de-duplication window (Nats-Msg-Id) */
  readonly duplicateWindowMs?: number
  /** copies of every stream, bucket and the object store (TICKFLOW_REPLICAS; 1, 3 or 5 on a cluster) */
  readonly replicas?: number
  /** change the replicas of what already exists when they differ (TICKFLOW_REPLICAS_FORCE=1) */
  readonly replicasForce?: boolean
}

/**
 * The replica settings, from the environment through Effect's Config: TICKFLOW_REPLICAS
 * (default 1) and TICKFLOW_REPLICAS_FORCE (default false).
 */
export const ReplicaConfig = Config.all({
  replicas: Config.integer("TICKFLOW_REPLICAS").pipe(
    Config.withDefault(1),
    Config.validate({ message: "TICKFLOW_REPLICAS must be 1 to 5 (JetStream's limit; 3 on a three-node cluster)", validation: (n) => n >= 1 && n <= 5 })
  ),
  replicasForce: Config.boolean("TICKFLOW_REPLICAS_FORCE").pipe(Config.withDefault(false))
})

/** An existing stream (or the stream behind a bucket) whose replicas differ from the setting. */
export interface ReplicaMismatch {
  readonly stream: string
  readonly existing: number
  readonly wanted: number
  /** true when TICKFLOW_REPLICAS_FORCE changed it, false when it was left as it is */
  readonly changed: boolean
}

export const DEFAULT_TOPOLOGY: Required<TopologyOptions> = {
  ackWaitMs: Number(process.env.TICKFLOW_ACK_WAIT_MS ?? 30_000),
  maxDeliver: 5,
  resultsMaxAgeMs: 7 * 24 * 3600_000,
  duplicateWindowMs: 10 * 60_000,
  replicas: 1,
  replicasForce: false
}

const isApiError = (e: unknown, code?: number): boolean =>
  e instanceof JetStreamApiError && (code === undefined || e.code === code)

/**
 * Create the stream, or bring an existing one to `cfg` — except its replicas: a process whose
 * replica setting differs from what exists does not scale it (one process started without
 * TICKFLOW_REPLICAS silently took a three-replica cluster back to one), unless `force`.
 */
const ensureStream = (cfg: Partial<StreamConfig> & { name: string }, force: boolean) =>
  Effect.flatMap(Nats, ({ jsm }) =>
    Effect.tryPromise({
      try: async (): Promise<ReplicaMismatch | undefined> => {
        let existing: number
        try {
          existing = (await jsm.streams.info(cfg.name)).config.num_replicas
        } catch (e) {
          if (!isApiError(e, 10059)) throw e // 10059 = stream not found
          try {
            await jsm.streams.add(cfg)
            return undefined
          } catch (e2) {
            // another process created it between our info and add
            if (!isApiError(e2, 10058)) throw e2
            existing = (await jsm.streams.info(cfg.name)).config.num_replicas
          }
        }
        const wanted = cfg.num_replicas ?? existing
        const differs = existing !== wanted
        await jsm.streams.update(cfg.name, { ...cfg, num_replicas: differs && !force ? existing : wanted })
        return differs ? { stream: cfg.name, existing, wanted, changed: force } : undefined
      },
      catch: (cause) => new BusError({ op: `ensure stream ${cfg.name}`, cause, transient: false })
    })
  )

/** The same rule for the streams behind KV buckets and the object store (their create() leaves replicas alone). */
const reconcileReplicas = (stream: string, wanted: number, force: boolean) =>
  Effect.flatMap(Nats, ({ jsm }) =>
    Effect.tryPromise({
      try: async (): Promise<ReplicaMismatch | undefined> => {
        const info = await jsm.streams.info(stream)
        const existing = info.config.num_replicas
        if (existing === wanted) return undefined
        if (force) await jsm.streams.update(stream, { ...info.config, num_replicas: wanted })
        return { stream, existing, wanted, changed: force }
      },
      catch: (cause) => new BusError({ op: `replicas of ${stream}`, cause, transient: false })
    })
  )

const logMismatches = (mismatches: ReadonlyArray<ReplicaMismatch>) =>
  Effect.forEach(mismatches, (m) =>
    m.changed
      ? Effect.logWarning(`stream ${m.stream}: replicas changed from ${m.existing} to ${m.wanted} (TICKFLOW_REPLICAS_FORCE)`).pipe(Effect.annotateLogs({ ...m }))
      : Effect.logWarning(
          `stream ${m.stream} has ${m.existing} replicas, this process is set to ${m.wanted} (TICKFLOW_REPLICAS): left at ${m.existing}. ` +
            `Set TICKFLOW_REPLICAS=${m.existing} to match, or TICKFLOW_REPLICAS_FORCE=1 to change it to ${m.wanted}.`
        ).pipe(Effect.annotateLogs({ ...m })),
    { discard: true }
  )

const ensureConsumer = (stream: string, cfg: Partial<ConsumerConfig> & { durable_name: string }) =>
  Effect.flatMap(Nats, ({ jsm }) =>
    Effect.tryPromise({
      try: async () => {
        try {
          const info = await jsm.consumers.info(stream, cfg.durable_name)
          // Only mutable fields are updated; the filter of an existing durable stays.
          return await jsm.consumers.update(stream, cfg.durable_name, {
            ack_wait: cfg.ack_wait,
            max_deliver: cfg.max_deliver,
            max_ack_pending: cfg.max_ack_pending,
            description: cfg.description
          }).catch(() => info)
        } catch (e) {
          if (!isApiError(e, 10014)) throw e // 10014 = consumer not found
          return await jsm.consumers.add(stream, cfg)
        }
      },
      catch: (cause) => new BusError({ op: `ensure consumer ${stream}/${cfg.durable_name}`, cause, transient: false })
    })
  )

/** Create (or update) every stream, consumer, bucket and the object store. Idempotent. */
export const ensureTopology = (options: TopologyOptions = {}) => Effect.map(ensureTopologyReporting(options), (r) => r.topology)

/** ensureTopology, also returning the replica mismatches it found (and logged). */
export const ensureTopologyReporting = (options: TopologyOptions = {}) =>
  Effect.gen(function* () {
    const fromEnv = yield* ReplicaConfig.pipe(Effect.mapError((cause) => new BusError({ op: "read TICKFLOW_REPLICAS", cause, transient: false })))
    const o = { ...DEFAULT_TOPOLOGY, ...fromEnv, ...options }
    const force = o.replicasForce
    const { kvm, objm } = yield* Nats
    const mismatches: Array<ReplicaMismatch | undefined> = []
    mismatches.push(yield* ensureStream({
      name: STREAM.pipeline,
      subjects: ["tf.submit", "tf.scn.>"],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      num_replicas: o.replicas,
      duplicate_window: nanos(o.duplicateWindowMs),
      discard: DiscardPolicy.Old
    }, force))
    // Results first: a TF_RESULTS made before the split also held tf.evt.>, which TF_EVENTS
    // can only take once TF_RESULTS has let go of it (events stored before stay readable by
    // sequence there, and age out).
    for (const [name, subjects] of [[STREAM.results, ["tf.res.>"]], [STREAM.events, ["tf.evt.>"]]] as const)
      mismatches.push(yield* ensureStream({
        name,
        subjects: [...subjects],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        num_replicas: o.replicas,
        max_age: nanos(o.resultsMaxAgeMs),
        duplicate_window: nanos(o.duplicateWindowMs)
      }, force))
    mismatches.push(yield* ensureStream({
      name: STREAM.dlq,
      subjects: ["tf.dlq.>"],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas: o.replicas,
      max_age: nanos(o.resultsMaxAgeMs)
    }, force))
    mismatches.push(yield* ensureStream({
      name: STREAM.sessions,
      // Events only: commands are core request/reply (a stream on the command subject would
      // answer every request with its PubAck before the session actor could).
      subjects: ["tf.ses.*.evt"],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas: o.replicas,
      max_age: nanos(o.resultsMaxAgeMs)
    }, force))
    for (const c of Object.values(CONSUMER)) {
      yield* ensureConsumer(STREAM.pipeline, {
        durable_name: c.name,
        filter_subject: c.filter,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ack_wait: nanos(o.ackWaitMs),
        max_deliver: o.maxDeliver,
        max_ack_pending: 10_000,
        description: `tickflow ${c.name} stage`
      })
    }
    yield* Effect.flatMap(Nats, ({ jsm }) =>
      Effect.promise(() => jsm.consumers.delete(STREAM.results, LEGACY_REPORTER_CONSUMER).catch(() => false))
    )
    const kvOpts = { replicas: o.replicas, storage: StorageType.File }
    const buckets = yield* Effect.tryPromise({
      try: async () => ({
        batches: await kvm.create(BUCKET.batches, { ...kvOpts, history: 1 }),
        runs: await kvm.create(BUCKET.runs, { ...kvOpts, history: 1 }),
        coverage: await kvm.create(BUCKET.coverage, { ...kvOpts, history: 1 }),
        sessions: await kvm.create(BUCKET.sessions, { ...kvOpts, history: 5 }),
        // Claims expire bucket-wide (per-key TTL needs 2.11): a crashed loader's claim lapses.
        claims: await kvm.create(BUCKET.claims, { ...kvOpts, history: 1, ttl: 10 * 60_000 }),
        // Cached results live as long as the results they point at (equity curves, replays).
        cache: await kvm.create(BUCKET.cache, { ...kvOpts, history: 1, ttl: o.resultsMaxAgeMs })
      }),
      catch: (cause) => new BusError({ op: "ensure KV buckets", cause, transient: false })
    })
    const data = yield* Effect.tryPromise({
      try: () => objm.create(OBJECT_STORE, { replicas: o.replicas, storage: StorageType.File }),
      catch: (cause) => new BusError({ op: `ensure object store ${OBJECT_STORE}`, cause, transient: false })
    })
    // Published strategy modules (src/strategies-store.ts) and expiring rejections of refused
    // submissions (src/security/rejections.ts; bucket-wide max_age, per-key TTL needs 2.11).
    yield* Effect.tryPromise({
      try: async () => {
        await objm.create("tf_strategies", { replicas: o.replicas, storage: StorageType.File })
        await kvm.create("tf_rejections", { ...kvOpts, history: 1, ttl: 3600_000, maxValueSize: 16 * 1024 }).catch((e) => {
          // created earlier with another max_age (TICKFLOW_REJECTION_TTL_MS): keep it
          if (!/already in use|different configuration/i.test(String((e as Error)?.message))) throw e
        })
      },
      catch: (cause) => new BusError({ op: "ensure tf_strategies / tf_rejections", cause, transient: false })
    })
    for (const bucket of Object.values(BUCKET)) mismatches.push(yield* reconcileReplicas(`KV_${bucket}`, o.replicas, force))
    mismatches.push(yield* reconcileReplicas(`OBJ_${OBJECT_STORE}`, o.replicas, force))
    mismatches.push(yield* reconcileReplicas("OBJ_tf_strategies", o.replicas, force))
    mismatches.push(yield* reconcileReplicas("KV_tf_rejections", o.replicas, force))
    const replicaMismatches = mismatches.filter((m): m is ReplicaMismatch => m !== undefined)
    yield* logMismatches(replicaMismatches)
    return { topology: { ...buckets, data } satisfies Topology, replicaMismatches }
  })

/**
 * Open what exists without creating or changing anything: for roles that may not manage
 * streams (executors, viewers). Fails when the topology is not there yet.
 */
export const bindTopology = Effect.gen(function* () {
  const { kvm, objm } = yield* Nats
  return yield* Effect.tryPromise({
    try: async (): Promise<Topology> => ({
      batches: await kvm.open(BUCKET.batches),
      runs: await kvm.open(BUCKET.runs),
      coverage: await kvm.open(BUCKET.coverage),
      sessions: await kvm.open(BUCKET.sessions),
      claims: await kvm.open(BUCKET.claims),
      cache: await kvm.open(BUCKET.cache),
      data: await objm.open(OBJECT_STORE)
    }),
    catch: (cause) => new BusError({ op: "bind to the tickflow topology (is a tickflow process with the actor role running?)", cause, transient: true })
  })
})

/** The topology is not there (yet): a bucket's or the object store's stream does not exist. */
const isTopologyMissing = (e: BusError): boolean =>
  isApiError(e.cause, 10059) || /stream not found|bucket not found|not found/i.test(String((e.cause as Error)?.message ?? ""))

/**
 * Ensure the topology; a role without the right to manage streams (executor) binds to what
 * exists instead — and when nothing exists yet (executors started before the actors), it waits
 * for the topology, polling every 500 ms, instead of exiting.
 */
export const ensureOrBindTopology = (options: TopologyOptions = {}) =>
  ensureTopology(options).pipe(
    Effect.catchAll((ensureError) => {
      let warned = false
      return bindTopology.pipe(
        Effect.tapError((e) =>
          isTopologyMissing(e) && !warned
            ? Effect.logWarning("waiting for the tickflow topology: start the actors (`tickflow actors`), which create it").pipe(
                Effect.annotateLogs({ reason: ensureError.message }),
                Effect.zipRight(Effect.sync(() => (warned = true)))
              )
            : Effect.void
        ),
        Effect.retry({ schedule: Schedule.spaced(Duration.millis(500)), while: isTopologyMissing }),
        Effect.tap(() => Effect.logInfo("topology bound (this role does not manage streams)").pipe(Effect.annotateLogs({ reason: ensureError.message }))),
        Effect.catchAll(() => Effect.fail(ensureError))
      )
    })
  )

export interface Topology {
  readonly batches: KV
  readonly runs: KV
  readonly coverage: KV
  readonly sessions: KV
  readonly claims: KV
  readonly cache: KV
  readonly data: ObjectStore
}
