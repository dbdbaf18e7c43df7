/** Messages on the pipeline stream `TF_PIPELINE`: submissions and scenario groups. */
import { z } from "zod"
import { Costs, Freq, IsoDate, Symbol, WIRE_VERSION } from "./common.js"
import { Id, ID_RE, Scenario } from "./batch.js"

/** `tf.submit`: a whole batch config, or one scenario (a foreign client's JSON; `kind` optional). */
export const SubmitBatch = z.object({
  v: z.literal(WIRE_VERSION).default(WIRE_VERSION),
  kind: z.literal("batch"),
  batch_id: Id.optional(),
  /** validated by the coordinator with the batch-config schema, so errors name config paths */
  config: z.unknown(),
  /** refused by the coordinator (no host paths from the bus); kept so the refusal names it */
  base_dir: z.string().optional()
})
/** A secret that makes the sender the owner of the batch its scenarios go into (see coordinator). */
export const OwnerToken = z.string().min(16).max(256)
export const SubmitScenario = Scenario.extend({
  kind: z.literal("scenario").default("scenario"),
  /** false: run it even when the result cache knows its answer */
  cache: z.boolean().optional(),
  batch_id: Id.optional(),
  scenario_id: Id.optional(),
  owner_token: OwnerToken.optional()
})
/**
 * A scanner job: a formula over the candles of every symbol (a list, or `all` symbols the actors'
 * catalog holds at `freq`). Expanded by the coordinator into one scenario per symbol with
 * strategy `scan` (scenario id = the symbol, dots as '_'), batch id = `job_id`.
 */
export const SubmitScan = z.strictObject({
  v: z.literal(WIRE_VERSION).default(WIRE_VERSION),
  kind: z.literal("scan"),
  job_id: Id.optional(),
  symbols: z.union([z.array(Symbol).min(1, { error: 'is empty; list at least one symbol, or send "all"' }), z.literal("all")], {
    error: (i) => `${JSON.stringify(i.input)?.slice(0, 80)} is not a symbol list; send a non-empty list of symbols or "all"`
  }),
  freq: Freq,
  start_date: IsoDate,
  end_date: IsoDate,
  /** parsed and type-checked by the coordinator before anything is loaded */
  formula: z.string().min(1).max(4_000)
})
export type SubmitScan = z.infer<typeof SubmitScan>
export const SubmitMessage = z.preprocess(
  (raw) => (raw && typeof raw === "object" && !("kind" in raw) ? { ...raw, kind: "scenario" } : raw),
  z.discriminatedUnion("kind", [SubmitBatch, SubmitScenario, SubmitScan])
)
export type SubmitMessage = z.infer<typeof SubmitMessage>

/** The data slice a group shares. */
export const SliceSpec = z.object({
  universe: z.array(z.string()).min(1),
  freq: Freq,
  start_date: IsoDate,
  end_date: IsoDate,
  data_root: z.string().optional(),
  /** the most warmup any scenario of the group needs (set by requirements) */
  warmup_bars: z.number().int().min(0).default(0)
})
export type SliceSpec = z.infer<typeof SliceSpec>

/** One scenario inside a group, with what the phases learnt about it. */
export const GroupItem = z.object({
  scenario: Scenario,
  /** parameters after defaults/clamping (requirements) */
  params: z.record(z.string(), z.unknown()).optional(),
  warmup_bars: z.number().int().min(0).optional(),
  warnings: z.array(z.string()).default([])
})
export type GroupItem = z.infer<typeof GroupItem>

/** A loaded slice in the object store `tf_data`, one per symbol. */
export const SliceRef = z.object({
  symbol: z.string(),
  key: z.string(),
  rows: z.number().int(),
  warmup_rows: z.number().int(),
  resampled_from_ticks: z.boolean(),
  bytes: z.number().int()
})
export type SliceRef = z.infer<typeof SliceRef>

/** `tf.scn.<stage>.<batch>`: scenarios that share a data slice travel together. */
export const GroupMessage = z.object({
  v: z.literal(WIRE_VERSION),
  batch_id: Id,
  group_id: Id,
  slice: SliceSpec,
  items: z.array(GroupItem).min(1),
  data_version: z.string().optional(),
  slices: z.array(SliceRef).optional(),
  /** quality findings (warnings) carried to the results */
  findings: z.array(z.string()).default([]),
  /**
   * the submission this group came from (the tf.submit message's stream sequence): a redelivered
   * submission republishes the same ids, a new submission of the same scenarios gets new ones
   */
  submission: z.string().optional(),
  /** false: answer from the result cache is not allowed (`cache: false`, `run --no-cache`) */
  cache: z.boolean().optional(),
  /**
   * the engine version whose parameter checks resolved the items' `params` (requirements): an
   * executor of the same version runs them as they are instead of checking them again
   */
  resolved_by: z.string().max(64).optional()
})
export type GroupMessage = z.infer<typeof GroupMessage>

export const STAGES = ["avail", "reqs", "load", "quality", "exec"] as const
export type Stage = (typeof STAGES)[number]

// ---------- the compact form groups travel in ----------
//
// The scenarios of a group share their slice (batch, universe, freq, dates, data root) and
// usually their strategy, capital and costs; only ids and parameters differ. Sent as full
// scenarios, a 500-scenario group is ~210 KB and zod spends ~2 ms checking each scenario's
// dates and symbols again at every stage. On the wire a group therefore carries the shared
// fields once (`base`) and per item only what differs from it.

/** Scenario fields that may differ between the scenarios of one group. */
const ItemFields = {
  name: z.string().max(200).optional(),
  strategy: z.string().min(1).optional(),
  params: z.record(z.string(), z.unknown()).optional(),
  strict: z.boolean().optional(),
  start_capital: z.number().gt(0).optional(),
  // no defaults here: an absent field means "as in the base"
  costs: Costs.optional(),
  batch_seed: z.number().int().min(0).max(2 ** 32 - 1).optional(),
  benchmark: Scenario.shape.benchmark
}
const VARYING = Object.keys(ItemFields) as Array<keyof typeof ItemFields>

export const GroupBase = z.strictObject({
  strategy: z.string().min(1),
  params: z.record(z.string(), z.unknown()),
  strict: z.boolean(),
  start_capital: z.number().gt(0),
  costs: Scenario.shape.costs,
  batch_seed: Scenario.shape.batch_seed,
  benchmark: Scenario.shape.benchmark,
  name: z.string().max(200).optional()
})

export const GroupItemWire = z.strictObject({
  id: Id,
  ...ItemFields,
  /**
   * the scenario's own symbols when they differ from the slice's: a scan group's slice holds
   * every symbol of the group, each item (one symbol's scan) reads only its own
   */
  universe: z.array(z.string()).min(1).optional(),
  /** resolved parameters (requirements) */
  resolved: z.record(z.string(), z.unknown()).optional(),
  warmup_bars: z.number().int().min(0).optional(),
  warnings: z.array(z.string()).optional()
})

export const GroupWire = z.strictObject({
  v: z.literal(WIRE_VERSION),
  batch_id: Id,
  group_id: Id,
  slice: SliceSpec,
  base: GroupBase,
  items: z.array(GroupItemWire).min(1),
  data_version: z.string().optional(),
  slices: z.array(SliceRef).optional(),
  findings: z.array(z.string()).default([]),
  submission: z.string().optional(),
  cache: z.boolean().optional(),
  resolved_by: z.string().max(64).optional(),
  /**
   * When every item's resolved parameters are its own parameters plus the same defaults (a
   * sweep after requirements: `{fast, slow}` resolved to `{fast, slow, allow_short: false}`),
   * those defaults, once; the items then carry no `resolved` (it doubled the message from
   * requirements on: 37 → 73 KB for 500 daily scenarios).
   */
  resolved_defaults: z.record(z.string(), z.unknown()).optional()
})
export type GroupWire = z.infer<typeof GroupWire>

/**
 * Whether two JSON values have the same JSON text (key order included, keys holding undefined
 * ignored), without writing either out: encodeGroup compares every item's params, costs and
 * universe with the base's, at every stage.
 */
const sameJson = (a: unknown, b: unknown): boolean => {
  if (a === b) return true
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return false
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i] ?? null, b[i] ?? null)) return false
    return true
  }
  const ka = definedKeys(a as Record<string, unknown>)
  const kb = definedKeys(b as Record<string, unknown>)
  if (ka.length !== kb.length) return false
  for (let i = 0; i < ka.length; i++) {
    if (ka[i] !== kb[i] || !sameJson((a as Record<string, unknown>)[ka[i]], (b as Record<string, unknown>)[kb[i]])) return false
  }
  return true
}
const definedKeys = (o: Record<string, unknown>) => Object.keys(o).filter((k) => o[k] !== undefined)

/**
 * `{ ...own, ...defaults }` without the spread: a spread object given keys it lacked took V8
 * (Node 20) ~1 µs for three parameters, ten times Object.assign, once per scenario per stage.
 * Object.assign sets keys where a spread defines them; they differ only for a key named
 * `__proto__`, so such parameters take the spread.
 */
export const withDefaults = (own: Record<string, unknown>, defaults: Record<string, unknown>): Record<string, unknown> =>
  Object.hasOwn(own, "__proto__") || Object.hasOwn(defaults, "__proto__") ? { ...own, ...defaults } : Object.assign({}, own, defaults)

/**
 * The defaults that every item's resolved parameters add to its own parameters, in the same
 * key order (`{...params, ...defaults}` has the same JSON text as the resolved ones); undefined
 * when any item is unresolved or resolved otherwise (a value coerced, a key reordered).
 */
const sharedResolvedDefaults = (items: ReadonlyArray<GroupItem>): Record<string, unknown> | undefined => {
  const first = items[0]
  if (first?.params === undefined) return undefined
  const own = first.scenario.params
  const defaults: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(first.params)) if (v !== undefined && own[k] === undefined) defaults[k] = v
  for (const it of items) if (it.params === undefined || !sameJson(it.params, withDefaults(it.scenario.params, defaults))) return undefined
  return defaults
}

/**
 * The wire form a decoded group's items arrived in, kept on the decoded items array under a
 * symbol, not enumerable: never copied, compared or written out with the group. A stage that
 * passes the items on as they are (the same array, or `sliceItems` of it) sends them in that
 * form again instead of working out each item's differences from the base anew: availability,
 * loading and quality re-encoded every scenario of a group for nothing (~1.3 ms a 500-scenario
 * group each, on the actors' critical path before the first execution). Stages never change an
 * item in place; a changed item is a new object in a new array, which is encoded afresh.
 */
// (globalThis: `Symbol` here is the symbol-name schema)
const WIRE_ITEMS = globalThis.Symbol("tickflow.wireItems")
interface WireItems {
  readonly base: GroupWire["base"]
  readonly items: GroupWire["items"]
  readonly resolvedDefaults: GroupWire["resolved_defaults"]
  /** the slice universe the items' `universe` differences were taken against */
  readonly universe: ReadonlyArray<string>
}
const wireItemsOf = (items: ReadonlyArray<GroupItem>): WireItems | undefined => (items as unknown as { [WIRE_ITEMS]?: WireItems })[WIRE_ITEMS]
const withWireItems = (items: GroupItem[], wire: WireItems): GroupItem[] => Object.defineProperty(items, WIRE_ITEMS, { value: wire })

/** `items.slice(from, to)` that keeps their wire form (a group's base holds for any part of it). */
export const sliceItems = (items: ReadonlyArray<GroupItem>, from: number, to: number): GroupItem[] => {
  const part = items.slice(from, to)
  const wire = wireItemsOf(items)
  return wire === undefined ? part : withWireItems(part, { ...wire, items: wire.items.slice(from, to) })
}

/** Full group → wire form: shared fields once, per item only what differs. */
export const encodeGroup = (g: GroupMessage): GroupWire => {
  const kept = wireItemsOf(g.items)
  if (kept !== undefined && kept.items.length === g.items.length && sameJson(kept.universe, g.slice.universe))
    return wireGroup(g, kept.base, kept.items, kept.resolvedDefaults)
  const scenarios = g.items.map((it) => it.scenario)
  const first = scenarios[0]
  // Optional fields go into the base only when every scenario has the same value, so an item
  // without them never inherits one.
  const shared = <K extends "name" | "benchmark">(k: K) => (scenarios.every((s) => s[k] === first[k]) ? first[k] : undefined)
  const name = shared("name")
  const benchmark = shared("benchmark")
  const base: GroupWire["base"] = {
    strategy: first.strategy,
    params: first.params,
    strict: first.strict,
    start_capital: first.start_capital,
    costs: first.costs,
    batch_seed: first.batch_seed,
    ...(benchmark !== undefined ? { benchmark } : {}),
    ...(name !== undefined ? { name } : {})
  }
  const resolvedDefaults = sharedResolvedDefaults(g.items)
  const items = g.items.map((it) => {
    const s = it.scenario
    const out: Record<string, unknown> = { id: s.scenario_id }
    for (const k of VARYING) if (s[k] !== undefined && !sameJson(s[k], base[k])) out[k] = s[k]
    if (!sameJson(s.universe, g.slice.universe)) out.universe = s.universe
    if (it.params !== undefined && resolvedDefaults === undefined) out.resolved = it.params
    if (it.warmup_bars !== undefined) out.warmup_bars = it.warmup_bars
    if (it.warnings.length > 0) out.warnings = it.warnings
    return out as z.infer<typeof GroupItemWire>
  })
  return wireGroup(g, base, items, resolvedDefaults)
}

/** The wire form of a group with its base and items already worked out. */
const wireGroup = (g: GroupMessage, base: GroupWire["base"], items: GroupWire["items"], resolvedDefaults: GroupWire["resolved_defaults"]): GroupWire => {
  return {
    v: g.v,
    batch_id: g.batch_id,
    group_id: g.group_id,
    slice: g.slice,
    base,
    items,
    ...(g.data_version !== undefined ? { data_version: g.data_version } : {}),
    ...(g.slices !== undefined ? { slices: g.slices } : {}),
    findings: g.findings,
    ...(g.submission !== undefined ? { submission: g.submission } : {}),
    ...(g.cache !== undefined ? { cache: g.cache } : {}),
    ...(g.resolved_by !== undefined ? { resolved_by: g.resolved_by } : {}),
    ...(resolvedDefaults !== undefined ? { resolved_defaults: resolvedDefaults } : {})
  }
}

/** Wire form → full group: every item a complete Scenario again. */
export const decodeGroup = (w: GroupWire): GroupMessage => ({
  v: w.v,
  batch_id: w.batch_id,
  group_id: w.group_id,
  slice: w.slice,
  items: withWireItems(decodeItems(w), { base: w.base, items: w.items, resolvedDefaults: w.resolved_defaults, universe: w.slice.universe }),
  ...(w.data_version !== undefined ? { data_version: w.data_version } : {}),
  ...(w.slices !== undefined ? { slices: w.slices } : {}),
  findings: w.findings,
  ...(w.submission !== undefined ? { submission: w.submission } : {}),
  ...(w.cache !== undefined ? { cache: w.cache } : {}),
  ...(w.resolved_by !== undefined ? { resolved_by: w.resolved_by } : {})
})

const decodeItems = (w: GroupWire): GroupItem[] =>
  w.items.map((it) => {
    const scenario: Scenario = {
      v: WIRE_VERSION,
      batch_id: w.batch_id,
      scenario_id: it.id,
      strategy: it.strategy ?? w.base.strategy,
      params: it.params ?? w.base.params,
      strict: it.strict ?? w.base.strict,
      freq: w.slice.freq,
      start_date: w.slice.start_date,
      end_date: w.slice.end_date,
      universe: it.universe ?? w.slice.universe,
      start_capital: it.start_capital ?? w.base.start_capital,
      costs: it.costs ?? w.base.costs,
      batch_seed: it.batch_seed ?? w.base.batch_seed,
      ...((it.benchmark ?? w.base.benchmark) !== undefined ? { benchmark: it.benchmark ?? w.base.benchmark } : {}),
      ...((it.name ?? w.base.name) !== undefined ? { name: it.name ?? w.base.name } : {}),
      ...(w.slice.data_root !== undefined ? { data_root: w.slice.data_root } : {})
    }
    const resolved = it.resolved ?? (w.resolved_defaults !== undefined ? withDefaults(scenario.params, w.resolved_defaults) : undefined)
    return {
      scenario,
      ...(resolved !== undefined ? { params: resolved } : {}),
      ...(it.warmup_bars !== undefined ? { warmup_bars: it.warmup_bars } : {}),
      warnings: it.warnings ?? []
    }
  })

// ---------- the stages' check ----------
//
// Stage messages (tf.scn.*) are written only by the actors' own role (nats.conf), from scenarios
// the coordinator validated at tf.submit; each of the five stages decodes every group again.
// zod's item schema cost ~3 µs per scenario per stage (bench/pipeline.ts); the envelope keeps
// zod (once per group), the items get the cheapest check that still catches a wrong shape: a
// known field with the wrong type, an unknown field, a missing or malformed id. Whatever
// GroupItemWire accepts, this accepts (test/hot-path-codecs.test.ts checks it on random items).

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v)
const isStringArray = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === "string")
const isFiniteNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v)
const COST_KEYS = new Set(["commission_bps", "spread_w", "impact_w", "slippage_bps"])

/** Field → what its value must be (undefined is always allowed: the field is optional). */
const ITEM_FIELD_CHECKS: Readonly<Record<string, (v: unknown) => boolean>> = {
  id: (v) => typeof v === "string" && ID_RE.test(v),
  name: (v) => typeof v === "string" && v.length <= 200,
  strategy: (v) => typeof v === "string" && v.length > 0,
  params: isRecord,
  strict: (v) => typeof v === "boolean",
  start_capital: (v) => isFiniteNumber(v) && v > 0,
  costs: (v) => isRecord(v) && Object.entries(v).every(([k, x]) => COST_KEYS.has(k) && (x === undefined || (isFiniteNumber(x) && x >= 0))),
  batch_seed: (v) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 2 ** 32 - 1,
  benchmark: (v) => typeof v === "string",
  universe: (v) => isStringArray(v) && (v as string[]).length > 0,
  resolved: isRecord,
  warmup_bars: (v) => Number.isInteger(v) && (v as number) >= 0,
  warnings: isStringArray
}

/** The first shape problem of a wire item, or undefined. */
export const wireItemProblem = (item: unknown): string | undefined => {
  if (!isRecord(item)) return "is not an object"
  if (item.id === undefined) return "id: missing"
  for (const key in item) {
    const check = ITEM_FIELD_CHECKS[key]
    if (check === undefined || !Object.hasOwn(ITEM_FIELD_CHECKS, key)) return `${key}: unknown field`
    const v = item[key]
    if (v !== undefined && !check(v)) return `${key}: ${JSON.stringify(v)?.slice(0, 80)} has the wrong type or value`
  }
  return undefined
}

const GroupEnvelope = GroupWire.extend({ items: z.array(z.unknown()).min(1) })

/** What stage consumers decode: the wire form, checked, expanded to full scenarios. */
export const GroupOnWire = GroupEnvelope.transform((w, ctx) => {
  for (let i = 0; i < w.items.length; i++) {
    const problem = wireItemProblem(w.items[i])
    if (problem !== undefined) {
      ctx.issues.push({ code: "custom", message: problem, input: w.items[i], path: ["items", i] })
      return z.NEVER
    }
  }
  return decodeGroup(w as GroupWire)
})
