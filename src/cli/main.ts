/**
 * The `tickflow` command. Parsing with commander (small, well kept, typed options, good help);
 * every command runs an Effect through runCli, which prints failures as one clear line.
 *
 * Start-up: this module imports only commander and node built-ins at the top. Each command
 * imports what it needs inside its action (`await import(...)`), so `tickflow --help` or
 * `tickflow validate` never loads the engine, the actors, NATS, Arrow or the Parquet decoders
 * (bench/startup.ts measures it). Keep new commands that way.
 */
import { createRequire } from "node:module"
import { resolve } from "node:path"
import { Command, InvalidArgumentError } from "commander"

/** package.json sits two levels up from both src/cli/main.ts and dist/cli/main.js. */
const packageVersion = (createRequire(import.meta.url)("../../package.json") as { version: string }).version

const positiveInt = (name: string) => (v: string) => {
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a whole number >= 1, got "${v}"`)
  return n
}
/** --sort: checked in the action, so the schemas load only for commands that sort. */
const sortMetric = async (v: string) => {
  const { parseMetric } = await import("./table.js")
  try {
    return parseMetric(v)
  } catch (e) {
    console.error(`error: ${(e as Error).message}`)
    process.exitCode = 2
    return undefined
  }
}

const program = new Command()
  .name("tickflow")
  .description("Trading backtest scenarios as a stream-processing actor system over NATS JetStream")
  .version(packageVersion, "-V, --version", "print the tickflow version")
  .showHelpAfterError()

/** Phases `run --until` can stop after (kept here so --help needs no other module). */
const UNTIL_PHASES = ["availability", "requirements", "loading", "quality", "execution"] as const
type UntilPhase = (typeof UNTIL_PHASES)[number]
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
  .option("--sort <metric>", "metric the results table and report rank by", "sharpe")
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
      o: { maxWorkers: number; dataRoot?: string; out?: string; sort: string; top: number; batchId?: string; dryRun: boolean; resume?: boolean | string; rerunFailed: boolean; until?: UntilPhase; summaryJson: boolean; cache: boolean }
    ) => {
      if (o.rerunFailed && !o.resume) {
        console.error("error: --rerun-failed works with --resume (it reruns the failed runs of an earlier batch)")
        process.exitCode = 2
        return
      }
      const sort = await sortMetric(o.sort)
      if (sort === undefined) return
      const [{ runCli }, { runBatch }] = await Promise.all([import("./system.js"), import("./run.js")])
      const code = await runCli(
        runBatch({
          file,
          maxWorkers: o.maxWorkers,
          sort,
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
    const { validateBatch } = await import("./run.js")
    process.exitCode = await validateBatch(file, { json: o.json, ...(o.dataRoot ? { dataRoot: o.dataRoot } : {}) })
  })

program
  .command("leaderboard")
  .description("the ranked runs of a batch folder; --export-best writes the best run as a batch file")
  .argument("<batch>", "batch folder, or batch id under --out")
  .option("--out <dir>", "output root holding the batch", "out")
  .option("--sort <metric>", "metric to rank by", "sharpe")
  .option("--top <n>", "rows shown", positiveInt("--top"), 20)
  .option("--export-best <file.yaml>", "write the best run as a batch file (same id and seed: it reproduces the numbers)")
  .option("--json", "print the ranking as JSON", false)
  .action(async (batch: string, o: { out: string; sort: string; top: number; exportBest?: string; json: boolean }) => {
    const sort = await sortMetric(o.sort)
    if (sort === undefined) return
    const { leaderboard } = await import("./leaderboard.js")
    try {
      process.exitCode = await leaderboard({ batch, out: o.out, sort, top: o.top, json: o.json, ...(o.exportBest ? { exportBest: o.exportBest } : {}) })
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
  .option("--sort <metric>", "metric that picks the best run", "sharpe")
  .option("--config <file>", "YAML with min_sharpe, max_drawdown_pct, min_total_return (top level or under gate:)")
  .option("--min-sharpe <x>", "Sharpe at least (default 0.5)", numberOption("--min-sharpe"))
  .option("--max-drawdown <pct>", "max drawdown in percent at most (default 30)", numberOption("--max-drawdown"))
  .option("--min-return <fraction>", "total return at least, as a fraction (default 0)", numberOption("--min-return"))
  .option("--data-root <dir>", "catalog root for the re-run (default: the batch's)")
  .option("--json", "print the checks as JSON", false)
  .action(async (batch: string, o: { out: string; sort: string; config?: string; minSharpe?: number; maxDrawdown?: number; minReturn?: number; dataRoot?: string; json: boolean }) => {
    const sort = await sortMetric(o.sort)
    if (sort === undefined) return
    const { gate } = await import("./leaderboard.js")
    try {
      process.exitCode = await gate({
        batch,
        out: o.out,
        sort,
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
  .description("run pipeline actors until Ctrl-C (default: all of them)")
  .option("--only <list>", "comma-separated subset of coordinator, availability, requirements, loader, quality, executor, reporter")
  .option("--data-root <dir>", "catalog root")
  .action(async (o: { only?: string; dataRoot?: string }) => {
    const [{ ACTOR_NAMES, parseActorList }, { runCli, serveActors }] = await Promise.all([import("../actors/index.js"), import("./system.js")])
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
    const { runCli, serveActors } = await import("./system.js")
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
  .option("--sort <metric>", "metric to sort by", "sharpe")
  .option("--top <n>", "rows shown", positiveInt("--top"), 20)
  .option("--follow", "keep following after the batch is done", false)
  .option("--out <dir>", "write the output tree (summary.csv, report.html, per-run files) under <dir>/<batch>")
  .option("--config <file>", "the submitted batch file: full scenarios in the manifests, runs replayed locally for equity.csv/orders.csv")
  .option("--data-root <dir>", "catalog root for the local replays (default: the batch file's)")
  .option("--timeout <seconds>", "give up when the batch has not appeared after this long", positiveInt("--timeout"))
  .action(async (batchId: string, o: { sort: string; top: number; follow: boolean; out?: string; config?: string; dataRoot?: string; timeout?: number }) => {
    const sort = await sortMetric(o.sort)
    if (sort === undefined) return
    const [{ runCli }, { watchBatch }] = await Promise.all([import("./system.js"), import("./watch.js")])
    try {
      const code = await runCli(
        watchBatch({
          batchId,
          sort,
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
    const [{ readFile }, { default: YAML }] = await Promise.all([import("node:fs/promises"), import("yaml")])
    let raw: Record<string, unknown>
    try {
      raw = YAML.parse(await readFile(file, "utf8")) as Record<string, unknown>
    } catch (e) {
      console.error(`error: cannot read ${file}: ${(e as Error).message}`)
      process.exitCode = 2
      return
    }
    const [{ Effect, Layer }, { Nats, settingsFromEnv }, { publishRaw }, { SUBJECT }, { runCli }, { StrategyStore }, { busBatchConfig, busScenario }, { REJECTION_BUCKET, rejectionSubject }] =
      await Promise.all([
        import("effect"),
        import("../streams/connection.js"),
        import("../streams/bus.js"),
        import("../streams/topology.js"),
        import("./system.js"),
        import("../strategies-store.js"),
        import("./submission.js"),
        import("../security/rejections.js")
      ])
    // Paths are read here, on the sender's machine: universe files become symbol lists,
    // strategy modules are published (name@hash), data_root/output_root stay here.
    const baseDir = resolve(file, "..")
    type Prepared = { message: Record<string, unknown>; follow: string }
    let prepare: import("effect").Effect.Effect<Prepared, unknown, import("../strategies-store.js").StrategyStore>
    if ("batch_name" in raw) {
      // A batch is checked here first (every problem at once) and gets its id here, so the
      // sender knows what to watch.
      const [{ loadBatchFile }, { makeBatchId }, { WIRE_VERSION }] = await Promise.all([
        import("./run.js"),
        import("../schemas/batch.js"),
        import("../schemas/common.js")
      ])
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

program
  .command("scan")
  .description("scan symbols with a formula over candles through the pipeline; prints the matching candles (exit 1 if a symbol failed, 2 if the input is invalid); embedded system unless NATS_URL")
  .option("--symbols <list>", "symbols, comma-separated (A,B,C)")
  .option("--universe <file>", "universe file: one symbol per line, or CSV with the symbol first")
  .option("--all", "every symbol the actors' catalog holds at --freq", false)
  .requiredOption("--freq <freq>", "bar interval: tick, 1min, 5min, 1h, 1d")
  .requiredOption("--start <date>", "first day (YYYY-MM-DD)")
  .requiredOption("--end <date>", "last day (YYYY-MM-DD)")
  .requiredOption("--formula <formula>", "condition over candles, e.g. 'close > sma(close, 50) and rsi(close, 14) < 30'")
  .option("--json", "print a JSON array: one object per symbol (symbol, status, matches or error)", false)
  .option("--add-to <session>", "send the matching symbols to a running session as scanner additions (needs NATS_URL)")
  .option("--data-root <dir>", "catalog root of the embedded system (default $TICKFLOW_DATA_ROOT, .tickflow/data)")
  .option("--job-id <id>", "job id (default scan-<utc stamp>-<hash>)")
  .action(async (o: { symbols?: string; universe?: string; all: boolean; freq: string; start: string; end: string; formula: string; json: boolean; addTo?: string; dataRoot?: string; jobId?: string }) => {
    const { runScanCommand } = await import("./scan.js")
    await runScanCommand(o)
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
    const [{ Effect, Layer }, { Nats, settingsFromEnv }, { runCli }, { publishStrategyFile, StrategyStore }] = await Promise.all([
      import("effect"),
      import("../streams/connection.js"),
      import("./system.js"),
      import("../strategies-store.js")
    ])
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
    const [{ Effect, Layer }, { credentialEnv }, { embeddedSettings, Nats, NatsSettings }, { busLayer }, { runCli, waitForSignal }] = await Promise.all([
      import("effect"),
      import("../streams/embedded.js"),
      import("../streams/connection.js"),
      import("../streams/bus.js"),
      import("./system.js")
    ])
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
  .action(async (which: string) => {
    const { batchConfigJsonSchema, resultJsonSchema, scenarioJsonSchema } = await import("../schemas/jsonschema.js")
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
    const [{ z }, { listStrategies }, { COST_UNITS }] = await Promise.all([import("zod"), import("../engine/index.js"), import("../schemas/common.js")])
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

/**
 * `data` and its subcommands live in ./data.js, which loads the Parquet and Arrow modules: it is
 * imported only when the command line asks for `data` (or `help data`); otherwise a stand-in
 * with the same name and summary keeps `tickflow --help` complete.
 */
const words = process.argv.slice(2).filter((a) => !a.startsWith("-"))
if (words[0] === "data" || (words[0] === "help" && words[1] === "data")) {
  const { registerDataCommands } = await import("./data.js")
  registerDataCommands(program)
} else {
  program.command("data").description("the Parquet catalog: sample | import | generate | coverage (tickflow data --help)")
}
// Sessions: loaded on demand like the rest of the client side (small, but keeps startup lean).
;(await import("./session.js")).registerSessionCommands(program)

await program.parseAsync(process.argv)
