/**
 * The `tickflow` command. Parsing with commander (small, well kept, typed options, good help);
 * every command runs an Effect through runCli, which prints failures as one clear line.
 */
import { readFile } from "node:fs/promises"
import { resolve } from "node:path"
import { Command, InvalidArgumentError } from "commander"
import { Effect, Layer } from "effect"
import YAML from "yaml"
import { ACTOR_NAMES, parseActorList } from "../actors/index.js"
import { listStrategies } from "../engine/index.js"
import { ConfigError, expandBatch, lintScenarios, makeBatchId } from "../schemas/batch.js"
import { COST_UNITS, WIRE_VERSION } from "../schemas/common.js"
import { batchConfigJsonSchema, resultJsonSchema, scenarioJsonSchema } from "../schemas/jsonschema.js"
import { universeFileReader } from "../actors/coordinator.js"
import { credentialEnv } from "../streams/embedded.js"
import { embeddedSettings, Nats, NatsSettings, settingsFromEnv } from "../streams/connection.js"
import { busLayer, publishRaw } from "../streams/bus.js"
import { SUBJECT } from "../streams/topology.js"
import { REJECTION_BUCKET, rejectionSubject } from "../security/rejections.js"
import { publishStrategyFile, StrategyStore } from "../strategies-store.js"
import { registerDataCommands } from "./data.js"
import { busBatchConfig, busScenario } from "./submission.js"
import { loadBatchFile, runBatch } from "./run.js"
import { runCli, serveActors, waitForSignal } from "./system.js"
import { parseMetric } from "./table.js"
import { watchBatch } from "./watch.js"

const positiveInt = (name: string) => (v: string) => {
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a whole number >= 1, got "${v}"`)
  return n
}
const metricOption = (v: string) => {
  try {
    return parseMetric(v)
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message)
  }
}

const program = new Command()
  .name("tickflow")
  .description("Trading backtest scenarios as a stream-processing actor system over NATS JetStream")
  .showHelpAfterError()

program
  .command("run")
  .description("run a batch (YAML sweep): live progress, results table, files under output_root/<batch_id>/")
  .argument("<batch>", "batch config file (YAML or JSON)")
  .option("-w, --max-workers <n>", "executor processes (1 = in this process)", positiveInt("--max-workers"), 1)
  .option("--data-root <dir>", "catalog root (default: data_root of the batch, $TICKFLOW_DATA_ROOT, .tickflow/data)")
  .option("--out <dir>", "output root (overrides output_root of the batch)")
  .option("--sort <metric>", "metric the results table is sorted by", metricOption, "sharpe")
  .option("--top <n>", "rows in the results table", positiveInt("--top"), 20)
  .option("--batch-id <id>", "batch id (default: <name>-<utc stamp>-<config hash>)")
  .action(async (file: string, o: { maxWorkers: number; dataRoot?: string; out?: string; sort: ReturnType<typeof parseMetric>; top: number; batchId?: string }) => {
    await runCli(
      runBatch({
        file,
        maxWorkers: o.maxWorkers,
        sort: o.sort,
        top: o.top,
        ...(o.dataRoot ? { dataRoot: o.dataRoot } : {}),
        ...(o.out ? { out: o.out } : {}),
        ...(o.batchId ? { batchId: o.batchId } : {})
      })
    )
  })

program
  .command("validate")
  .description("check a batch file: every problem at once, then the scenario count")
  .argument("<batch>", "batch config file")
  .action(async (file: string) => {
    try {
      const cfg = await loadBatchFile(file)
      const scenarios = expandBatch(cfg, { batchId: makeBatchId(cfg), readUniverseFile: universeFileReader(resolve(file, "..")) })
      for (const w of lintScenarios(scenarios)) console.warn(`warning: ${w}`)
      console.log(`${file}: ok, ${scenarios.length} scenarios`)
    } catch (e) {
      console.error(e instanceof ConfigError ? e.message : `error: ${(e as Error).message}`)
      process.exitCode = 2
    }
  })

program
  .command("actors")
  .description(`run pipeline actors until Ctrl-C (default all: ${ACTOR_NAMES.join(", ")})`)
  .option("--only <list>", "comma-separated subset, e.g. loader,quality")
  .option("--data-root <dir>", "catalog root")
  .action(async (o: { only?: string; dataRoot?: string }) => {
    let names
    try {
      names = o.only ? parseActorList(o.only) : [...ACTOR_NAMES]
    } catch (e) {
      console.error(`error: ${(e as Error).message}`)
      process.exitCode = 2
      return
    }
    await runCli(serveActors({ actors: names, settings: o.dataRoot ? { dataRoot: resolve(o.dataRoot) } : {} }))
  })

program
  .command("executor")
  .description("run one executor (a competing consumer of tf.scn.exec.>) until Ctrl-C; start more to scale")
  .option("--data-root <dir>", "catalog root, for --data direct")
  .option("--data <mode>", "where slices come from: store (object store tf_data) or direct (read the catalog)", "store")
  .action(async (o: { dataRoot?: string; data: string }) => {
    if (o.data !== "store" && o.data !== "direct") {
      console.error(`error: --data "${o.data}" is not one of store, direct`)
      process.exitCode = 2
      return
    }
    await runCli(
      serveActors({
        actors: ["executor"],
        settings: { executorData: o.data, ...(o.dataRoot ? { dataRoot: resolve(o.dataRoot) } : {}) }
      })
    )
  })

program
  .command("watch")
  .description("live results table of a batch (replays, then follows); needs NATS_URL")
  .argument("<batch>", "batch id")
  .option("--sort <metric>", "metric to sort by", metricOption, "sharpe")
  .option("--top <n>", "rows shown", positiveInt("--top"), 20)
  .option("--follow", "keep following after the batch is done", false)
  .action(async (batchId: string, o: { sort: ReturnType<typeof parseMetric>; top: number; follow: boolean }) => {
    try {
      await runCli(watchBatch({ batchId, sort: o.sort, top: o.top, follow: o.follow }))
    } catch (e) {
      console.error(`error: ${(e as Error).message}`)
      process.exitCode = 2
    }
  })

program
  .command("submit")
  .description("publish a scenario (JSON) or a batch (YAML/JSON with batch_name) to tf.submit; needs NATS_URL")
  .argument("<file>", "scenario or batch file")
  .action(async (file: string) => {
    if (!process.env.NATS_URL) {
      console.error("error: submit needs NATS_URL pointing at a server where `tickflow actors` runs")
      process.exitCode = 2
      return
    }
    let raw: Record<string, unknown>
    try {
      raw = YAML.parse(await readFile(file, "utf8")) as Record<string, unknown>
    } catch (e) {
      console.error(`error: cannot read ${file}: ${(e as Error).message}`)
      process.exitCode = 2
      return
    }
    // Paths are read here, on the sender's machine: universe files become symbol lists,
    // strategy modules are published (name@hash), data_root/output_root stay here.
    const baseDir = resolve(file, "..")
    let prepare: Effect.Effect<{ message: Record<string, unknown>; follow: string }, unknown, StrategyStore>
    if ("batch_name" in raw) {
      // A batch is checked here first (every problem at once) and gets its id here, so the
      // sender knows what to watch.
      let cfg
      try {
        cfg = await loadBatchFile(file)
      } catch (e) {
        console.error((e as Error).message)
        process.exitCode = 2
        return
      }
      const batchId = makeBatchId(cfg)
      prepare = busBatchConfig(cfg, baseDir).pipe(
        Effect.map((config) => ({
          message: { v: WIRE_VERSION, kind: "batch", batch_id: batchId, config },
          follow: `batch ${batchId}: follow it with \`tickflow watch ${batchId}\` or subscribe to tf.res.${batchId}.>`
        }))
      )
    } else {
      const follow =
        typeof raw.batch_id === "string" && typeof raw.scenario_id === "string"
          ? `result on tf.res.${raw.batch_id}.${raw.scenario_id}`
          : "result on tf.res.<batch>.<scenario> (ids derived from the content: adhoc-…, s-…)"
      prepare = busScenario(raw, baseDir).pipe(
        Effect.tap(({ dropped }) => (dropped.length > 0 ? Effect.sync(() => console.warn(`warning: ${dropped.join(", ")} not sent (the actors use their own data root)`)) : Effect.void)),
        Effect.map(({ message }) => ({ message, follow }))
      )
    }
    const layer = StrategyStore.Default.pipe(Layer.provideMerge(Nats.Default), Layer.provideMerge(settingsFromEnv()))
    const sent = await runCli(
      Effect.gen(function* () {
        const { message, follow } = yield* prepare
        const ack = yield* publishRaw(SUBJECT.submit, JSON.stringify(message))
        return { ack, follow }
      }).pipe(Effect.provide(layer), Effect.scoped)
    )
    if (sent)
      console.log(
        `submitted to ${SUBJECT.submit} (stream ${sent.ack.stream}, seq ${sent.ack.seq}); ${sent.follow}\n` +
          `if it is refused, the reason is in KV ${REJECTION_BUCKET} key ${sent.ack.seq} and on ${rejectionSubject(sent.ack.seq)}`
      )
  })

const strategyCommand = program.command("strategy").description("user strategy modules in the strategy store (tf_strategies)")
strategyCommand
  .command("publish")
  .description("bundle a strategy module (TypeScript or JavaScript) and store it by content; prints the name@hash scenarios use; needs NATS_URL and the researcher or admin role")
  .argument("<file>", "module exporting `default` or `strategy`")
  .option("--name <name>", "name to publish under (default: the strategy's own name)")
  .action(async (file: string, o: { name?: string }) => {
    if (!process.env.NATS_URL) {
      console.error("error: strategy publish needs NATS_URL (and NATS_USER=researcher or admin) pointing at the server the executors use")
      process.exitCode = 2
      return
    }
    const layer = StrategyStore.Default.pipe(Layer.provideMerge(Nats.Default), Layer.provideMerge(settingsFromEnv()))
    const published = await runCli(publishStrategyFile(file, o.name).pipe(Effect.provide(layer), Effect.scoped))
    if (published) {
      console.error(`${published.created ? "published" : "already published"}: ${published.bytes} bytes; use \`strategy: ${published.key}\` in a batch or scenario`)
      console.log(published.key)
    }
  })

program
  .command("server")
  .description("start a private nats-server (JetStream, temp store) in the foreground for multi-process local runs")
  .option("--port <n>", "port (default: a free one)", positiveInt("--port"))
  .action(async (o: { port?: number }) => {
    await runCli(
      Effect.gen(function* () {
        const settings = yield* NatsSettings
        const s = settings.embedded!
        console.log(`# nats-server ${s.url} (store ${s.storeDir}); Ctrl-C stops it and removes the store`)
        console.log(`export NATS_URL=${s.url}`)
        console.log(`export NATS_USER=admin NATS_PASSWORD=${s.credentials.admin.pass}`)
        console.log(`# per-role passwords (nats.conf users):`)
        for (const [k, v] of Object.entries(credentialEnv(s.credentials))) console.log(`#   ${k}=${v}`)
        yield* waitForSignal
      }).pipe(
        // The topology is created up front so actors and executors started later find it.
        Effect.provide(busLayer().pipe(Layer.provideMerge(Nats.Default), Layer.provideMerge(embeddedSettings(o.port ? { port: o.port } : {}))))
      )
    )
  })

program
  .command("schema")
  .description("print the JSON Schema of batch files (or scenario / result) for editor autocompletion")
  .argument("[which]", "batch | scenario | result", "batch")
  .action((which: string) => {
    const schemas: Record<string, () => object> = { batch: batchConfigJsonSchema, scenario: scenarioJsonSchema, result: resultJsonSchema }
    const f = schemas[which]
    if (!f) {
      console.error(`error: "${which}" is not one of ${Object.keys(schemas).join(", ")}`)
      process.exitCode = 2
      return
    }
    console.log(JSON.stringify(f(), null, 2))
  })

program
  .command("strategies")
  .description("list built-in strategies and their parameters")
  .action(async () => {
    const { z } = await import("zod")
    for (const s of listStrategies()) {
      console.log(`${s.name}: ${s.description}`)
      const json = z.toJSONSchema(s.params, { io: "input", unrepresentable: "any" }) as { properties?: Record<string, { type?: string; minimum?: number; maximum?: number; default?: unknown; enum?: unknown[] }> }
      for (const [k, p] of Object.entries(json.properties ?? {})) {
        const range = p.enum ? `one of ${p.enum.join(", ")}` : `${p.type ?? "any"}${p.minimum !== undefined ? ` >= ${p.minimum}` : ""}${p.maximum !== undefined ? ` <= ${p.maximum}` : ""}`
        console.log(`  ${k}: ${range}${p.default !== undefined ? ` (default ${JSON.stringify(p.default)})` : ""}`)
      }
    }
    console.log("costs (every scenario, default 0):")
    for (const [k, unit] of Object.entries(COST_UNITS)) console.log(`  ${k}: ${unit}`)
  })

registerDataCommands(program)
// Sessions: loaded on demand like the rest of the client side (small, but keeps startup lean).
;(await import("./session.js")).registerSessionCommands(program)

await program.parseAsync(process.argv)
