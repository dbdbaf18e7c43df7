/**
 * nats.conf least privilege, measured: each role connects to a real nats-server started with
 * the repo's nats.conf and tries every action; the table says what must be allowed and what
 * denied (both directions). Denied = the server's permissions violation; an action that fails
 * any other way (a timeout) fails the test, so "denied" never means "slow".
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect, Exit, Layer, Scope } from "effect"
import { connect, PermissionViolationError, type NatsConnection } from "@nats-io/transport-node"
import { AckPolicy, jetstream, jetstreamManager, JetStreamApiError } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import { Objm } from "@nats-io/obj"
import { embeddedNatsServer, ROLES, type EmbeddedServer, type Role } from "../../src/streams/embedded.js"
import { Nats, NatsSettings } from "../../src/streams/connection.js"
import { ensureTopology } from "../../src/streams/topology.js"
import { openRejectionBucket } from "../../src/security/rejections.js"
import { StrategyStore } from "../../src/strategies-store.js"

type Outcome = "allowed" | "denied"
const A: Outcome = "allowed"
const D: Outcome = "denied"

const SEED_STRATEGY = "seed@0123456789abcdef0123456789abcdef"

/** What each action does, as the connected role. */
const ACTIONS: Record<string, (nc: NatsConnection) => Promise<unknown>> = {
  submit: (nc) => jetstream(nc, { timeout: 5_000 }).publish("tf.submit", "{}"),
  readResults: async (nc) => {
    const c = await jetstream(nc, { timeout: 5_000 }).consumers.get("TF_RESULTS", { filter_subjects: "tf.res.b1.>" })
    const m = await c.next({ expires: 2_000 })
    if (!m) throw new Error("no result read")
  },
  readEvents: async (nc) => {
    const c = await jetstream(nc, { timeout: 5_000 }).consumers.get("TF_EVENTS", { filter_subjects: "tf.evt.b1.>" })
    const m = await c.next({ expires: 2_000 })
    if (!m) throw new Error("no event read")
  },
  // what a redelivered execution chunk asks: the last result on a scenario's subject
  readLastResult: async (nc) => {
    const m = await (await jetstreamManager(nc, { timeout: 5_000 })).streams.getMessage("TF_RESULTS", { last_by_subj: "tf.res.b1.s1" })
    if (!m) throw new Error("no result read")
  },
  readRecord: async (nc) => {
    const kv = await new Kvm(nc).open("tf_batches")
    if (!(await kv.get("b1"))) throw new Error("no record read")
  },
  writeRecord: async (nc) => (await new Kvm(nc).open("tf_batches")).put("b1", '{"forged":true}'),
  purgeRecord: async (nc) => (await new Kvm(nc).open("tf_batches")).purge("b2"),
  publishResult: (nc) => jetstream(nc, { timeout: 5_000 }).publish("tf.res.b1.forged", "{}"),
  publishWork: (nc) => jetstream(nc, { timeout: 5_000 }).publish("tf.scn.exec.b1", "{}"),
  pullExec: async (nc) => (await jetstream(nc, { timeout: 5_000 }).consumers.get("TF_PIPELINE", "executor")).next({ expires: 1_000 }),
  writeCache: async (nc) => (await new Kvm(nc).open("tf_cache")).put("forged.b1.g1", '{"v":1,"results":{}}'),
  deleteConsumer: async (nc) => (await jetstreamManager(nc, { timeout: 5_000 })).consumers.delete("TF_PIPELINE", "coordinator"),
  purgeStream: async (nc) => (await jetstreamManager(nc, { timeout: 5_000 })).streams.purge("TF_PIPELINE"),
  publishStrategy: async (nc) => (await new Objm(nc).open("tf_strategies")).putBlob({ name: `x${Date.now()}@00000000000000000000000000000000` }, new TextEncoder().encode("export default 1")),
  readStrategy: async (nc) => {
    if (!(await (await new Objm(nc).open("tf_strategies")).getBlob(SEED_STRATEGY))) throw new Error("no strategy read")
  },
  readSlice: async (nc) => {
    if (!(await (await new Objm(nc).open("tf_data")).getBlob("slice1"))) throw new Error("no slice read")
  },
  writeSlice: async (nc) => (await new Objm(nc).open("tf_data")).putBlob({ name: "forged" }, new Uint8Array([1, 2, 3])),
  // a session command: answered by the stand-in responder below when allowed
  sessionCommand: (nc) => nc.request("tf.ses.t1.cmd", "{}", { timeout: 5_000 }),
  readRejection: async (nc) => {
    if (!(await (await new Kvm(nc).open("tf_rejections")).get("1"))) throw new Error("no rejection read")
  }
}

//                          admin actor executor researcher submitter viewer
const EXPECTED: Record<string, [Outcome, Outcome, Outcome, Outcome, Outcome, Outcome]> = {
  submit: /*            */ [A, A, D, A, A, D],
  readResults: /*       */ [A, A, D, A, A, A],
  readEvents: /*        */ [A, A, D, A, A, A],
  readLastResult: /*    */ [A, A, A, D, D, D],
  readRecord: /*        */ [A, A, D, A, A, A],
  writeRecord: /*       */ [A, A, D, D, D, D],
  purgeRecord: /*       */ [A, A, D, D, D, D],
  publishResult: /*     */ [A, A, A, D, D, D],
  publishWork: /*       */ [A, A, D, D, D, D],
  pullExec: /*          */ [A, A, A, D, D, D],
  writeCache: /*        */ [A, A, A, D, D, D],
  deleteConsumer: /*    */ [A, A, D, D, D, D],
  purgeStream: /*       */ [A, A, D, D, D, D],
  publishStrategy: /*   */ [A, A, D, A, D, D],
  readStrategy: /*      */ [A, A, A, A, D, D],
  readSlice: /*         */ [A, A, A, D, D, D],
  writeSlice: /*        */ [A, A, D, D, D, D],
  readRejection: /*     */ [A, A, D, A, A, D],
  sessionCommand: /*    */ [A, A, D, A, D, D]
}

const isDenial = (e: unknown): boolean => {
  for (let x: unknown = e, i = 0; x && i < 5; x = (x as { cause?: unknown }).cause, i++)
    if (x instanceof PermissionViolationError || /permissions violation/i.test(String((x as Error).message))) return true
  return false
}

/** allowed: it worked or the server answered (e.g. consumer not found); denied: a permissions violation. */
const attempt = async (nc: NatsConnection, action: (nc: NatsConnection) => Promise<unknown>): Promise<Outcome | string> => {
  // A pull's request goes out as a plain publish: its denial arrives on the status stream.
  let deniedAsync = false
  const watcher = (async () => {
    for await (const s of nc.status()) if (s.type === "error" && isDenial((s as { error?: unknown }).error)) deniedAsync = true
  })()
  void watcher
  try {
    await action(nc)
    return deniedAsync ? D : A
  } catch (e) {
    if (isDenial(e) || deniedAsync) return D
    if (e instanceof JetStreamApiError) return A
    return `error: ${String((e as Error)?.message ?? e)}`
  }
}

let scope: Scope.CloseableScope
let server: EmbeddedServer
/** Stands in for the session actor: answers every session command (a role's request reaches it only if allowed). */
let sessionResponder: NatsConnection
const adminLayer = () =>
  Nats.Default.pipe(
    Layer.provide(Layer.succeed(NatsSettings, { servers: server.url, user: server.credentials.admin.user, pass: server.credentials.admin.pass }))
  )
/** The topology as a fresh start has it (the coordinator consumer again after a role deleted it). */
const restoreTopology = () => Effect.runPromise(ensureTopology().pipe(Effect.provide(adminLayer()), Effect.scoped))

beforeAll(async () => {
  scope = Effect.runSync(Scope.make())
  server = await Effect.runPromise(embeddedNatsServer().pipe(Scope.extend(scope)))
  await Effect.runPromise(
    Effect.gen(function* () {
      const bus = yield* ensureTopology()
      const rejections = yield* openRejectionBucket(60_000)
      yield* StrategyStore.use((s) => s.publishCode("seed", "export default 1")).pipe(Effect.ignore)
      yield* Effect.promise(async () => {
        await bus.batches.put("b1", '{"v":1}')
        await bus.batches.put("b2", '{"v":1}')
        await rejections.put("1", '{"v":1}')
        await bus.data.putBlob({ name: "slice1" }, new Uint8Array([9, 9, 9]))
      })
      const { js, jsm, objm } = yield* Nats
      yield* Effect.promise(() => js.publish("tf.res.b1.s1", '{"v":1}'))
      yield* Effect.promise(() => js.publish("tf.evt.b1.batch", '{"v":1}'))
      // The reporter follows results with ordered consumers now (ensureTopology removes the old
      // durable): a durable of that name is created here so the denials are tested against a
      // consumer that exists, not answered by "consumer not found".
      yield* Effect.promise(() => jsm.consumers.add("TF_RESULTS", { durable_name: "reporter", ack_policy: AckPolicy.Explicit }))
      // the seed strategy under a fixed key (its content need not hash to it: reads only)
      yield* Effect.promise(async () => (await objm.open("tf_strategies")).putBlob({ name: SEED_STRATEGY }, new TextEncoder().encode("export default 1")))
    }).pipe(Effect.provide(StrategyStore.Default), Effect.provide(adminLayer()), Effect.scoped)
  )
  sessionResponder = await connect({ servers: server.url, user: server.credentials.actor.user, pass: server.credentials.actor.pass })
  sessionResponder.subscribe("tf.ses.*.cmd", { callback: (_e, m) => {
      m.respond('{"ok":true}')
    }
  })
  await sessionResponder.flush()
}, 60_000)

afterAll(async () => {
  await sessionResponder?.close()
  await Effect.runPromise(Scope.close(scope, Exit.void))
})

describe("nats.conf roles", () => {
  // admin last: its allowed deletes would change what the others see
  const order: Role[] = ["viewer", "submitter", "researcher", "executor", "actor", "admin"]
  it.each(order)("%s: every action allowed or denied as the table says", async (role) => {
    expect(ROLES).toContain(role)
    const nc = await connect({ servers: server.url, user: server.credentials[role].user, pass: server.credentials[role].pass, noAsyncTraces: true })
    const actual: Record<string, Outcome | string> = {}
    const expected: Record<string, Outcome> = {}
    try {
      for (const [name, action] of Object.entries(ACTIONS)) {
        actual[name] = await attempt(nc, action)
        expected[name] = EXPECTED[name][ROLES.indexOf(role)]
        if (name === "deleteConsumer" && actual[name] === A) await restoreTopology()
      }
    } finally {
      await nc.close()
    }
    expect(actual).toEqual(expected)
  }, 120_000)
})
