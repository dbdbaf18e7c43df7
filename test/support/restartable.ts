/**
 * Test support: a nats-server that a test can kill (SIGTERM or SIGKILL) and start again on the
 * same port with the same store dir, as an operator's restart would.
 */
import { Effect, Exit, Layer, Scope } from "effect"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { embeddedNatsServer, freePort, randomCredentials, type EmbeddedServer } from "../../src/streams/embedded.js"
import { NatsSettings } from "../../src/streams/connection.js"

export interface RestartableServer {
  readonly url: string
  readonly current: () => EmbeddedServer
  /** stop the server with `signal` and wait until it is gone */
  readonly kill: (signal: "SIGTERM" | "SIGKILL") => Effect.Effect<void>
  /** start it again (same port, same store) */
  readonly start: Effect.Effect<void, unknown>
  /** NatsSettings (admin) pointing at it, whatever its current incarnation */
  readonly settings: Layer.Layer<NatsSettings>
}

export const restartableServer = Effect.gen(function* () {
  const storeDir = yield* Effect.acquireRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), "tf-restart-"))),
    (d) => Effect.promise(() => rm(d, { recursive: true, force: true }))
  )
  const port = yield* Effect.promise(freePort)
  const credentials = randomCredentials()
  let scope: Scope.CloseableScope | undefined
  let server: EmbeddedServer | undefined
  const start = Effect.gen(function* () {
    const s = yield* Scope.make()
    server = yield* embeddedNatsServer({ storeDir, port, credentials }).pipe(Scope.extend(s))
    scope = s
  })
  const kill = (signal: "SIGTERM" | "SIGKILL") =>
    Effect.gen(function* () {
      const p = server!.process
      if (p.exitCode === null && p.signalCode === null) {
        const gone = new Promise<void>((res) => p.once("exit", () => res()))
        p.kill(signal)
        yield* Effect.promise(() => gone)
      }
      if (scope) yield* Scope.close(scope, Exit.void)
      scope = undefined
    })
  yield* start
  yield* Effect.addFinalizer(() => (scope ? Scope.close(scope, Exit.void) : Effect.void))
  const url = `nats://127.0.0.1:${port}`
  return {
    url,
    current: () => server!,
    kill,
    start,
    settings: Layer.succeed(NatsSettings, { servers: url, user: credentials.admin.user, pass: credentials.admin.pass, embedded: server! })
  } satisfies RestartableServer
})
