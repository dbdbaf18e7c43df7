/** Test support: a whole tickflow system in this process on a private nats-server. */
import { Layer } from "effect"
import { actorSettingsLayer, shutdownLayer, type ActorSettingsShape } from "../../src/actors/common.js"
import { actorsLayer, ACTOR_NAMES, type ActorName } from "../../src/actors/index.js"
import { busLayer } from "../../src/streams/bus.js"
import { embeddedSettings, Nats, type NatsSettings } from "../../src/streams/connection.js"
import type { TopologyOptions } from "../../src/streams/topology.js"

export const systemTestLayer = (opts: {
  actors?: ReadonlyArray<ActorName>
  settings?: Partial<ActorSettingsShape>
  topology?: TopologyOptions
  /** where to connect (default: a private embedded nats-server for this scope) */
  nats?: Layer.Layer<NatsSettings, unknown>
} = {}) => {
  const base = Layer.mergeAll(actorSettingsLayer(opts.settings ?? {}), shutdownLayer).pipe(
    Layer.provideMerge(busLayer(opts.topology ?? {})),
    Layer.provideMerge(Nats.Default),
    Layer.provideMerge(opts.nats ?? embeddedSettings())
  )
  return actorsLayer(opts.actors ?? ACTOR_NAMES).pipe(Layer.provideMerge(base))
}
