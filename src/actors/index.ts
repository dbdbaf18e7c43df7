/**
 * The system as a composition of layers: each actor is a Layer that forks a scoped fiber
 * consuming its stage. `tickflow run` composes all of them; `tickflow actors --only ...` and
 * `tickflow executor` compose a subset, anywhere, pointed at the same NATS.
 */
import { Context, Deferred, Effect, Fiber, Layer, type Scope } from "effect"
import type { Nats } from "../streams/connection.js"
import type { Bus } from "../streams/bus.js"
import type { ActorSettings } from "./common.js"
import { availabilityActor } from "./availability.js"
import { coordinatorActor } from "./coordinator.js"
import { executorActor } from "./executor.js"
import { loaderActor } from "./loader.js"
import { qualityActor } from "./quality.js"
import { requirementsActor } from "./requirements.js"
import { deadLetterWatcher, reporterActor } from "./reporter.js"
import { sessionActor } from "./session.js"
import { Shutdown } from "./common.js"
import { StrategyStore } from "../strategies-store.js"
import { workQueueJanitor } from "../streams/janitor.js"

type ActorEnv = Nats | Bus | ActorSettings | Shutdown | StrategyStore

export const ACTOR_NAMES = ["coordinator", "availability", "requirements", "loader", "quality", "executor", "reporter", "session"] as const
export type ActorName = (typeof ACTOR_NAMES)[number]

const ACTORS = {
  // The work-queue janitor rides with the coordinator: one per system, with the right to manage streams.
  coordinator: Effect.all([coordinatorActor, workQueueJanitor()], { concurrency: "unbounded", discard: true }),
  availability: availabilityActor,
  requirements: requirementsActor,
  loader: loaderActor,
  quality: qualityActor,
  executor: executorActor,
  // The dead-letter watcher rides with the reporter: both look after finished work.
  reporter: Effect.all([reporterActor, deadLetterWatcher], { concurrency: "unbounded", discard: true }),
  session: sessionActor
} as const

export const parseActorList = (text: string): ActorName[] => {
  const names = text.split(",").map((s) => s.trim()).filter(Boolean)
  const bad = names.filter((n) => !(ACTOR_NAMES as readonly string[]).includes(n))
  if (bad.length > 0) throw new Error(`--only: ${bad.map((b) => JSON.stringify(b)).join(", ")} is not an actor; choose from ${ACTOR_NAMES.join(", ")}`)
  return names as ActorName[]
}

/** The running actors of this process, to wait for after a graceful shutdown. */
export class RunningActors extends Context.Tag("tickflow/RunningActors")<
  RunningActors,
  { readonly names: ReadonlyArray<ActorName>; readonly stopGracefully: (timeoutMs: number) => Effect.Effect<void> }
>() {}

export const actorsLayer = (names: ReadonlyArray<ActorName> = ACTOR_NAMES) =>
  Layer.scoped(
    RunningActors,
    Effect.gen(function* () {
      const shutdown = yield* Shutdown
      const fibers = yield* Effect.forEach(names, (name) =>
        Effect.forkScoped(Effect.scoped(ACTORS[name] as Effect.Effect<void, unknown, Scope.Scope | ActorEnv>).pipe(Effect.annotateLogs({ actor: name })))
      )
      return {
        names,
        stopGracefully: (timeoutMs: number) =>
          Effect.gen(function* () {
            yield* Deferred.succeed(shutdown, undefined)
            // In-flight messages finish; what does not finish in time is redelivered elsewhere.
            yield* Fiber.joinAll(fibers).pipe(Effect.timeout(timeoutMs), Effect.ignore)
          })
      }
    })
  ).pipe(
    // requirements and executors resolve strategies through it: built-ins, or name@hash fetched
    // from the strategy store into this process's private cache
    Layer.provide(StrategyStore.Default)
  )
