/**
 * The embedded default: a private nats-server (JetStream on, temp store dir, free port on
 * loopback) started for the life of a scope and killed when it closes, temp dir removed.
 *
 * The server runs with the repo's nats.conf, so the same users and permissions apply as in
 * production; the role passwords are random per start and handed over in `credentials`.
 */
import { spawn, type ChildProcess } from "node:child_process"
import { randomBytes } from "node:crypto"
import { existsSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { createServer, Socket } from "node:net"
import { tmpdir } from "node:os"
import { delimiter, dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Schedule, Duration } from "effect"
import { NatsServerMissing, NatsServerStartError } from "./errors.js"

/** The users of nats.conf (README "Security" has what each may do). */
export const ROLES = ["admin", "actor", "executor", "researcher", "submitter", "viewer"] as const
export type Role = (typeof ROLES)[number]
export type RoleCredentials = Record<Role, { user: string; pass: string }>

export interface EmbeddedServer {
  readonly url: string
  readonly port: number
  readonly storeDir: string
  readonly pid: number
  readonly credentials: RoleCredentials
  /** the child process, for tests that need to kill/restart it */
  readonly process: ChildProcess
}

const EXTRA_BIN_DIRS = ["/usr/sbin", "/usr/local/bin", "/usr/bin", "/opt/homebrew/bin", "/usr/local/sbin"]

/** Find nats-server in PATH or the usual package locations. */
export const findNatsServer = Effect.suspend(() => {
  if (process.env.NATS_SERVER_BIN && existsSync(process.env.NATS_SERVER_BIN)) return Effect.succeed(process.env.NATS_SERVER_BIN)
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter(Boolean), ...EXTRA_BIN_DIRS]
  for (const d of dirs) {
    const p = join(d, "nats-server")
    if (existsSync(p)) return Effect.succeed(p)
  }
  return Effect.fail(new NatsServerMissing({ searched: EXTRA_BIN_DIRS }))
})

/** The repo's nats.conf (src/streams → ../../nats.conf). */
export const defaultNatsConf = (): string => resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "nats.conf")

export const freePort = (): Promise<number> =>
  new Promise((res, rej) => {
    const srv = createServer()
    srv.unref()
    srv.on("error", rej)
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address()
      const port = typeof addr === "object" && addr ? addr.port : 0
      srv.close(() => res(port))
    })
  })

/** Resolves when the server speaks NATS (sends its INFO line) on the port. */
const answersInfo = (port: number): Promise<boolean> =>
  new Promise((res) => {
    const s = new Socket()
    const done = (ok: boolean) => {
      s.destroy()
      res(ok)
    }
    s.setTimeout(500, () => done(false))
    s.once("error", () => done(false))
    s.once("data", (b) => done(b.toString("utf8").startsWith("INFO")))
    s.connect(port, "127.0.0.1")
  })

// nats-server parses an env-var value as a config token: a leading letter keeps it a string.
export const randomCredentials = (): RoleCredentials => {
  const out = {} as RoleCredentials
  for (const r of ROLES) out[r] = { user: r, pass: `tf${randomBytes(16).toString("hex")}` }
  return out
}

/** Environment variables nats.conf reads the role passwords from. */
export const credentialEnv = (c: RoleCredentials): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const r of ROLES) env[`TF_${r.toUpperCase()}_PASSWORD`] = c[r].pass
  return env
}

export interface EmbeddedOptions {
  readonly config?: string
  readonly storeDir?: string
  readonly port?: number
  readonly startTimeoutMs?: number
  readonly credentials?: RoleCredentials
}

const spawnServer = (opts: EmbeddedOptions) =>
  Effect.gen(function* () {
    const bin = yield* findNatsServer
    const conf = opts.config ?? defaultNatsConf()
    if (!existsSync(conf))
      return yield* Effect.fail(new NatsServerStartError({ reason: `config ${conf} does not exist`, output: "" }))
    const ownsStore = opts.storeDir === undefined
    const storeDir = opts.storeDir ?? (yield* Effect.promise(() => mkdtemp(join(tmpdir(), "tickflow-nats-"))))
    const port = opts.port ?? (yield* Effect.promise(freePort))
    const credentials = opts.credentials ?? randomCredentials()
    const args = ["-c", conf, "-a", "127.0.0.1", "-p", String(port), "-js", "-sd", storeDir, "-n", `tickflow-embedded-${port}`]
    const child = spawn(bin, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...credentialEnv(credentials) }
    })
    let output = ""
    const keep = (b: Buffer) => {
      output = (output + b.toString("utf8")).slice(-8000)
    }
    child.stdout?.on("data", keep)
    child.stderr?.on("data", keep)
    const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)))
    const started = Date.now()
    const timeout = opts.startTimeoutMs ?? 15_000
    for (;;) {
      const state = yield* Effect.promise(() =>
        Promise.race([answersInfo(port).then((ok) => (ok ? "up" : "wait")), exited.then(() => "exited" as const)])
      )
      if (state === "up") break
      if (state === "exited" || Date.now() - started > timeout) {
        child.kill("SIGKILL")
        if (ownsStore) yield* Effect.promise(() => rm(storeDir, { recursive: true, force: true }))
        return yield* Effect.fail(
          new NatsServerStartError({
            reason: state === "exited" ? `it exited (code ${child.exitCode})` : `no answer on port ${port} after ${timeout} ms`,
            output
          })
        )
      }
      yield* Effect.sleep(Duration.millis(50))
    }
    const server: EmbeddedServer = { url: `nats://127.0.0.1:${port}`, port, storeDir, pid: child.pid!, credentials, process: child }
    return { server, ownsStore, exited }
  })

/**
 * Acquire a private nats-server for the current scope. On release: SIGTERM (lame-duck-free
 * shutdown), SIGKILL after 5 s, then the temp store dir is removed.
 */
export const embeddedNatsServer = (opts: EmbeddedOptions = {}) =>
  Effect.acquireRelease(
    // A port taken between probe and bind makes the server exit: retry with a new port.
    spawnServer(opts).pipe(
      Effect.retry({ times: opts.port === undefined ? 3 : 0, schedule: Schedule.spaced(Duration.millis(100)), while: (e) => e._tag === "NatsServerStartError" })
    ),
    ({ server, ownsStore, exited }) =>
      Effect.promise(async () => {
        if (server.process.exitCode === null && server.process.signalCode === null) {
          server.process.kill("SIGTERM")
          const t = setTimeout(() => server.process.kill("SIGKILL"), 5_000)
          await exited
          clearTimeout(t)
        }
        if (ownsStore) await rm(server.storeDir, { recursive: true, force: true })
      })
  ).pipe(Effect.map(({ server }) => server))
