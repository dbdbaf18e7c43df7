/**
 * The benchmarks' tickflow: every actor but the executor in the benchmark's own process, on a
 * private embedded nats-server, with the catalog at `root`. Executors run as child processes
 * (spawnExecutors), as in production, so their CPU and memory can be measured apart.
 */
import { Layer } from "effect"
import { actorSettingsLayer, shutdownLayer } from "../src/actors/common.js"
import { ACTOR_NAMES, actorsLayer } from "../src/actors/index.js"
import { busLayer } from "../src/streams/bus.js"
import { embeddedSettings, Nats } from "../src/streams/connection.js"

export const stageActorsOnEmbeddedServer = (root: string) => {
  const infra = Layer.mergeAll(actorSettingsLayer({ dataRoot: root }), shutdownLayer).pipe(
    Layer.provideMerge(busLayer()),
    Layer.provideMerge(Nats.Default),
    Layer.provideMerge(embeddedSettings())
  )
  return actorsLayer(ACTOR_NAMES.filter((n) => n !== "executor")).pipe(Layer.provideMerge(infra))
}
