/**
 * The batch config (a researcher's YAML sweep) and the scenario it expands into.
 *
 * Structural problems (types, unknown frequency, unreal dates, capital <= 0, unsafe names,
 * duplicate ids) reject the file before anything is accepted, all reported at once. Semantic
 * problems of one scenario (end before start, no data, bad parameters) never stop a batch:
 * they become a `skipped` result in the phase that finds them (availability, requirements, ...).
 */
import { createHash } from "node:crypto"
import { z } from "zod"
import YAML from "yaml"
import { tooDeepAt, tooDeepProblem } from "./depth.js"
import { Costs, Freq, IsoDate, SafeName, Symbol, WIRE_VERSION } from "./common.js"
import { formatIssues } from "./errors.js"

/** Ids travel inside NATS subjects (`tf.res.<batch>.<scenario>`): no dots, wildcards or spaces. */
export const ID_RE = /^[A-Za-z0-9_-]{1,128}$/
export const Id = z.string().regex(ID_RE, {
  error: (i) =>
    `${JSON.stringify(i.input)} is not a valid id; use letters, digits, '-' and '_' only (max 128), it becomes part of a NATS subject and a folder name`
})

const UniverseFile = z.strictObject({ file: z.string().min(1) })
export const Universe = z.union([z.array(Symbol).min(1), Symbol.transform((s) => [s]), UniverseFile], {
  error: (i) => `${JSON.stringify(i.input)} is not a universe; write a symbol, a list of symbols, or {file: path}`
})

/** Fields a run may set; every one optional here because defaults fill the gaps. */
const runFieldShape = {
  name: z.string().max(200).optional(),
  strategy: z.string().min(1).optional(),
  freq: Freq.optional(),
  start_date: IsoDate.optional(),
  end_date: IsoDate.optional(),
  universe: Universe.optional(),
  start_capital: z.number().gt(0).optional(),
  // unwrap(): the Costs defaults (0) would otherwise fill every run and override `defaults`
  commission_bps: Costs.shape.commission_bps.unwrap().optional(),
  spread_w: Costs.shape.spread_w.unwrap().optional(),
  impact_w: Costs.shape.impact_w.unwrap().optional(),
  slippage_bps: Costs.shape.slippage_bps.unwrap().optional(),
  params: z.record(z.string(), z.unknown()).optional(),
  strict: z.boolean().optional(),
  benchmark: Symbol.optional()
}
export const RunDefaults = z.strictObject(runFieldShape)
export const RunSpec = z.strictObject({ id: Id, ...runFieldShape })
export type RunSpec = z.infer<typeof RunSpec>

const GridRange = z
  .strictObject({ from: z.number(), to: z.number(), step: z.number().gt(0) })
  .refine((r) => r.to >= r.from, { error: (i) => `range ${JSON.stringify(i.input)}: 'to' must be >= 'from'` })
  .refine((r) => !(r.step > 0) || (r.to - r.from) / r.step < 10_000, { error: "range has more than 10,000 values; widen the step" })
const GridAxis = z.union([z.array(z.union([z.number(), z.string(), z.boolean()])).min(1), GridRange], {
  error: (i) => `${JSON.stringify(i.input)} is not a grid axis; write a list [a, b, c] or a range {from, to, step}`
})
/** Grid keys that sweep a run field instead of a strategy parameter. */
export const GRID_RUN_FIELDS = ["symbol", "universe", "freq", "start_date", "end_date", "strategy", "start_capital"] as const

export const SweepBlock = z.strictObject({
  id: Id,
  ...runFieldShape,
  grid: z.record(z.string().min(1), GridAxis)
})
export type SweepBlock = z.infer<typeof SweepBlock>

export const BatchConfig = z
  .strictObject({
    v: z.literal(WIRE_VERSION).optional(),
    batch_name: SafeName,
    output_root: z.string().min(1).default("out"),
    data_root: z.string().min(1).optional(),
    seed: z.number().int().min(0).max(2 ** 32 - 1).default(0),
    strict: z.boolean().default(true),
    /** false: every scenario runs even when the result cache knows its answer */
    cache: z.boolean().optional(),
    defaults: RunDefaults.default({}),
    runs: z.array(RunSpec).default([]),
    sweep: z.union([SweepBlock, z.array(SweepBlock)]).optional()
  })
  .superRefine((cfg, ctx) => {
    if (cfg.runs.length === 0 && cfg.sweep === undefined)
      ctx.addIssue({ code: "custom", path: ["runs"], message: "no runs and no sweep: add at least one run or a sweep block" })
  })
export type BatchConfig = z.infer<typeof BatchConfig>
export type BatchConfigInput = z.input<typeof BatchConfig>

/** One fully specified scenario: what travels on the bus and what an executor runs. */
export const Scenario = z.strictObject({
  v: z.literal(WIRE_VERSION).default(WIRE_VERSION),
  batch_id: Id,
  scenario_id: Id,
  name: z.string().max(200).optional(),
  strategy: z.string().min(1),
  params: z.record(z.string(), z.unknown()).default({}),
  strict: z.boolean().default(true),
  freq: Freq,
  /** semantic order (end >= start) is checked by the availability phase, not here */
  start_date: IsoDate,
  end_date: IsoDate,
  universe: z.array(Symbol).min(1).max(500),
  start_capital: z.number().gt(0),
  costs: Costs.default({ commission_bps: 0, spread_w: 0, impact_w: 0, slippage_bps: 0 }),
  batch_seed: z.number().int().min(0).max(2 ** 32 - 1).default(0),
  benchmark: Symbol.optional(),
  data_root: z.string().optional()
})
export type Scenario = z.infer<typeof Scenario>
export type ScenarioInput = z.input<typeof Scenario>

export class ConfigError extends Error {
  readonly _tag = "ConfigError"
  constructor(readonly problems: ReadonlyArray<string>, readonly source = "batch config") {
    super(`${source} has ${problems.length} problem${problems.length === 1 ? "" : "s"}:\n  ${problems.join("\n  ")}`)
  }
}

/**
 * Parse a batch file's text (YAML, so JSON too) and validate it; throws ConfigError only. The
 * yaml library throws more than YAMLError (an unresolved alias is a ReferenceError): every
 * exception it throws is a "not valid YAML" problem. Aliases are capped (a billion-laughs file).
 */
export const parseBatchText = (text: string, source?: string): BatchConfig => {
  let raw: unknown
  try {
    raw = YAML.parse(text, { maxAliasCount: 100, logLevel: "error" })
  } catch (e) {
    throw new ConfigError([`${source ?? "the batch file"} is not valid YAML: ${String((e as Error)?.message ?? e).split("\n")[0].slice(0, 300)}`], source)
  }
  return parseBatchConfig(raw, source)
}

/** Parse a batch config object (from YAML or JSON); throws ConfigError listing every problem. */
export const parseBatchConfig = (raw: unknown, source?: string): BatchConfig => {
  const deep = tooDeepAt(raw)
  if (deep !== undefined) throw new ConfigError([tooDeepProblem(deep)], source)
  const r = BatchConfig.safeParse(raw, { reportInput: true })
  // Duplicate ids are checked on the raw input so they are reported with every other problem
  // (zod skips refinements of an object whose fields already failed).
  const problems = [...(r.success ? [] : formatIssues(r.error)), ...duplicateRunIds(raw)]
  if (problems.length > 0 || !r.success) throw new ConfigError(problems, source)
  return r.data
}

const duplicateRunIds = (raw: unknown): string[] => {
  const runs = (raw as { runs?: unknown } | null)?.runs
  if (!Array.isArray(runs)) return []
  const seen = new Map<string, number>()
  const out: string[] = []
  runs.forEach((r, i) => {
    const id = (r as { id?: unknown } | null)?.id
    if (typeof id !== "string") return
    const first = seen.get(id)
    if (first !== undefined) out.push(`runs[${i}].id: ${JSON.stringify(id)} is already used by runs[${first}]; run ids must be unique`)
    else seen.set(id, i)
  })
  return out
}

const REQUIRED_RUN_FIELDS = ["strategy", "freq", "start_date", "end_date", "universe", "start_capital"] as const

type RunFields = z.infer<typeof RunDefaults>

const valueToken = (v: unknown): string =>
  String(v)
    .replace(/\./g, "p")
    .replace(/[^A-Za-z0-9_-]/g, "_")
    .slice(0, 40)

const axisValues = (axis: z.infer<typeof GridAxis>): Array<number | string | boolean> => {
  if (Array.isArray(axis)) return axis
  const out: number[] = []
  const n = Math.floor((axis.to - axis.from) / axis.step + 1e-9)
  // Computed from the index, not by repeated addition, so 0.1 steps do not drift.
  for (let i = 0; i <= n; i++) out.push(Number((axis.from + i * axis.step).toPrecision(12)))
  return out
}

export interface ExpandOptions {
  batchId: string
  /** reads a universe file (one symbol per line, or CSV with the symbol first); relative to the config */
  readUniverseFile?: (path: string) => string[]
  dataRoot?: string
  maxScenarios?: number
}

/** Stable batch id for a CLI run: `<name>-<utc stamp>-<6 hex of the config>`. */
export const makeBatchId = (cfg: BatchConfig, now = new Date()): string => {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15)
  const hash = createHash("sha256").update(JSON.stringify(cfg)).digest("hex").slice(0, 6)
  return `${cfg.batch_name.replace(/[^A-Za-z0-9_-]/g, "_")}-${stamp}-${hash}`
}

/**
 * Expand defaults, runs and sweep grids into scenarios with stable ids (same config → same ids,
 * in the same order). Throws ConfigError listing every run that lacks a required field or every
 * duplicate id the sweep produced.
 */
export const expandBatch = (cfg: BatchConfig, opts: ExpandOptions): Scenario[] => {
  const problems: string[] = []
  /**
   * `template`: drafts with the same template have the same fields apart from id and params (a
   * sweep block's scenarios with the same values on its run-field axes, such as `symbol`), so
   * those fields are validated once for all of them (below).
   */
  const drafts: Array<{ id: string; path: string; fields: RunFields; template?: string }> = []
  const merge = (base: RunFields, over: RunFields): RunFields => {
    const out: RunFields = { ...base }
    for (const [k, v] of Object.entries(over)) if (v !== undefined) (out as Record<string, unknown>)[k] = v
    out.params = { ...(base.params ?? {}), ...(over.params ?? {}) }
    return out
  }
  cfg.runs.forEach((run, i) => {
    const { id, ...fields } = run
    drafts.push({ id, path: `runs[${i}]`, fields: merge(cfg.defaults, fields) })
  })
  const blocks = cfg.sweep === undefined ? [] : Array.isArray(cfg.sweep) ? cfg.sweep : [cfg.sweep]
  blocks.forEach((block, bi) => {
    const { id, grid, ...fields } = block
    const base = merge(cfg.defaults, fields)
    // per axis, once: the field it sets (a run field, or a parameter) and each value's id token
    const axes = Object.entries(grid).map(([key, axis]) => {
      const name = key.replace(/^params\./, "")
      const values = axisValues(axis)
      const runField = !key.startsWith("params.") && (GRID_RUN_FIELDS as readonly string[]).includes(name)
      return { name, values, runField, tokens: values.map((v) => `${name}-${valueToken(v)}`), valueKeys: values.map((v) => JSON.stringify(v)) }
    })
    const total = axes.reduce((n, a) => n * a.values.length, 1)
    if (total > (opts.maxScenarios ?? 100_000)) {
      problems.push(`sweep[${bi}].grid: expands to ${total} scenarios, above the limit ${opts.maxScenarios ?? 100_000}`)
      return
    }
    const idx = axes.map(() => 0)
    for (let n = 0; n < total; n++) {
      const fields2: RunFields = { ...base, params: { ...(base.params ?? {}) } }
      let draftId = id
      let template = `${bi}`
      for (let k = 0; k < axes.length; k++) {
        const a = axes[k]
        const v = a.values[idx[k]]
        draftId += `__${a.tokens[idx[k]]}`
        if (a.runField) {
          template += `|${a.valueKeys[idx[k]]}`
          const rf = fields2 as Record<string, unknown>
          if (a.name === "symbol") rf.universe = [String(v)]
          else if (a.name === "universe") rf.universe = String(v).split(/[+,\s]+/).filter(Boolean)
          else rf[a.name] = v
        } else fields2.params![a.name] = v
      }
      drafts.push({ id: draftId.slice(0, 128), path: `sweep[${bi}]`, fields: fields2, template })
      for (let k = axes.length - 1; k >= 0; k--) {
        if (++idx[k] < axes[k].values.length) break
        idx[k] = 0
      }
    }
  })
  const seen = new Map<string, string>()
  const scenarios: Scenario[] = []
  /** validated scenarios by their fields other than id and params (a draft's template, or JSON) */
  const templates = new Map<string, Scenario>()
  for (const d of drafts) {
    const prev = seen.get(d.id)
    if (prev !== undefined) {
      problems.push(`${d.path}: scenario id ${JSON.stringify(d.id)} is also produced by ${prev}; ids must be unique`)
      continue
    }
    seen.set(d.id, d.path)
    const missing = REQUIRED_RUN_FIELDS.filter((f) => d.fields[f] === undefined)
    if (missing.length > 0) {
      for (const f of missing) problems.push(`${d.path}.${f}: is required; set it on the run or in defaults`)
      continue
    }
    let universe: string[]
    const u = d.fields.universe!
    if (Array.isArray(u)) universe = u
    else if ("file" in u) {
      if (!opts.readUniverseFile) {
        problems.push(`${d.path}.universe: {file: ${JSON.stringify(u.file)}} cannot be read here; list the symbols`)
        continue
      }
      try {
        universe = opts.readUniverseFile(u.file)
      } catch (e) {
        problems.push(`${d.path}.universe: cannot read ${JSON.stringify(u.file)}: ${(e as Error).message}`)
        continue
      }
    } else universe = [String(u)]
    const candidate = {
      batch_id: opts.batchId,
      scenario_id: d.id,
      name: d.fields.name,
      strategy: d.fields.strategy,
      params: d.fields.params ?? {},
      strict: d.fields.strict ?? cfg.strict,
      freq: d.fields.freq,
      start_date: d.fields.start_date,
      end_date: d.fields.end_date,
      universe,
      start_capital: d.fields.start_capital,
      costs: {
        commission_bps: d.fields.commission_bps ?? 0,
        spread_w: d.fields.spread_w ?? 0,
        impact_w: d.fields.impact_w ?? 0,
        slippage_bps: d.fields.slippage_bps ?? 0
      },
      batch_seed: cfg.seed,
      benchmark: d.fields.benchmark,
      data_root: opts.dataRoot ?? cfg.data_root
    }
    // The scenarios of a sweep differ, as a rule, in id and params only: everything else is
    // validated once per distinct combination (zod per scenario was 20 µs, most of a 10,000-run
    // sweep's submission time), the id and params of each are checked here. Anything unusual
    // (a bad id, params that are not a record) takes the full check, whose errors name it.
    const params = candidate.params
    const sharedKey = d.template !== undefined ? `sweep:${d.template}` : (({ scenario_id: _id, params: _params, ...shared }) => `json:${JSON.stringify(shared)}`)(candidate)
    const template = templates.get(sharedKey)
    if (template !== undefined && ID_RE.test(d.id) && params !== null && typeof params === "object" && !Array.isArray(params)) {
      // own copies of every object, as a parse would give: no two scenarios share one
      scenarios.push({ ...template, scenario_id: d.id, params: { ...params }, universe: [...template.universe], costs: { ...template.costs } })
      continue
    }
    const r = Scenario.safeParse(candidate, { reportInput: true })
    if (!r.success) problems.push(...formatIssues(r.error, d.path))
    else {
      scenarios.push(r.data)
      if (template === undefined) templates.set(sharedKey, r.data)
    }
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return scenarios
}

/** Warnings worth printing before a run (they do not stop it: the phases skip such scenarios). */
export const lintScenarios = (scenarios: ReadonlyArray<Scenario>): string[] =>
  scenarios
    .filter((s) => s.end_date < s.start_date)
    .map((s) => `${s.scenario_id}: end_date ${s.end_date} is before start_date ${s.start_date}; it will be skipped`)

/**
 * Group key: scenarios sharing it share one data slice (same symbols in the same order, freq,
 * range, root). Order is kept: the group's scenarios take the slice's universe, and a
 * portfolio's symbol order must stay what the scenario said for its metrics to be reproducible.
 */
export const sliceGroupKey = (s: Pick<Scenario, "universe" | "freq" | "start_date" | "end_date" | "data_root">): string =>
  JSON.stringify([s.universe, s.freq, s.start_date, s.end_date, s.data_root ?? ""])
