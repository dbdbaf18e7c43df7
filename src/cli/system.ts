/**
 * Composing the system for a CLI command: where NATS is (embedded unless NATS_URL), the
 * topology, the actors this process runs, executor child processes, and graceful shutdown on
 * SIGINT/SIGTERM (stop taking messages, finish the one in hand, then close the scope).
 */
import { spawn, type ChildProcess } from "node:child_process"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { createRequire } from "node:module"
import { Cause, Effect, Exit, Layer } from "effect"
import { actorSettingsLayer, shutdownLayer, type ActorSettingsShape } from "../actors/common.js"
import { actorsLayer, type ActorName, RunningActors } from "../actors/index.js"
import { busLayer } from "../streams/bus.js"
import { executorChildEnv, Nats, NatsSettings, settingsFromEnv, type NatsSettingsShape } from "../streams/connection.js"
import { LoggingLive, rootLogger } from "../logging.js"

/** This process's environment without its NATS credentials (children get their own). */
const withoutNatsAuth = (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv => {
  const { NATS_USER: _u, NATS_PASSWORD: _p, NATS_TOKEN: _t, NATS_CREDS: _c, ...rest } = env
  return rest
}

const here = dirname(fileURLToPath(import.meta.url))
/** The CLI's TypeScript entry (tests start source executors with it and TSX_LOADER). */
export const CLI_MAIN = join(here, "main.ts")
/**
 * The `tickflow` command itself: two levels below the package root, as src/cli/system.ts and the
 * built chunks in dist/ both are. Executor children start through it, so they run what the
 * parent runs (dist/ when built, the TypeScript through tsx in a checkout without a build).
 */
export const CLI_BIN = resolve(here, "..", "..", "bin", "tickflow.mjs")
/** tsx's loader by absolute URL, so children start from any working directory ("" when tsx is not installed: the package runs dist/). */
export const TSX_LOADER = (() => {
  try {
    return pathToFileURL(join(dirname(createRequire(import.meta.url).resolve("tsx/package.json")), "dist", "loader.mjs")).href
  } catch {
    return ""
  }
})()

export interface SystemOptions {
  readonly actors: ReadonlyArray<ActorName>
  readonly settings?: Partial<ActorSettingsShape>
}

/** Nats (from env or embedded) + topology + settings + the chosen actors. */
export const systemLayer = (opts: SystemOptions) => {
  const nats = Nats.Default.pipe(Layer.provideMerge(settingsFromEnv()))
  const base = Layer.mergeAll(actorSettingsLayer(opts.settings ?? {}), shutdownLayer).pipe(
    Layer.provideMerge(busLayer()),
    Layer.provideMerge(nats)
  )
  return actorsLayer(opts.actors).pipe(Layer.provideMerge(base))
}

/**
 * Start `count` executor processes against the same server; killed when the scope closes.
 * `nodeArgs` go to node before the script (benchmarks pass `--cpu-prof` here).
 */
export const spawnExecutors = (count: number, settings: NatsSettingsShape, dataRoot: string, nodeArgs: ReadonlyArray<string> = []) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const children: ChildProcess[] = []
      // Executors run with the executor role: they consume work and publish results, nothing more.
      const { env: natsEnv, role } = executorChildEnv(settings)
      if (role !== "executor")
        rootLogger().warn({ event: "executor_role_missing" }, "executors get this process's NATS user: set NATS_EXECUTOR_USER / NATS_EXECUTOR_PASSWORD (or NATS_EXECUTOR_CREDS) to run them with the executor role")
      for (let i = 0; i < count; i++) {
        const child = spawn(process.execPath, [...nodeArgs, CLI_BIN, "executor"], {
          stdio: ["ignore", "inherit", "inherit"],
          // Executors of a `run` report warnings only on the shared terminal.
          env: { TICKFLOW_LOG_LEVEL: "warn", ...withoutNatsAuth(process.env), ...natsEnv, TICKFLOW_DATA_ROOT: resolve(dataRoot), TICKFLOW_INSTANCE_SUFFIX: `w${i + 1}` },
          cwd: process.cwd()
        })
        children.push(child)
      }
      return children
    }),
    (children) =>
      Effect.promise(() =>
        Promise.all(
          children.map(
            (c) =>
              new Promise<void>((res) => {
                if (c.exitCode !== null || c.signalCode !== null) return res()
                const t = setTimeout(() => c.kill("SIGKILL"), 10_000)
                c.once("exit", () => {
                  clearTimeout(t)
                  res()
                })
                c.kill("SIGTERM")
              })
          )
        )
      )
  )

/** Resolves on the first SIGINT or SIGTERM. */
export const waitForSignal = Effect.async<string>((resume) => {
  const on = (sig: string) => () => resume(Effect.succeed(sig))
  const onInt = on("SIGINT")
  const onTerm = on("SIGTERM")
  process.once("SIGINT", onInt)
  process.once("SIGTERM", onTerm)
  return Effect.sync(() => {
    process.off("SIGINT", onInt)
    process.off("SIGTERM", onTerm)
  })
})

/** Run actors until a signal, then stop gracefully. */
export const serveActors = (opts: SystemOptions) =>
  Effect.gen(function* () {
    const running = yield* RunningActors
    const settings = yield* NatsSettings
    yield* Effect.logInfo(`running actors: ${running.names.join(", ")}`).pipe(Effect.annotateLogs({ nats: settings.servers }))
    if (settings.embedded) {
      yield* Effect.logInfo("embedded server: other processes can join with these variables").pipe(
        Effect.annotateLogs({ NATS_URL: settings.servers, NATS_USER: settings.user })
      )
    }
    const sig = yield* waitForSignal
    yield* Effect.logInfo(`${sig}: finishing messages in hand, then stopping`)
    yield* running.stopGracefully(15_000)
  }).pipe(Effect.provide(systemLayer(opts)))

/** Run a command's Effect with logging; failures print their message and set the exit code. */
export const runCli = async <A, E>(effect: Effect.Effect<A, E, never>): Promise<A | undefined> => {
  const exit = await Effect.runPromiseExit(effect.pipe(Effect.provide(LoggingLive)))
  if (Exit.isSuccess(exit)) return exit.value
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "Some") {
    const e = failure.value as { message?: string }
    console.error(`error: ${e?.message ?? String(e)}`)
  } else if (!Cause.isInterruptedOnly(exit.cause)) console.error(Cause.pretty(exit.cause))
  process.exitCode = process.exitCode || 1
  return undefined
}
