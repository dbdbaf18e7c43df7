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
import { registerDataCommands } from "./data.js"
import { loadBatchFile, runBatch, UNTIL_PHASES, validateBatch, type UntilPhase } from "./run.js"
import { gate, leaderboard } from "./leaderboard.js"
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

const untilOption = (v: string) => {
  if (!(UNTIL_PHASES as readonly string[]).includes(v)) throw new InvalidArgumentError(`--until: "${v}" is not a phase; choose from ${UNTIL_PHASES.join(", ")}`)
  return v as UntilPhase
}
const numberOption = (name: string) => (v: string) => {
  const n = Number(v)
  if (v.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number, got "${v}"`)
  return n
}

program
  .command("run")
  .description("run a batch (YAML sweep): live progress, results table, the output tree under <out>/<batch_id>/ (exit 0 all ok, 1 some failed or skipped, 2 config invalid)")
  .argument("<batch>", "batch config file (YAML or JSON)")
  .option("-w, --max-workers <n>", "executor processes (1 = in this process)", positiveInt("--max-workers"), 1)
  .option("--data-root <dir>", "catalog root (default: data_root of the batch, $TICKFLOW_DATA_ROOT, .tickflow/data)")
  .option("--out <dir>", "output root (overrides output_root of the batch)")
  .option("--sort <metric>", "metric the results table and report rank by", metricOption, "sharpe")
  .option("--top <n>", "rows in the results table", positiveInt("--top"), 20)
  .option("--batch-id <id>", "batch id (default: <name>-<utc stamp>-<config hash>)")
  .option("--dry-run", "print the expanded plan and every problem the checks before execution find; run nothing (exit 2 if a run would be skipped)", false)
  .option("--resume [batch_id]", "continue the latest batch of this config under --out (or the given one): runs with a final result and the same result key are kept")
  .option("--rerun-failed", "with --resume: also rerun runs that ended failed or skipped", false)
  .option("--until <phase>", `stop after a phase (${UNTIL_PHASES.join(", ")}), e.g. quality to check the data`, untilOption)
  .option("--summary-json", "print one JSON summary on stdout (table and logs go to stderr)", false)
  .option("--no-cache", "ask the pipeline to compute every result again instead of reusing cached ones")
  .action(
    async (
      file: string,
      o: { maxWorkers: number; dataRoot?: string; out?: string; sort: ReturnType<typeof parseMetric>; top: number; batchId?: string; dryRun: boolean; resume?: boolean | string; rerunFailed: boolean; until?: UntilPhase; summaryJson: boolean; cache: boolean }
    ) => {
      if (o.rerunFailed && !o.resume) {
        console.error("error: --rerun-failed works with --resume (it reruns the failed runs of an earlier batch)")
        process.exitCode = 2
        return
      }
      const code = await runCli(
        runBatch({
          file,
          maxWorkers: o.maxWorkers,
          sort: o.sort,
          top: o.top,
          dryRun: o.dryRun,
          rerunFailed: o.rerunFailed,
          summaryJson: o.summaryJson,
          cache: o.cache,
          ...(o.resume !== undefined ? { resume: o.resume } : {}),
          ...(o.until ? { until: o.until } : {}),
          ...(o.dataRoot ? { dataRoot: o.dataRoot } : {}),
          ...(o.out ? { out: o.out } : {}),
          ...(o.batchId ? { batchId: o.batchId } : {})
        })
      )
      if (code !== undefined) process.exitCode = code
    }
  )

program
  .command("validate")
  .description("check a batch file deeply (schema, strategies, parameters, symbols and dates against the catalog): every problem at once; exit 2 if any run would be skipped")
  .argument("<batch>", "batch config file")
  .option("--data-root <dir>", "catalog root (default: data_root of the batch, $TICKFLOW_DATA_ROOT, .tickflow/data)")
  .option("--json", "print the plan as JSON", false)
  .action(async (file: string, o: { dataRoot?: string; json: boolean }) => {
    process.exitCode = await validateBatch(file, { json: o.json, ...(o.dataRoot ? { dataRoot: o.dataRoot } : {}) })
  })

program
  .command("leaderboard")
  .description("the ranked runs of a batch folder; --export-best writes the best run as a batch file")
  .argument("<batch>", "batch folder, or batch id under --out")
  .option("--out <dir>", "output root holding the batch", "out")
  .option("--sort <metric>", "metric to rank by", metricOption, "sharpe")
  .option("--top <n>", "rows shown", positiveInt("--top"), 20)
  .option("--export-best <file.yaml>", "write the best run as a batch file (same id and seed: it reproduces the numbers)")
  .option("--json", "print the ranking as JSON", false)
  .action(async (batch: string, o: { out: string; sort: string; top: number; exportBest?: string; json: boolean }) => {
    try {
      process.exitCode = await leaderboard({ batch, out: o.out, sort: o.sort, top: o.top, json: o.json, ...(o.exportBest ? { exportBest: o.exportBest } : {}) })
    } catch (e) {
      console.error(`error: ${(e as Error).message}`)
      process.exitCode = 2
    }
  })

program
  .command("gate")
  .description("readiness gate of a batch's best run: determinism re-run, costs > 0, Sharpe / drawdown / return thresholds (exit 0 pass, 1 fail)")
  .argument("<batch>", "batch folder, or batch id under --out")
  .option("--out <dir>", "output root holding the batch", "out")
  .option("--sort <metric>", "metric that picks the best run", metricOption, "sharpe")
  .option("--config <file>", "YAML with min_sharpe, max_drawdown_pct, min_total_return (top level or under gate:)")
  .option("--min-sharpe <x>", "Sharpe at least (default 0.5)", numberOption("--min-sharpe"))
  .option("--max-drawdown <pct>", "max drawdown in percent at most (default 30)", numberOption("--max-drawdown"))
  .option("--min-return <fraction>", "total return at least, as a fraction (default 0)", numberOption("--min-return"))
  .option("--data-root <dir>", "catalog root for the re-run (default: the batch's)")
  .option("--json", "print the checks as JSON", false)
  .action(async (batch: string, o: { out: string; sort: string; config?: string; minSharpe?: number; maxDrawdown?: number; minReturn?: number; dataRoot?: string; json: boolean }) => {
    try {
      process.exitCode = await gate({
        batch,
        out: o.out,
        sort: o.sort,
        json: o.json,
        ...(o.config ? { config: o.config } : {}),
        ...(o.minSharpe !== undefined ? { minSharpe: o.minSharpe } : {}),
        ...(o.maxDrawdown !== undefined ? { maxDrawdownPct: o.maxDrawdown } : {}),
        ...(o.minReturn !== undefined ? { minTotalReturn: o.minReturn } : {}),
        ...(o.dataRoot ? { dataRoot: o.dataRoot } : {})
      })
    } catch (e) {
      console.error(`error: ${(e as Error).message}`)
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
  .description("live results table of a batch (replays, then follows; waits for a batch not there yet); --out writes the output tree; needs NATS_URL")
  .argument("<batch>", "batch id")
  .option("--sort <metric>", "metric to sort by", metricOption, "sharpe")
  .option("--top <n>", "rows shown", positiveInt("--top"), 20)
  .option("--follow", "keep following after the batch is done", false)
  .option("--out <dir>", "write the output tree (summary.csv, report.html, per-run files) under <dir>/<batch>")
  .option("--config <file>", "the submitted batch file: full scenarios in the manifests, runs replayed locally for equity.csv/orders.csv")
  .option("--data-root <dir>", "catalog root for the local replays (default: the batch file's)")
  .option("--timeout <seconds>", "give up when the batch has not appeared after this long", positiveInt("--timeout"))
  .action(async (batchId: string, o: { sort: ReturnType<typeof parseMetric>; top: number; follow: boolean; out?: string; config?: string; dataRoot?: string; timeout?: number }) => {
    try {
      const code = await runCli(
        watchBatch({
          batchId,
          sort: o.sort,
          top: o.top,
          follow: o.follow,
          ...(o.out ? { out: o.out } : {}),
          ...(o.config ? { config: o.config } : {}),
          ...(o.dataRoot ? { dataRoot: o.dataRoot } : {}),
          ...(o.timeout !== undefined ? { timeoutSec: o.timeout } : {})
        })
      )
      if (code !== undefined) process.exitCode = code
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
    let message: Record<string, unknown> = raw
    let follow: string
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
      message = { v: WIRE_VERSION, kind: "batch", batch_id: batchId, config: raw, base_dir: resolve(file, "..") }
      follow = `batch ${batchId}: follow it with \`tickflow watch ${batchId}\` or subscribe to tf.res.${batchId}.>`
    } else {
      follow =
        typeof raw.batch_id === "string" && typeof raw.scenario_id === "string"
          ? `result on tf.res.${raw.batch_id}.${raw.scenario_id}`
          : "result on tf.res.<batch>.<scenario> (ids derived from the content: adhoc-…, s-…)"
    }
    const layer = Nats.Default.pipe(Layer.provideMerge(settingsFromEnv()))
    const ack = await runCli(publishRaw(SUBJECT.submit, JSON.stringify(message)).pipe(Effect.provide(layer), Effect.scoped))
    if (ack) console.log(`submitted to ${SUBJECT.submit} (stream ${ack.stream}, seq ${ack.seq}); ${follow}`)
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

await program.parseAsync(process.argv)
