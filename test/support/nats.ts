/** Test support: a real nats-server per test file (free port, temp store dir), stopped after. */
import { Layer } from "effect"
import { embeddedSettings } from "../../src/streams/connection.js"
import { Nats } from "../../src/streams/connection.js"
import { busLayer } from "../../src/streams/bus.js"
import type { TopologyOptions } from "../../src/streams/topology.js"

/** NatsSettings + Nats (embedded, admin) for a test scope. */
export const natsTestLayer = () => Nats.Default.pipe(Layer.provideMerge(embeddedSettings()))

/** Nats + the topology (streams, consumers, buckets, object store). */
export const busTestLayer = (options: TopologyOptions = {}) => {
  const nats = natsTestLayer()
  return busLayer(options).pipe(Layer.provideMerge(nats))
}
