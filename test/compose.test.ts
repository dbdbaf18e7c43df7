/**
 * docker-compose.yml, Dockerfile and nats.conf must agree with each other and with the repo;
 * Docker does not run here, so these checks read the files. Each one fails on a real mistake:
 * a password nats.conf reads but compose never sets, a COPY of a missing path, an actor that no
 * service runs, an executor that cannot be scaled.
 */
import { existsSync, readFileSync } from "node:fs"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join, normalize } from "node:path"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { parse as parseYaml } from "yaml"
import { ACTOR_NAMES } from "../src/actors/index.js"
import { credentialEnv, findNatsServer, randomCredentials } from "../src/streams/embedded.js"
import { runChild } from "./support/child.js"

const ROOT = join(import.meta.dirname, "..")
const read = (p: string): string => readFileSync(join(ROOT, p), "utf8")
const inRepo = (p: string): boolean => existsSync(join(ROOT, p))

interface Service {
  image?: string
  build?: string | { context?: string; dockerfile?: string }
  command?: string | string[]
  entrypoint?: string | string[]
  environment?: Record<string, string | number | boolean | null> | string[]
  volumes?: Array<string | { type: string; source?: string; target: string; read_only?: boolean }>
  ports?: unknown[]
  container_name?: string
  hostname?: string
  healthcheck?: { test?: string | string[] }
  depends_on?: string[] | Record<string, { condition?: string }>
  deploy?: { replicas?: number }
  profiles?: string[]
}
const compose = parseYaml(read("docker-compose.yml")) as { services: Record<string, Service>; volumes?: Record<string, unknown> }
const services = compose.services
const natsConf = read("nats.conf")
const dockerfile = read("Dockerfile")

/** `${VAR:-default}` as compose resolves it without a .env file: the default. */
const interpolate = (s: string): string => s.replace(/\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}/g, (_m, _v, d: string | undefined) => d ?? "")
const envOf = (svc: Service): Record<string, string> => {
  const env = svc.environment ?? {}
  if (Array.isArray(env)) return Object.fromEntries(env.map((kv) => [kv.split("=")[0], kv.slice(kv.indexOf("=") + 1)]))
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v ?? "")]))
}
const argv = (cmd: string | string[] | undefined): string[] => (Array.isArray(cmd) ? cmd : (cmd ?? "").split(/\s+/).filter(Boolean))
const mounts = (svc: Service) =>
  (svc.volumes ?? []).map((v) => {
    if (typeof v !== "string") return { source: v.source ?? "", target: v.target, readOnly: v.read_only === true }
    const [source, target, mode] = interpolate(v).split(":")
    return { source, target, readOnly: mode === "ro" }
  })
const isNamedVolume = (source: string): boolean => !/^[./~]/.test(source)

/** nats.conf without comments and quoted strings (where `$JS.API.>` subjects live). */
const natsConfCode = natsConf
  .split("\n")
  .map((l) => l.replace(/#.*$/, ""))
  .join("\n")
  .replace(/"[^"]*"/g, '""')
/** Variables nats.conf defines itself (`ADMIN = {`) are not environment variables. */
const confDefined = new Set([...natsConfCode.matchAll(/^\s*([A-Za-z_][A-Za-z0-9_]*)\s*[=:]/gm)].map((m) => m[1]))
const confEnvVars = [...new Set([...natsConfCode.matchAll(/\$([A-Z_][A-Z0-9_]*)/g)].map((m) => m[1]))].filter((v) => !confDefined.has(v))
/** user → the variable holding its password. */
const confUsers = Object.fromEntries(
  [...natsConfCode.matchAll(/user:\s*([A-Za-z0-9_-]+)\s*,\s*password:\s*\$([A-Z_][A-Z0-9_]*)/g)].map((m) => [m[1], m[2]])
)

describe("docker-compose.yml", () => {
  it("names the services nats, actors and executor", () => {
    expect(Object.keys(services)).toEqual(expect.arrayContaining(["nats", "actors", "executor"]))
  })

  describe("nats", () => {
    const nats = services.nats
    const args = argv(nats.command)
    const argAfter = (flag: string) => args[args.indexOf(flag) + 1]

    it("mounts the repo's nats.conf where -c points, and keeps the JetStream store on a named volume", () => {
      const conf = mounts(nats).find((m) => m.target === argAfter("-c"))
      expect(conf, `no volume mounted at ${argAfter("-c")}`).toBeDefined()
      expect(normalize(conf!.source)).toBe("nats.conf")
      expect(inRepo(conf!.source)).toBe(true)
      expect(args).toContain("-js")
      const store = argAfter("-sd")
      const storeMount = mounts(nats).find((m) => store.startsWith(`${m.target}/`) || store === m.target)
      expect(storeMount, `-sd ${store} is not on a volume`).toBeDefined()
      expect(isNamedVolume(storeMount!.source)).toBe(true)
      expect(Object.keys(compose.volumes ?? {})).toContain(storeMount!.source)
    })

    it("sets every environment variable nats.conf reads, with a default that starts with a letter", () => {
      expect(confEnvVars.length).toBeGreaterThanOrEqual(5)
      const env = envOf(nats)
      for (const v of confEnvVars) {
        expect(env[v], `nats service does not set ${v}`).toBeDefined()
        expect(env[v]).toContain(`\${${v}`)
        // nats-server parses the value as a config token: a leading digit would make it a number
        expect(interpolate(env[v]), `${v} default`).toMatch(/^[A-Za-z][A-Za-z0-9_-]*$/)
      }
    })

    it("has a healthcheck on the monitoring port's /healthz that the others wait for", () => {
      expect(args).toContain("-m")
      expect(argv(nats.healthcheck?.test).join(" ")).toContain(`:${argAfter("-m")}/healthz`)
      for (const name of ["actors", "executor"]) {
        const dep = services[name].depends_on as Record<string, { condition?: string }>
        expect(dep?.nats?.condition, `${name} depends_on nats`).toBe("service_healthy")
      }
    })
  })

  it(".env.example sets every password nats.conf reads, each starting with a letter", () => {
    const example = Object.fromEntries(
      read(".env.example")
        .split("\n")
        .filter((l) => /^[A-Z_]+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)])
    )
    for (const v of confEnvVars) expect(example[v], `.env.example: ${v}`).toMatch(/^[A-Za-z][A-Za-z0-9_-]*$/)
  })

  it("connects actors and executors to nats as a nats.conf user with that user's password", () => {
    const natsEnv = envOf(services.nats)
    const listenPort = /listen:\s*[\d.]*:(\d+)/.exec(natsConfCode)?.[1]
    for (const [name, user] of [["actors", "actor"], ["executor", "executor"]] as const) {
      const env = envOf(services[name])
      expect(env.NATS_URL).toBe(`nats://nats:${listenPort}`)
      expect(env.NATS_USER).toBe(user)
      const passVar = confUsers[user]
      expect(passVar, `nats.conf has no user ${user}`).toBeDefined()
      // same variable, same default, or the server and the client disagree without a .env
      expect(env.NATS_PASSWORD).toBe(natsEnv[passVar])
    }
  })

  it("builds from Dockerfiles that exist, into one image shared by actors and executors", () => {
    for (const [name, svc] of Object.entries(services)) {
      if (svc.build === undefined) continue
      const context = typeof svc.build === "string" ? svc.build : (svc.build.context ?? ".")
      const file = typeof svc.build === "string" ? "Dockerfile" : (svc.build.dockerfile ?? "Dockerfile")
      expect(inRepo(context), `${name}: build context ${context}`).toBe(true)
      expect(inRepo(join(context, file)), `${name}: ${file}`).toBe(true)
    }
    expect(services.actors.build).toBeDefined()
    expect(services.executor.image).toBe(services.actors.image)
  })

  it("lets the executor scale: no container_name, hostname or published ports", () => {
    const ex = services.executor
    expect(ex.container_name).toBeUndefined()
    expect(ex.hostname).toBeUndefined()
    expect(ex.ports ?? []).toEqual([])
  })

  it("runs tickflow commands the CLI defines, and every actor in some service", () => {
    const entry = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile)
    expect(entry, "Dockerfile has an exec-form ENTRYPOINT").not.toBeNull()
    const entrypoint = JSON.parse(entry![1]) as string[]
    const script = entrypoint.find((a) => /\.(m?js|ts)$/.test(a))!
    expect(inRepo(script), `ENTRYPOINT script ${script}`).toBe(true)
    expect(inRepo("bin/tickflow.mjs")).toBe(true)
    const cliSource = ["src/cli/main.ts", "src/cli/data.ts"].filter(inRepo).map(read).join("\n")
    const commands = new Set([...cliSource.matchAll(/\.command\("([a-z-]+)/g)].map((m) => m[1]))
    const running = new Set<string>()
    for (const name of ["actors", "executor"]) {
      const args = argv(services[name].command)
      expect(commands, `${name}: "${args[0]}" is not a tickflow command`).toContain(args[0])
      if (args[0] === "executor") running.add("executor")
      if (args[0] === "actors") {
        const only = args.includes("--only") ? args[args.indexOf("--only") + 1].split(",") : [...ACTOR_NAMES]
        for (const a of only) expect(ACTOR_NAMES as readonly string[], `--only ${a}`).toContain(a)
        only.forEach((a) => running.add(a))
      }
    }
    expect([...running].sort()).toEqual([...ACTOR_NAMES].sort())
    // the executor is its own service, so --scale executor=N does not duplicate the other actors
    expect(argv(services.actors.command)).not.toContain("executor")
  })

  it("declares every named volume and gives executors the catalog read-only", () => {
    for (const [name, svc] of Object.entries(services))
      for (const m of mounts(svc))
        if (isNamedVolume(m.source)) expect(Object.keys(compose.volumes ?? {}), `${name}: volume ${m.source}`).toContain(m.source)
    const root = envOf(services.executor).TICKFLOW_DATA_ROOT
    const catalog = mounts(services.executor).find((m) => m.target === root)
    expect(catalog, `executor: nothing mounted at TICKFLOW_DATA_ROOT=${root}`).toBeDefined()
    expect(catalog!.readOnly).toBe(true)
    const actorsCatalog = mounts(services.actors).find((m) => m.target === envOf(services.actors).TICKFLOW_DATA_ROOT)
    expect(actorsCatalog?.source).toBe(catalog!.source)
  })
})

describe("Dockerfile", () => {
  const lines = dockerfile
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
  const ignored = read(".dockerignore")
    .split("\n")
    .map((l) => l.trim().replace(/\/$/, ""))
    .filter((l) => l !== "" && !l.startsWith("#") && !l.startsWith("!"))

  it("copies only paths that exist and that .dockerignore does not exclude", () => {
    const copies = lines.filter((l) => /^(COPY|ADD)\s/i.test(l) && !/--from=/.test(l))
    expect(copies.length).toBeGreaterThan(0)
    for (const c of copies) {
      const parts = c.split(/\s+/).slice(1).filter((p) => !p.startsWith("--"))
      for (const src of parts.slice(0, -1)) {
        const path = src.replace(/\/$/, "")
        expect(inRepo(path), `${c}: ${src} does not exist`).toBe(true)
        expect(ignored, `${src} is excluded by .dockerignore`).not.toContain(path)
      }
    }
    const copied = copies.join(" ")
    for (const needed of ["package.json", "package-lock.json", "src/", "bin/", "nats.conf"]) expect(copied).toContain(needed)
  })

  it("installs production dependencies only, and everything it runs is one of them", () => {
    const pkg = JSON.parse(read("package.json")) as { dependencies: Record<string, string>; engines?: { node?: string } }
    expect(lines.some((l) => /npm ci\b.*--omit=dev/.test(l))).toBe(true)
    // the image runs the built JavaScript: built in a stage of its own, no TypeScript loader at run time
    expect(lines.some((l) => /^RUN\s.*scripts\/build\.mjs/.test(l))).toBe(true)
    expect(lines.some((l) => /^COPY\s+--from=build\s+\/app\/dist\/?\s/.test(l))).toBe(true)
    expect(Object.keys(pkg.dependencies)).not.toContain("tsx")
    expect(/^ENTRYPOINT\s+(.*)$/m.exec(dockerfile)?.[1]).not.toContain("tsx")
    expect(/^FROM\s+node:(\d+)/m.exec(dockerfile)?.[1]).toBe(/\d+/.exec(pkg.engines?.node ?? "20")?.[0])
  })

  it("runs as a non-root user", () => {
    const user = lines.filter((l) => /^USER\s/i.test(l)).at(-1)
    expect(user, "no USER instruction").toBeDefined()
    expect(user!.split(/\s+/)[1]).not.toMatch(/^(root|0)(:|$)/)
  })
})

describe("docker-compose.yml for compose v1 and v2", () => {
  it("has no top-level name (compose v1 refuses it)", () => {
    expect(Object.keys(compose)).not.toContain("name")
  })

  it("starts executors only once the actors report the topology in place", () => {
    const dep = (services.executor.depends_on as Record<string, { condition?: string }>).actors
    expect(dep?.condition).toBe("service_healthy")
    const test = argv(services.actors.healthcheck?.test).join(" ")
    // the executor binds the object store (created last) and its durable consumer
    expect(test).toContain("OBJ_tf_data")
    expect(test).toContain('"executor"')
    expect(test).toMatch(/http:\/\/nats:8222\/jsz\?[^"]*consumers=true/)
  })
})

describe("docker-compose.yml profile cluster (three nodes, replicas 3)", () => {
  const clusterConf = read("nats-cluster.conf")
  /** nats-cluster.conf without comments */
  const clusterCode = clusterConf
    .split("\n")
    .map((l) => l.replace(/#.*$/, ""))
    .join("\n")
  const inCluster = (svc: Service) => (svc.profiles ?? []).includes("cluster")
  const nodeNames = Object.entries(services)
    .filter(([, svc]) => inCluster(svc) && (svc.image ?? "").startsWith("nats"))
    .map(([name]) => name)
    .sort()
  const routeListen = /cluster\s*\{[^}]*listen:\s*[\d.]*:(\d+)/.exec(clusterCode)?.[1]
  const routes = [...(/routes:\s*\[([^\]]*)\]/.exec(clusterCode)?.[1] ?? "").matchAll(/nats:\/\/([A-Za-z0-9_.-]+):(\d+)/g)].map((m) => ({ host: m[1], port: m[2] }))
  const clientPort = /listen:\s*[\d.]*:(\d+)/.exec(natsConfCode)?.[1]

  it("has three nats nodes, in profile cluster only, each on nats-cluster.conf with nats.conf beside it", () => {
    expect(nodeNames).toHaveLength(3)
    expect(clusterCode).toMatch(/^\s*include\s+\.\/nats\.conf\s*$/m)
    for (const name of nodeNames) {
      const node = services[name]
      const args = argv(node.command)
      const conf = args[args.indexOf("-c") + 1]
      const mounted = mounts(node)
      expect(normalize(mounted.find((m) => m.target === conf)?.source ?? ""), `${name}: -c ${conf}`).toBe("nats-cluster.conf")
      // the include resolves next to the config file
      expect(normalize(mounted.find((m) => m.target === join(dirname(conf), "nats.conf"))?.source ?? ""), `${name}: nats.conf beside ${conf}`).toBe("nats.conf")
      expect(args).toContain("-js")
      expect(argv(node.healthcheck?.test).join(" ")).toContain(`:${args[args.indexOf("-m") + 1]}/healthz`)
    }
    // the single-server stack has no profile: a plain `docker compose up` runs it as before
    for (const name of ["nats", "actors", "executor"]) expect(services[name].profiles, name).toBeUndefined()
  })

  it("gives each node its own server name and its own named store volume", () => {
    expect(clusterCode).toMatch(/^\s*server_name:\s*\$TF_SERVER_NAME\s*$/m)
    const serverNames = nodeNames.map((n) => envOf(services[n]).TF_SERVER_NAME)
    expect(new Set(serverNames).size).toBe(3)
    const stores = nodeNames.map((n) => {
      const args = argv(services[n].command)
      const store = args[args.indexOf("-sd") + 1]
      const m = mounts(services[n]).find((x) => store.startsWith(`${x.target}/`) || store === x.target)
      expect(m, `${n}: -sd ${store} is not on a volume`).toBeDefined()
      expect(isNamedVolume(m!.source)).toBe(true)
      return m!.source
    })
    expect(new Set(stores).size).toBe(3)
    expect(stores).not.toContain(mounts(services.nats).find((m) => m.target === "/data")?.source)
  })

  it("routes every node to all three: nats-cluster.conf names each node service at the cluster port", () => {
    expect(/cluster\s*\{[^}]*name:\s*[A-Za-z0-9_-]+/.test(clusterCode)).toBe(true)
    expect(routeListen).toBeDefined()
    expect(routes.map((r) => r.host).sort()).toEqual(nodeNames)
    for (const r of routes) expect(r.port, `route to ${r.host}`).toBe(routeListen)
  })

  it("sets on every node each password nats.conf reads, with the single server's defaults", () => {
    const single = envOf(services.nats)
    for (const n of nodeNames) {
      const env = envOf(services[n])
      for (const v of confEnvVars) expect(env[v], `${n}: ${v}`).toBe(single[v])
    }
  })

  it("runs actors and executors with replicas 3, given every node's URL, as their nats.conf users", () => {
    const urls = nodeNames.map((n) => `nats://${n}:${clientPort}`).sort()
    const clusterServices = Object.entries(services).filter(([, svc]) => inCluster(svc) && svc.image === services.actors.image)
    const byCommand = Object.fromEntries(clusterServices.map(([name, svc]) => [argv(svc.command)[0], name]))
    expect(Object.keys(byCommand).sort()).toEqual(["actors", "executor"])
    for (const [single, command] of [["actors", "actors"], ["executor", "executor"]] as const) {
      const name = byCommand[command]
      const svc = services[name]
      const env = envOf(svc)
      expect(env.NATS_URL.split(",").map((u) => u.trim()).sort(), `${name}: NATS_URL`).toEqual(urls)
      expect(env.TICKFLOW_REPLICAS, `${name}: TICKFLOW_REPLICAS`).toBe("3")
      // the same user, password and command as the single-server service
      expect(env.NATS_USER).toBe(envOf(services[single]).NATS_USER)
      expect(env.NATS_PASSWORD).toBe(envOf(services[single]).NATS_PASSWORD)
      expect(argv(svc.command)).toEqual(argv(services[single].command))
      const deps = svc.depends_on as Record<string, { condition?: string }>
      for (const n of nodeNames) expect(deps?.[n]?.condition, `${name} depends_on ${n}`).toBe("service_healthy")
      for (const dep of Object.keys(deps ?? {})) expect(inCluster(services[dep]), `${name} depends on ${dep} outside the profile`).toBe(true)
    }
    // the executors wait for the topology, as any node that is up reports it
    const health = argv(services[byCommand.actors].healthcheck?.test).join(" ")
    for (const n of nodeNames) expect(health, `${byCommand.actors} healthcheck asks ${n}`).toContain(`"${n}"`)
    expect(health).toContain("OBJ_tf_data")
    expect(health).toContain('"executor"')
    const executor = services[byCommand.executor]
    expect(executor.container_name).toBeUndefined()
    expect(executor.ports ?? []).toEqual([])
    expect((executor.depends_on as Record<string, { condition?: string }>)[byCommand.actors]?.condition).toBe("service_healthy")
  })

  it("publishes the nodes' client ports on host ports the single server does not use", () => {
    const hostPort = (p: unknown) => interpolate(String(p)).split(":").at(-2)
    const single = (services.nats.ports ?? []).map(hostPort)
    const nodes = nodeNames.flatMap((n) => (services[n].ports ?? []).map(hostPort))
    expect(nodes).toHaveLength(3)
    expect(new Set(nodes).size).toBe(3)
    for (const p of nodes) expect(single).not.toContain(p)
  })

  it("nats-server accepts nats-cluster.conf (nats-server -t), and refuses it without a server name", async () => {
    const bin = await Effect.runPromise(findNatsServer)
    const dir = await mkdtemp(join(tmpdir(), "tf-cluster-conf-"))
    try {
      await writeFile(join(dir, "nats.conf"), natsConf)
      await writeFile(join(dir, "nats-cluster.conf"), clusterConf)
      const env = { ...process.env, ...credentialEnv(randomCredentials()) }
      const ok = await runChild(bin, ["-t", "-c", join(dir, "nats-cluster.conf")], { env: { ...env, TF_SERVER_NAME: "nats-1" }, timeoutMs: 60_000 })
      expect(ok.status, ok.stdout + ok.stderr).toBe(0)
      const { TF_SERVER_NAME: _unset, ...without } = env
      const bad = await runChild(bin, ["-t", "-c", join(dir, "nats-cluster.conf")], { env: without, timeoutMs: 60_000 })
      expect(bad.status).not.toBe(0)
      expect(bad.stdout + bad.stderr).toContain("TF_SERVER_NAME")
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 120_000)
})
