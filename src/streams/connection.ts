/**
 * The NATS connection as an Effect service. Where it points is `NatsSettings`: an external
 * server/cluster when NATS_URL is set, otherwise a private embedded nats-server that lives as
 * long as the layer's scope.
 */
import { AckedPublisher } from "./acked-publish.js"
import { Context, Effect, Layer, type Scope } from "effect"
import { readFileSync } from "node:fs"
import { connect, credsAuthenticator, PermissionViolationError, type NatsConnection } from "@nats-io/transport-node"
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import { Objm, setSha256Backend } from "@nats-io/obj"
import { embeddedNatsServer, type EmbeddedOptions, type EmbeddedServer, type Role } from "./embedded.js"
import { NatsConnectError, RequestLostInReconnect } from "./errors.js"
import { rootLogger } from "../logging.js"

export interface NatsSettingsShape {
  /** comma-separated server URLs */
  readonly servers: string
  readonly user?: string | undefined
  readonly pass?: string | undefined
  readonly token?: string | undefined
  /** set when tickflow started the server itself */
  readonly embedded?: EmbeddedServer | undefined
  /** client name shown in server monitoring */
  readonly name?: string | undefined
  /** a NATS credentials file (JWT + nkey seed): NATS_CREDS */
  readonly credsFile?: string | undefined
  /** TLS: CA to trust, and a client certificate/key for mutual TLS (NATS_TLS_CA / _CERT / _KEY) */
  readonly tls?: { readonly caFile?: string | undefined; readonly certFile?: string | undefined; readonly keyFile?: string | undefined } | undefined
  /** credentials executor processes started by this one use (NATS_EXECUTOR_USER / _PASSWORD / _CREDS) */
  readonly executorAuth?: { readonly user?: string | undefined; readonly pass?: string | undefined; readonly credsFile?: string | undefined } | undefined
}

export class NatsSettings extends Context.Tag("tickflow/NatsSettings")<NatsSettings, NatsSettingsShape>() {}

/** Settings for an embedded server, connecting as the given role (admin by default). */
export const embeddedSettings = (opts: EmbeddedOptions & { role?: Role } = {}) =>
  Layer.scoped(
    NatsSettings,
    Effect.gen(function* () {
      const server = yield* embeddedNatsServer(opts)
      const role = opts.role ?? "admin"
      yield* Effect.logInfo("embedded nats-server started").pipe(
        Effect.annotateLogs({ url: server.url, store_dir: server.storeDir, server_pid: server.pid })
      )
      return { servers: server.url, user: server.credentials[role].user, pass: server.credentials[role].pass, embedded: server }
    })
  )

const nonEmpty = (v: string | undefined) => (v !== undefined && v.trim() !== "" ? v : undefined)

/**
 * Settings from the environment: NATS_URL (+ NATS_USER / NATS_PASSWORD, NATS_TOKEN or
 * NATS_CREDS; NATS_TLS_CA / NATS_TLS_CERT / NATS_TLS_KEY), or embedded.
 */
export const settingsFromEnv = (env: NodeJS.ProcessEnv = process.env): Layer.Layer<NatsSettings, unknown> => {
  const url = nonEmpty(env.NATS_URL)
  if (url) {
    const tls = { caFile: nonEmpty(env.NATS_TLS_CA), certFile: nonEmpty(env.NATS_TLS_CERT), keyFile: nonEmpty(env.NATS_TLS_KEY) }
    const executorAuth = { user: nonEmpty(env.NATS_EXECUTOR_USER), pass: nonEmpty(env.NATS_EXECUTOR_PASSWORD), credsFile: nonEmpty(env.NATS_EXECUTOR_CREDS) }
    return Layer.succeed(NatsSettings, {
      servers: url,
      user: nonEmpty(env.NATS_USER),
      pass: nonEmpty(env.NATS_PASSWORD),
      token: nonEmpty(env.NATS_TOKEN),
      credsFile: nonEmpty(env.NATS_CREDS),
      ...(tls.caFile || tls.certFile || tls.keyFile ? { tls } : {}),
      ...(executorAuth.user || executorAuth.credsFile ? { executorAuth } : {})
    })
  }
  return embeddedSettings()
}

/** Environment a child process needs to reach the same server as this one, as the same user. */
export const childEnv = (s: NatsSettingsShape): Record<string, string> => {
  const env: Record<string, string> = { NATS_URL: s.servers }
  if (s.user) env.NATS_USER = s.user
  if (s.pass) env.NATS_PASSWORD = s.pass
  if (s.token) env.NATS_TOKEN = s.token
  if (s.credsFile) env.NATS_CREDS = s.credsFile
  if (s.tls?.caFile) env.NATS_TLS_CA = s.tls.caFile
  if (s.tls?.certFile) env.NATS_TLS_CERT = s.tls.certFile
  if (s.tls?.keyFile) env.NATS_TLS_KEY = s.tls.keyFile
  return env
}

/**
 * Environment for an executor process this one starts: the `executor` role (the embedded
 * server's executor password, or NATS_EXECUTOR_USER / _PASSWORD / _CREDS). `role` says whether
 * it got the executor role or, lacking executor credentials on an external server, this
 * process's own (the caller warns).
 */
export const executorChildEnv = (s: NatsSettingsShape): { env: Record<string, string>; role: "executor" | "inherited" } => {
  const base = childEnv(s)
  delete base.NATS_USER
  delete base.NATS_PASSWORD
  delete base.NATS_TOKEN
  delete base.NATS_CREDS
  if (s.embedded) {
    const c = s.embedded.credentials.executor
    return { env: { ...base, NATS_USER: c.user, NATS_PASSWORD: c.pass }, role: "executor" }
  }
  const x = s.executorAuth
  if (x?.credsFile) return { env: { ...base, NATS_CREDS: x.credsFile }, role: "executor" }
  if (x?.user) return { env: { ...base, NATS_USER: x.user, ...(x.pass ? { NATS_PASSWORD: x.pass } : {}) }, role: "executor" }
  return { env: childEnv(s), role: "inherited" }
}

/**
 * Fail the requests the connection lost, as soon as it is back. A request whose bytes went out
 * (or were queued) before the connection dropped gets no answer: the server that would have
 * answered is gone, and nats.js discards its outbound buffer at every dial attempt. nats.js
 * still waits out the request's full timeout (10 s here) — measured, every request in flight at
 * a nats-server restart (an executor's result publishes, its ack) held its work ~10 s after the
 * server was back. (nats.c has `failRequestsOnDisconnect` for this; nats.js has no such option.)
 *
 * So `nc.request` — which JetStream publishes, JetStream API calls and KV operations all go
 * through — is wrapped: a request still unanswered at a disconnect or a dial attempt is marked,
 * and at the "reconnect" the marked ones fail with `RequestLostInReconnect`, a transient error
 * the callers' retries (bus.ts) send again at once. Only requests sent after the last dial
 * attempt began reach the new server and keep waiting for their answer. (The status reaches
 * this code a moment after the dial attempt reset the buffer, so a request sent in that moment
 * is marked too and sent twice: harmless.) A retried publish carries its Nats-Msg-Id, so one
 * that did arrive is a duplicate the server drops. Cost: none measurable (JetStream async
 * publish 18.1 k msgs/s with the wrapper and without, medians of 8 interleaved rounds).
 */
const failRequestsLostInReconnect = (nc: NatsConnection): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function* () {
    interface InFlight {
      readonly subject: string
      readonly fail: (e: RequestLostInReconnect) => void
      lost: boolean
    }
    const inFlight = new Set<InFlight>()
    const request = nc.request.bind(nc)
    nc.request = (subject, payload, opts) =>
      new Promise((resolve, reject) => {
        const entry: InFlight = { subject, fail: reject, lost: false }
        inFlight.add(entry)
        request(subject, payload, opts).then(
          (m) => {
            inFlight.delete(entry)
            resolve(m)
          },
          (e) => {
            inFlight.delete(entry)
            reject(e)
          }
        )
      })
    const status = nc.status()
    yield* Effect.acquireRelease(
      Effect.sync(() =>
        (async () => {
          for await (const s of status) {
            if (s.type === "disconnect" || s.type === "reconnecting") for (const r of inFlight) r.lost = true
            else if (s.type === "reconnect")
              for (const r of [...inFlight])
                if (r.lost) {
                  inFlight.delete(r)
                  r.fail(new RequestLostInReconnect({ subject: r.subject }))
                }
          }
        })().catch(() => undefined)
      ),
      () => Effect.sync(() => (status as { stop?: () => void }).stop?.())
    )
  })

export interface NatsShape {
  readonly nc: NatsConnection
  readonly js: JetStreamClient
  readonly jsm: JetStreamManager
  readonly kvm: Kvm
  readonly objm: Objm
  readonly settings: NatsSettingsShape
  /** bulk JetStream publishes with their acks on one inbox (the hot paths: results, groups) */
  readonly publisher: AckedPublisher
}

export class Nats extends Effect.Service<Nats>()("tickflow/Nats", {
  scoped: Effect.gen(function* () {
    const settings = yield* NatsSettings
    const nc = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          connect({
            servers: settings.servers.split(",").map((s) => s.trim()),
            ...(settings.credsFile
              ? { authenticator: credsAuthenticator(() => new Uint8Array(readFileSync(settings.credsFile!))) }
              : { user: settings.user, pass: settings.pass, token: settings.token }),
            ...(settings.tls ? { tls: { ...settings.tls } } : {}),
            name: settings.name ?? `tickflow-${process.pid}`,
            // A third of publish CPU goes to async stack traces (NATS.md): off.
            noAsyncTraces: true,
            maxReconnectAttempts: -1,
            reconnectTimeWait: 250,
            timeout: 10_000
          }),
        catch: (cause) => new NatsConnectError({ servers: settings.servers, cause })
      }),
      (nc) =>
        Effect.promise(async () => {
          if (nc.isClosed()) return
          // drain: let in-flight publishes and acks reach the server before closing
          await nc.drain().catch(() => nc.close())
        })
    )
    yield* failRequestsLostInReconnect(nc)
    // Reconnects and disconnects are logged, one line per event.
    yield* Effect.forkScoped(
      Effect.promise(async () => {
        for await (const s of nc.status()) {
          if (s.type === "disconnect" || s.type === "reconnect" || s.type === "error" || s.type === "ldm") {
            const detail = s as { server?: string; error?: Error }
            // A permissions violation also fails the request that caused it, which reports it
            // where it matters; expected ones (an executor trying to create the topology before
            // binding to it, an ordered consumer's best-effort delete) are not warnings.
            const level = detail.error instanceof PermissionViolationError ? "debug" : "warn"
            rootLogger()[level]({ event: `nats_${s.type}`, server: detail.server, error: detail.error?.message }, `nats ${s.type}`)
          }
        }
      })
    )
    const publisher = yield* Effect.acquireRelease(
      Effect.sync(() => new AckedPublisher(nc)),
      (p) => Effect.sync(() => p.stop())
    )
    const js = jetstream(nc, { timeout: 10_000 })
    const jsm = yield* Effect.tryPromise({
      try: () => jetstreamManager(nc, { timeout: 10_000 }),
      catch: (cause) => new NatsConnectError({ servers: settings.servers, cause })
    })
    // Object-store gets and puts check a SHA-256 of every object: nats.js's default is pure JS
    // (~15 MB/s here: 125 ms of an executor's first 10,000-scenario run went to verifying four
    // daily slices); Node's own is a native one. The choice is the library's, process-wide.
    setSha256Backend("native")
    return { nc, js, jsm, kvm: new Kvm(nc), objm: new Objm(nc), settings, publisher } satisfies NatsShape
  })
}) {}

/** Nats over settings from the environment (embedded when NATS_URL is unset). */
export const NatsFromEnv = Nats.Default.pipe(Layer.provideMerge(settingsFromEnv()))
