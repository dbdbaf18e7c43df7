/**
 * The benchmarks' tickflow: actors in the benchmark's own process on a private embedded
 * nats-server. The pipeline and memory benchmarks run every actor but the executor here and
 * executors as child processes (spawnExecutors), as in production, so their CPU and memory can
 * be measured apart; the session benchmark runs all of them here, the security one only the
 * coordinator.
 */
import { Layer } from "effect"
import { actorSettingsLayer, shutdownLayer, type ActorSettingsShape } from "../src/actors/common.js"
import { ACTOR_NAMES, actorsLayer, type ActorName } from "../src/actors/index.js"
import { busLayer } from "../src/streams/bus.js"
import { embeddedSettings, Nats } from "../src/streams/connection.js"

export const actorsOnEmbeddedServer = (actors: ReadonlyArray<ActorName>, settings: Partial<ActorSettingsShape> = {}) => {
  const infra = Layer.mergeAll(actorSettingsLayer(settings), shutdownLayer).pipe(
    Layer.provideMerge(busLayer()),
    Layer.provideMerge(Nats.Default),
    Layer.provideMerge(embeddedSettings())
  )
  return actorsLayer([...actors]).pipe(Layer.provideMerge(infra))
}

/** Every actor but the executor, with the catalog at `root`. */
export const stageActorsOnEmbeddedServer = (root: string) =>
  actorsOnEmbeddedServer(
    ACTOR_NAMES.filter((n) => n !== "executor"),
    { dataRoot: root }
  )
