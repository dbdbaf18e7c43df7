/**
 * JSON Schemas of the formats people write by hand or read from other languages, generated from
 * the zod schemas so they never drift: the batch config (for editor autocomplete of batch YAML,
 * `# yaml-language-server: $schema=./batch.schema.json`), one scenario (`tf.submit`) and one
 * result (`tf.res.<batch>.<scenario>`). `tickflow schema [batch|scenario|result]` prints them.
 *
 * Generated with `io: "input"`: what a person may write (fields with defaults are optional,
 * symbols may be lower case), not what the parser hands back.
 */
import { z } from "zod"
import { COST_UNITS, FREQS, IsoDate, Symbol, WIRE_VERSION } from "./common.js"
import { BatchConfig, GRID_RUN_FIELDS, Scenario } from "./batch.js"
import { ScenarioResult } from "./results.js"

type JsonObject = Record<string, unknown>

const DATE_PATTERN = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
/** Input symbols: the parser trims and upper-cases them (`aapl` becomes `AAPL`). */
const SYMBOL_INPUT_PATTERN = "^\\s*[A-Za-z0-9][A-Za-z0-9._-]{0,31}\\s*$"

/** Hover text for fields, by property name (the same name means the same thing everywhere). */
const FIELD_DOCS: Record<string, string> = {
  v: `format version (${WIRE_VERSION})`,
  batch_name: "name of the batch; a folder name under output_root (letters, digits, '.', '-', '_')",
  output_root: "directory results are written under (default: out)",
  data_root: "data catalog directory (default: $TICKFLOW_DATA_ROOT or .tickflow/data)",
  seed: "seed for everything random in the batch (integer >= 0, default 0)",
  strict: "strict mode: refuse unknown strategy parameters and synthetic bars (default true)",
  defaults: "fields every run and sweep inherits unless it sets them itself",
  runs: "explicit runs, each with a unique id",
  sweep: "a grid sweep (or a list of them): every combination of the grid axes becomes a run",
  id: "identifier: letters, digits, '-' and '_' only (it becomes part of a NATS subject and a folder name)",
  name: "free-text label shown in tables",
  strategy: "strategy name (list them with `tickflow strategies`)",
  freq: `bar frequency: ${FREQS.join(", ")}`,
  start_date: "first day, YYYY-MM-DD (inclusive)",
  end_date: "last day, YYYY-MM-DD (inclusive)",
  universe: "a symbol, a list of symbols, or {file: path} with one symbol per line",
  start_capital: "starting cash, > 0",
  ...COST_UNITS,
  params: "strategy parameters by name (see `tickflow strategies`); unknown names are refused in strict mode",
  benchmark: "symbol to compare against: alpha, beta, information ratio, tracking error, Treynor ratio (LEAN's definitions)",
  grid: `axes to sweep: a strategy parameter name (or params.<name>) or a run field (${GRID_RUN_FIELDS.join(", ")}); each a list [a, b, c] or a range {from, to, step}`,
  batch_id: "batch identifier (letters, digits, '-', '_')",
  scenario_id: "scenario identifier, unique in its batch (letters, digits, '-', '_')",
  costs: "trading costs (all default 0)",
  batch_seed: "seed of the batch the scenario belongs to",
  status: "success, skipped or failed",
  phase: "the phase that decided a skipped or failed status",
  reason: "why the scenario was skipped or failed",
  metrics: "performance metrics; null where a metric is undefined (no trades, zero volatility)",
  equity: "equity curve: timestamps (epoch ms) and net asset values",
  warnings: "non-fatal findings",
  engine_version: "version of the backtest engine that produced the result",
  data_version: "content hash of the data the result was computed from",
  finished_at: "ISO timestamp of the result"
}

/** Adds `description` to every property named in FIELD_DOCS that has none, at any depth. */
const describeFields = (node: unknown): void => {
  if (Array.isArray(node)) return node.forEach(describeFields)
  if (node === null || typeof node !== "object") return
  const obj = node as JsonObject
  const props = obj.properties as Record<string, JsonObject> | undefined
  if (props && typeof props === "object")
    for (const [key, prop] of Object.entries(props)) {
      const doc = FIELD_DOCS[key]
      if (doc !== undefined && prop && typeof prop === "object" && prop.description === undefined) prop.description = doc
    }
  for (const v of Object.values(obj)) describeFields(v)
}

const generate = (schema: z.ZodType, meta: { id: string; title: string; description: string }): JsonObject => {
  const out = z.toJSONSchema(schema, {
    io: "input",
    unrepresentable: "any",
    override: (ctx) => {
      // IsoDate is a preprocess (YAML may hand over a Date object): say what a person writes.
      if (ctx.zodSchema === (IsoDate as unknown)) Object.assign(ctx.jsonSchema, { type: "string", format: "date", pattern: DATE_PATTERN })
      // Symbol upper-cases before it checks, so the input pattern allows lower case.
      if (ctx.zodSchema === (Symbol as unknown)) Object.assign(ctx.jsonSchema, { type: "string", pattern: SYMBOL_INPUT_PATTERN })
    }
  }) as JsonObject
  describeFields(out)
  const { $schema, ...rest } = out
  return { $schema, $id: meta.id, title: meta.title, description: meta.description, ...rest }
}

/** JSON Schema of a batch config file (YAML or JSON), for editors and other languages. */
export const batchConfigJsonSchema = (): JsonObject => {
  const schema = generate(BatchConfig, {
    id: `urn:tickflow:batch-config:v${WIRE_VERSION}`,
    title: "tickflow batch config",
    description:
      "A batch of backtest scenarios: `tickflow run batch.yaml`. Give runs, a sweep, or both; fields in defaults apply to every run and sweep."
  })
  // The "at least one run or a sweep" rule is a refinement zod cannot export; state it here.
  schema.anyOf = [{ required: ["runs"], properties: { runs: { minItems: 1 } } }, { required: ["sweep"] }]
  return schema
}

/** JSON Schema of one scenario as published to `tf.submit` or travelling between phases. */
export const scenarioJsonSchema = (): JsonObject =>
  generate(Scenario, {
    id: `urn:tickflow:scenario:v${WIRE_VERSION}`,
    title: "tickflow scenario",
    description:
      "One fully specified backtest. Publish it as JSON to tf.submit (batch_id and scenario_id may be left out there) and read its result on tf.res.<batch_id>.<scenario_id>."
  })

/** JSON Schema of one scenario result, as published on `tf.res.<batch>.<scenario>`. */
export const resultJsonSchema = (): JsonObject =>
  generate(ScenarioResult, {
    id: `urn:tickflow:scenario-result:v${WIRE_VERSION}`,
    title: "tickflow scenario result",
    description: "The final result of one scenario on tf.res.<batch_id>.<scenario_id>: exactly one per scenario."
  })

export type JsonSchemaKind = "batch" | "scenario" | "result"
export const JSON_SCHEMA_KINDS: ReadonlyArray<JsonSchemaKind> = ["batch", "scenario", "result"]

/** The schema `tickflow schema <kind>` prints. */
export const jsonSchemaFor = (kind: JsonSchemaKind): JsonObject =>
  kind === "batch" ? batchConfigJsonSchema() : kind === "scenario" ? scenarioJsonSchema() : resultJsonSchema()
