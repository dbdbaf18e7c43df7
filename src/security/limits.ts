/**
 * What a bus submission may ask for, checked on the raw message BEFORE anything is expanded or
 * allocated: message size, scenarios per batch (runs + every sweep grid multiplied out, counted
 * arithmetically), symbols per scenario, size of each parameter value. And what it may not
 * name at all: host paths (`base_dir`, `data_root`, `output_root`, `universe: {file}`) — the
 * submitting CLI reads universe files and strips paths; actors use their own configuration.
 *
 * The limits are settings (SecuritySettings), read from the environment once where the layer
 * is built, never deep in code.
 */
import { Context, Effect, Layer, Option } from "effect"

export interface SecuritySettingsShape {
  /** scenarios one batch may expand to (all runs and sweep blocks together) */
  readonly maxScenariosPerBatch: number
  /** symbols in one scenario's universe */
  readonly maxSymbolsPerScenario: number
  /** bytes of one `tf.submit` message */
  readonly maxMessageBytes: number
  /** bytes of one parameter value (its JSON) */
  readonly maxParamBytes: number
  /** characters of a rejection reason */
  readonly maxReasonChars: number
  /** how long a rejection stays readable in KV `tf_rejections` (bucket-wide max_age) */
  readonly rejectionTtlMs: number
}

export class SecuritySettings extends Context.Tag("tickflow/SecuritySettings")<SecuritySettings, SecuritySettingsShape>() {}

const envNumber = (env: NodeJS.ProcessEnv, name: string, fallback: number): number => {
  const raw = env[name]
  if (raw === undefined || raw.trim() === "") return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}=${JSON.stringify(truncate(raw, 40))} is not a positive number; unset it or give one (default ${fallback})`)
  return n
}

/** Defaults, overridden by TICKFLOW_MAX_* variables (read here, once). */
export const securitySettingsFromEnv = (env: NodeJS.ProcessEnv = process.env, over: Partial<SecuritySettingsShape> = {}): SecuritySettingsShape => ({
  maxScenariosPerBatch: envNumber(env, "TICKFLOW_MAX_SCENARIOS", 100_000),
  maxSymbolsPerScenario: envNumber(env, "TICKFLOW_MAX_SYMBOLS", 500),
  maxMessageBytes: envNumber(env, "TICKFLOW_MAX_SUBMIT_BYTES", 1024 * 1024),
  maxParamBytes: envNumber(env, "TICKFLOW_MAX_PARAM_BYTES", 4096),
  maxReasonChars: envNumber(env, "TICKFLOW_MAX_REASON_CHARS", 2000),
  rejectionTtlMs: envNumber(env, "TICKFLOW_REJECTION_TTL_MS", 3600_000),
  ...over
})

export const securitySettingsLayer = (over: Partial<SecuritySettingsShape> = {}) =>
  Layer.sync(SecuritySettings, () => securitySettingsFromEnv(process.env, over))

/** The settings a layer provided, or the environment's when none was (actors, CLI). */
export const currentSecuritySettings = Effect.map(Effect.serviceOption(SecuritySettings), (o) =>
  Option.getOrElse(o, () => securitySettingsFromEnv())
)

/** A value shortened for a message: never repeat a huge value. */
export const truncate = (s: string, max: number): string => (s.length <= max ? s : `${s.slice(0, Math.max(0, max - 30))}… (${s.length} characters in all)`)

/** A reason bounded in length: each problem and the whole text. */
export const boundReason = (problems: ReadonlyArray<string>, maxChars: number): string => {
  const each = Math.max(80, Math.floor(maxChars / 4))
  const parts: string[] = []
  let used = 0
  for (let i = 0; i < problems.length; i++) {
    const p = truncate(problems[i], each)
    if (used + p.length + 2 > maxChars) {
      parts.push(`… and ${problems.length - i} more problem${problems.length - i === 1 ? "" : "s"}`)
      break
    }
    parts.push(p)
    used += p.length + 2
  }
  return parts.join("; ")
}

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v)
const asList = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === undefined ? [] : [v])

/** Values on one grid axis, computed (not enumerated): a list's length, or a range's count. */
const axisLength = (axis: unknown): number => {
  if (Array.isArray(axis)) return Math.max(1, axis.length)
  if (isObj(axis)) {
    const { from, to, step } = axis
    if (typeof from === "number" && typeof to === "number" && typeof step === "number" && step > 0 && to >= from)
      return Math.floor((to - from) / step + 1e-9) + 1
  }
  return 1 // not a valid axis: the schema reports it
}

/** Sweep blocks of a raw config, with their path. */
const sweepBlocks = (cfg: Obj): Array<{ path: string; block: Obj }> => {
  const sweep = cfg.sweep
  if (Array.isArray(sweep)) return sweep.flatMap((b, i) => (isObj(b) ? [{ path: `sweep[${i}]`, block: b }] : []))
  return isObj(sweep) ? [{ path: "sweep", block: sweep }] : []
}

/**
 * Scenarios a raw batch config would expand to, without expanding it: runs, plus each sweep
 * block's grid sizes multiplied. May be a float or Infinity for absurd grids (compared only).
 */
export const countScenarios = (rawConfig: unknown): number => {
  if (!isObj(rawConfig)) return 0
  let n = Array.isArray(rawConfig.runs) ? rawConfig.runs.length : 0
  for (const { block } of sweepBlocks(rawConfig)) {
    const grid = isObj(block.grid) ? block.grid : {}
    let product = 1
    for (const axis of Object.values(grid)) product *= axisLength(axis)
    n += product
  }
  return n
}

/** The places of a raw batch config that hold run fields: defaults, runs, sweep blocks. */
const runFieldHolders = (cfg: Obj): Array<{ path: string; fields: Obj }> => {
  const out: Array<{ path: string; fields: Obj }> = []
  if (isObj(cfg.defaults)) out.push({ path: "config.defaults", fields: cfg.defaults })
  if (Array.isArray(cfg.runs)) cfg.runs.forEach((r, i) => isObj(r) && out.push({ path: `config.runs[${i}]`, fields: r }))
  for (const { path, block } of sweepBlocks(cfg)) out.push({ path: `config.${path}`, fields: block })
  return out
}

const HOST_PATH_FIX = "host paths are not taken from the bus: actors and executors use their own configured data root and write nothing to paths a message names"

/**
 * Fields of a bus submission that name host paths, refused (each with its path and the fix).
 * `tickflow submit` and `tickflow run` read universe files themselves and strip these fields.
 */
export const hostPathProblems = (raw: unknown): string[] => {
  if (!isObj(raw)) return []
  const problems: string[] = []
  if (raw.kind === "batch") {
    if ("base_dir" in raw) problems.push(`base_dir: not accepted; ${HOST_PATH_FIX}`)
    const cfg = raw.config
    if (isObj(cfg)) {
      if ("data_root" in cfg) problems.push(`config.data_root: not accepted; ${HOST_PATH_FIX} (set TICKFLOW_DATA_ROOT where the actors run)`)
      if ("output_root" in cfg) problems.push(`config.output_root: not accepted; results are on the bus (tf.res.<batch>.>), \`tickflow run\` writes files on its own machine`)
      for (const { path, fields } of runFieldHolders(cfg)) {
        if (isObj(fields.universe) && "file" in fields.universe)
          problems.push(`${path}.universe: {file: …} is not read from the bus; list the symbols (\`tickflow submit\` reads universe files for you)`)
        if ("data_root" in fields) problems.push(`${path}.data_root: not accepted; ${HOST_PATH_FIX}`)
      }
    }
  } else if ("data_root" in raw) problems.push(`data_root: not accepted; ${HOST_PATH_FIX} (set TICKFLOW_DATA_ROOT where the actors run)`)
  return problems
}

const jsonBytes = (v: unknown): number => {
  try {
    return Buffer.byteLength(JSON.stringify(v) ?? "", "utf8")
  } catch {
    return Number.POSITIVE_INFINITY
  }
}

/**
 * Size limits of a submission, on the raw message: bytes, scenarios per batch (counted before
 * expansion), symbols per scenario, bytes per parameter value. An empty list means within limits.
 */
export const limitProblems = (raw: unknown, messageBytes: number, limits: SecuritySettingsShape): string[] => {
  if (messageBytes > limits.maxMessageBytes)
    return [`message: ${messageBytes} bytes, above the limit ${limits.maxMessageBytes} (TICKFLOW_MAX_SUBMIT_BYTES); split it into several batches`]
  if (!isObj(raw)) return []
  const problems: string[] = []
  const checkParams = (path: string, params: unknown) => {
    if (!isObj(params)) return
    for (const [k, v] of Object.entries(params)) {
      const n = jsonBytes(v)
      if (n > limits.maxParamBytes)
        problems.push(`${path}.${truncate(k, 40)}: a value of ${n} bytes, above the limit ${limits.maxParamBytes} (TICKFLOW_MAX_PARAM_BYTES); parameters are numbers, flags or short names`)
    }
  }
  const checkUniverse = (path: string, u: unknown) => {
    if (Array.isArray(u) && u.length > limits.maxSymbolsPerScenario)
      problems.push(`${path}.universe: ${u.length} symbols, above the limit ${limits.maxSymbolsPerScenario} per scenario (TICKFLOW_MAX_SYMBOLS); split the universe into several runs`)
  }
  if (raw.kind === "batch") {
    const cfg = raw.config
    if (!isObj(cfg)) return problems
    const n = countScenarios(cfg)
    if (n > limits.maxScenariosPerBatch)
      problems.push(
        `config: expands to ${Number.isFinite(n) ? Math.round(n) : "more than 2^1024"} scenarios (runs plus every sweep grid multiplied out), above the limit ${limits.maxScenariosPerBatch} per batch (TICKFLOW_MAX_SCENARIOS); split it into several batches or use coarser grids`
      )
    for (const { path, fields } of runFieldHolders(cfg)) {
      checkParams(`${path}.params`, fields.params)
      checkUniverse(path, fields.universe)
      if (isObj(fields.grid))
        for (const [k, axis] of Object.entries(fields.grid))
          for (const [i, v] of asList(axis).entries()) {
            const b = jsonBytes(v)
            if (b > limits.maxParamBytes) {
              problems.push(`${path}.grid.${truncate(k, 40)}[${i}]: a value of ${b} bytes, above the limit ${limits.maxParamBytes} (TICKFLOW_MAX_PARAM_BYTES)`)
              break
            }
          }
    }
  } else {
    checkParams("params", raw.params)
    checkUniverse("scenario", raw.universe)
  }
  return problems
}
