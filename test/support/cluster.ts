/**
 * Test support: a real three-node JetStream cluster of nats-server on loopback, each node with
 * its own free client, cluster (route) and monitoring ports and its own temp store dir, all
 * running the repo's nats.conf (same users and permissions as production). A test can find the
 * leader of a stream (or of the JetStream meta group), SIGKILL that node and start it again on
 * the same store, as an operator's restart would.
 *
 * Each node runs the repo's nats-cluster.conf (the file the compose `cluster` profile runs:
 * nats.conf included, `server_name` from TF_SERVER_NAME, `cluster { name, listen, routes }`),
 * copied into its temp dir next to nats.conf, with loopback ports, the routes and the
 * JetStream store dir given on the command line:
 *
 *   TF_SERVER_NAME=tf-n1 nats-server -c <dir>/nats-cluster.conf -a 127.0.0.1 -p <client port>
 *     -m <monitor port> -js -sd <dir>/store --cluster nats://127.0.0.1:<route port>
 *     --routes nats://127.0.0.1:<route port 1>,nats://127.0.0.1:<route port 2>,...
 *
 * Children are started asynchronously (never spawnSync: it would block the test worker).
 */
import { spawn, type ChildProcess } from "node:child_process"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { Effect, Layer } from "effect"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { jetstreamManager, type JetStreamManager, type StreamInfo } from "@nats-io/jetstream"
import { credentialEnv, defaultNatsConf, findNatsServer, freePort, randomCredentials, type Role, type RoleCredentials } from "../../src/streams/embedded.js"
import { NatsSettings } from "../../src/streams/connection.js"
import { exited } from "./child.js"

export interface ClusterNode {
  /** server_name, as streams report their leader and replicas */
  readonly name: string
  readonly url: string
  readonly port: number
  readonly routePort: number
  readonly monitorPort: number
  readonly dir: string
  /** the current incarnation (undefined while killed) */
  readonly process: () => ChildProcess | undefined
  /** the last lines the node printed (for failure messages) */
  readonly output: () => string
}

export interface NatsCluster {
  readonly nodes: ReadonlyArray<ClusterNode>
  /** every node's client URL, comma-separated, as NATS_URL takes them */
  readonly servers: string
  readonly credentials: RoleCredentials
  /** NatsSettings (admin) pointing at all three nodes */
  readonly settings: Layer.Layer<NatsSettings>
  /** environment for a child process connecting as `role` to all three nodes */
  readonly roleEnv: (role: Role) => Record<string, string>
  readonly node: (name: string) => ClusterNode
  /** stream info through the cluster's own admin connection (undefined while unanswered) */
  readonly streamInfo: (stream: string, opts?: { subjects_filter?: string }) => Promise<StreamInfo | undefined>
  /** the server_name leading a stream now (undefined during an election) */
  readonly streamLeader: (stream: string) => Promise<string | undefined>
  /** the server_name leading a durable consumer's raft group */
  readonly consumerLeader: (stream: string, consumer: string) => Promise<string | undefined>
  /** the server_name leading the JetStream meta group (stream and consumer management) */
  readonly metaLeader: () => Promise<string | undefined>
  /** true when `name` answers /healthz with 200 (JetStream up, its streams and consumers current) */
  readonly healthy: (name: string) => Promise<boolean>
  /** every node running and healthy, every listed stream led and all its replicas current */
  readonly settled: (streams: ReadonlyArray<string>) => Promise<boolean>
  /** stop a node with `signal` and wait until it is gone */
  readonly kill: (name: string, signal?: "SIGKILL" | "SIGTERM") => Promise<void>
  /** start a stopped node again (same ports, same store) and wait until its /healthz answers 200 */
  readonly start: (name: string) => Promise<void>
  readonly stop: () => Promise<void>
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Distinct free ports (a probe may hand the same port out twice). */
const freePorts = async (n: number): Promise<number[]> => {
  const ports = new Set<number>()
  while (ports.size < n) ports.add(await freePort())
  return [...ports]
}

/** nats-cluster.conf next to this file's repo root (test/support → ../..). */
const clusterConf = () => join(dirname(defaultNatsConf()), "nats-cluster.conf")

const getJson = async (url: string): Promise<unknown> => {
  const r = await fetch(url, { signal: AbortSignal.timeout(2_000) })
  if (!r.ok) throw new Error(`${url}: ${r.status}`)
  return r.json()
}

/** Start a cluster of `size` nodes and wait until each is healthy (a meta leader elected). */
export const startCluster = async (size = 3, readyTimeoutMs = 120_000): Promise<NatsCluster> => {
  const bin = await Effect.runPromise(findNatsServer)
  const confText = await readFile(defaultNatsConf(), "utf8")
  const clusterConfText = await readFile(clusterConf(), "utf8")
  const credentials = randomCredentials()
  const ports = await freePorts(size * 3)
  const specs = await Promise.all(
    Array.from({ length: size }, async (_, i) => ({
      name: `tf-n${i + 1}`,
      port: ports[i * 3],
      routePort: ports[i * 3 + 1],
      monitorPort: ports[i * 3 + 2],
      dir: await mkdtemp(join(tmpdir(), `tf-cluster-n${i + 1}-`))
    }))
  )
  const routes = specs.map((s) => `nats://127.0.0.1:${s.routePort}`).join(",")
  for (const s of specs) {
    // nats-cluster.conf includes ./nats.conf: both side by side
    await writeFile(join(s.dir, "nats.conf"), confText)
    await writeFile(join(s.dir, "nats-cluster.conf"), clusterConfText)
  }

  const procs = new Map<string, ChildProcess | undefined>()
  const outputs = new Map<string, string>()
  const spawnNode = (s: (typeof specs)[number]) => {
    const args = [
      ...["-c", join(s.dir, "nats-cluster.conf"), "-a", "127.0.0.1", "-p", String(s.port), "-m", String(s.monitorPort)],
      ...["-js", "-sd", join(s.dir, "store"), "--cluster", `nats://127.0.0.1:${s.routePort}`, "--routes", routes]
    ]
    const child = spawn(bin, args, {
      cwd: s.dir,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...credentialEnv(credentials), TF_SERVER_NAME: s.name }
    })
    const keep = (b: Buffer) => outputs.set(s.name, ((outputs.get(s.name) ?? "") + b.toString("utf8")).slice(-6_000))
    child.stdout!.on("data", keep)
    child.stderr!.on("data", keep)
    procs.set(s.name, child)
    return child
  }
  const alive = (c: ChildProcess | undefined): boolean => c !== undefined && c.exitCode === null && c.signalCode === null

  const healthy = async (name: string) => {
    const s = specs.find((x) => x.name === name)!
    if (!alive(procs.get(name))) return false
    try {
      const r = await fetch(`http://127.0.0.1:${s.monitorPort}/healthz`, { signal: AbortSignal.timeout(2_000) })
      return r.ok
    } catch {
      return false
    }
  }

  /** Start a node; wait until it answers /healthz (its JetStream caught up with the cluster). */
  const startNode = async (s: (typeof specs)[number], timeoutMs: number) => {
    const child = spawnNode(s)
    const deadline = Date.now() + timeoutMs
    while (!(await healthy(s.name))) {
      if (!alive(child)) throw new Error(`nats-server ${s.name} exited (${child.exitCode ?? child.signalCode}):\n${outputs.get(s.name)}`)
      if (Date.now() > deadline) throw new Error(`nats-server ${s.name} not healthy after ${timeoutMs} ms:\n${outputs.get(s.name)}`)
      await sleep(100)
    }
  }

  const killNode = async (name: string, signal: "SIGKILL" | "SIGTERM" = "SIGKILL") => {
    const c = procs.get(name)
    if (c && alive(c)) {
      const gone = exited(c)
      c.kill(signal)
      await gone
    }
    procs.set(name, undefined)
  }

  const cleanup = async () => {
    await Promise.all(specs.map((s) => killNode(s.name, "SIGKILL")))
    await Promise.all(specs.map((s) => rm(s.dir, { recursive: true, force: true })))
  }

  try {
    // All at once: a node alone cannot elect a meta leader, so none is healthy before its peers start.
    await Promise.all(specs.map((s) => startNode(s, readyTimeoutMs)))
  } catch (e) {
    await cleanup()
    throw e
  }

  const servers = specs.map((s) => `nats://127.0.0.1:${s.port}`).join(",")
  // The cluster's own admin connection for leader look-ups: every node, reconnecting for ever.
  let admin: Promise<{ nc: NatsConnection; jsm: JetStreamManager }> | undefined
  const jsm = () =>
    (admin ??= (async () => {
      const nc = await connect({
        servers: servers.split(","),
        user: credentials.admin.user,
        pass: credentials.admin.pass,
        name: "tf-cluster-support",
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250
      })
      return { nc, jsm: await jetstreamManager(nc, { timeout: 2_000 }) }
    })()).then((a) => a.jsm)

  const streamInfo = async (stream: string, opts?: { subjects_filter?: string }) => {
    try {
      return await (await jsm()).streams.info(stream, opts)
    } catch {
      return undefined
    }
  }
  const metaLeader = async () => {
    for (const s of specs) {
      if (!alive(procs.get(s.name))) continue
      try {
        const jsz = (await getJson(`http://127.0.0.1:${s.monitorPort}/jsz`)) as { meta_cluster?: { leader?: string } }
        if (jsz.meta_cluster?.leader) return jsz.meta_cluster.leader
      } catch {
        /* try the next node */
      }
    }
    return undefined
  }

  const nodes: ClusterNode[] = specs.map((s) => ({
    name: s.name,
    url: `nats://127.0.0.1:${s.port}`,
    port: s.port,
    routePort: s.routePort,
    monitorPort: s.monitorPort,
    dir: s.dir,
    process: () => procs.get(s.name),
    output: () => outputs.get(s.name) ?? ""
  }))

  return {
    nodes,
    servers,
    credentials,
    settings: Layer.succeed(NatsSettings, { servers, user: credentials.admin.user, pass: credentials.admin.pass, name: `tickflow-test-${process.pid}` }),
    roleEnv: (role) => ({ NATS_URL: servers, NATS_USER: credentials[role].user, NATS_PASSWORD: credentials[role].pass }),
    node: (name) => {
      const n = nodes.find((x) => x.name === name)
      if (!n) throw new Error(`no node ${name}; nodes: ${nodes.map((x) => x.name).join(", ")}`)
      return n
    },
    streamInfo,
    streamLeader: async (stream) => (await streamInfo(stream))?.cluster?.leader || undefined,
    consumerLeader: async (stream, consumer) => {
      try {
        return (await (await jsm()).consumers.info(stream, consumer)).cluster?.leader || undefined
      } catch {
        return undefined
      }
    },
    metaLeader,
    healthy,
    settled: async (streams) => {
      for (const s of specs) if (!(await healthy(s.name))) return false
      for (const name of streams) {
        const info = await streamInfo(name)
        const c = info?.cluster
        if (!c?.leader) return false
        const replicas = c.replicas ?? []
        if (replicas.length !== specs.length - 1 || replicas.some((r) => !r.current || r.offline)) return false
      }
      return true
    },
    kill: killNode,
    start: async (name) => {
      const s = specs.find((x) => x.name === name)
      if (!s) throw new Error(`no node ${name}`)
      if (alive(procs.get(name))) return
      // The port may be held for a moment by another test's free-port probe: try again.
      for (let attempt = 1; ; attempt++) {
        try {
          return await startNode(s, 120_000)
        } catch (e) {
          if (attempt >= 3) throw e
          await killNode(name)
          await sleep(500)
        }
      }
    },
    stop: async () => {
      const a = admin
      admin = undefined
      if (a) await a.then((x) => x.nc.close()).catch(() => undefined)
      await cleanup()
    }
  }
}

/** The cluster for the current scope (stopped, store dirs removed, when it closes). */
export const natsCluster = (size = 3) =>
  Effect.acquireRelease(
    Effect.promise(() => startCluster(size)),
    (c) => Effect.promise(() => c.stop())
  )
