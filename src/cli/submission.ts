/**
 * What the submitting CLI does before a batch or scenario goes on the bus, on its own machine
 * (the only place a path may be read): universe files become symbol lists, strategy module
 * paths are bundled and published to the strategy store and replaced by their name@hash, and
 * host paths (data_root, output_root) are left out — the coordinator refuses them.
 */
import { existsSync } from "node:fs"
import { resolve } from "node:path"
import { Effect } from "effect"
import { universeFileReader } from "../actors/coordinator.js"
import { getStrategy, STRATEGY_HASH_RE, STRATEGY_NAME_RE } from "../engine/strategies/index.js"
import { ConfigError, type BatchConfig } from "../schemas/batch.js"
import { publishStrategyFile, type PublishedStrategy } from "../strategies-store.js"

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v)

const isPublishedRef = (v: string) => {
  const at = v.lastIndexOf("@")
  return at > 0 && STRATEGY_NAME_RE.test(v.slice(0, at)) && STRATEGY_HASH_RE.test(v.slice(at + 1))
}

/**
 * A strategy value as it should travel: built-ins and name@hash as they are; a path to an
 * existing module file (relative to `baseDir`) published first. Anything else travels as it
 * is and the requirements phase skips it with the reason.
 */
const strategyPublisher = (baseDir: string) => {
  const done = new Map<string, PublishedStrategy>()
  return (value: string) =>
    Effect.gen(function* () {
      if (getStrategy(value) !== undefined || isPublishedRef(value)) return value
      const file = resolve(baseDir, value)
      if (!/\.(m?[jt]s|cts|cjs)$/i.test(value) || !existsSync(file)) return value
      const known = done.get(file)
      if (known) return known.key
      const published = yield* publishStrategyFile(file)
      done.set(file, published)
      yield* Effect.logInfo(`strategy ${value} published as ${published.key}`).pipe(
        Effect.annotateLogs({ strategy: published.key, bytes: published.bytes, created: published.created })
      )
      return published.key
    })
}

/** The places of a batch config that hold run fields. */
const holders = (cfg: Obj): Array<{ path: string; fields: Obj }> => {
  const out: Array<{ path: string; fields: Obj }> = []
  if (isObj(cfg.defaults)) out.push({ path: "defaults", fields: cfg.defaults })
  if (Array.isArray(cfg.runs)) cfg.runs.forEach((r, i) => isObj(r) && out.push({ path: `runs[${i}]`, fields: r }))
  const sweep = cfg.sweep
  if (Array.isArray(sweep)) sweep.forEach((b, i) => isObj(b) && out.push({ path: `sweep[${i}]`, fields: b }))
  else if (isObj(sweep)) out.push({ path: "sweep", fields: sweep })
  return out
}

/**
 * A validated batch config made ready for the bus (a copy): universe files read relative to
 * `baseDir`, strategy paths published (StrategyStore), data_root and output_root removed.
 */
export const busBatchConfig = (cfg: BatchConfig, baseDir: string) =>
  Effect.gen(function* () {
    const copy = structuredClone(cfg) as unknown as Obj
    delete copy.data_root
    delete copy.output_root
    const readUniverse = universeFileReader(baseDir)
    const publish = strategyPublisher(baseDir)
    const problems: string[] = []
    for (const { path, fields } of holders(copy)) {
      const u = fields.universe
      if (isObj(u) && typeof u.file === "string") {
        try {
          fields.universe = readUniverse(u.file)
        } catch (e) {
          problems.push(`${path}.universe: cannot read ${JSON.stringify(u.file)}: ${(e as Error).message}`)
        }
      }
      if (typeof fields.strategy === "string") fields.strategy = yield* publish(fields.strategy)
      const grid = fields.grid
      if (isObj(grid) && Array.isArray(grid.strategy))
        grid.strategy = yield* Effect.forEach(grid.strategy, (v) => (typeof v === "string" ? publish(v) : Effect.succeed(v)))
    }
    if (problems.length > 0) return yield* Effect.fail(new ConfigError(problems))
    return copy
  })

/**
 * A scenario file made ready for the bus: a strategy path published, `data_root` left out
 * (reported in `dropped`: the actors use their own catalog root).
 */
export const busScenario = (raw: Obj, baseDir: string) =>
  Effect.gen(function* () {
    const copy: Obj = { ...raw }
    const dropped: string[] = []
    if ("data_root" in copy) {
      delete copy.data_root
      dropped.push("data_root")
    }
    if (typeof copy.strategy === "string") copy.strategy = yield* strategyPublisher(baseDir)(copy.strategy)
    return { message: copy, dropped }
  })
