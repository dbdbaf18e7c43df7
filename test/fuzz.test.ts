/**
 * Fuzzing (fast-check, 10,000 cases per target) of everything that reads untrusted text: the
 * YAML batch parser, every wire decoder, the scanner's formula parser. A case passes when the
 * input is accepted or refused with the target's typed error — never another exception (a
 * crash, a stack overflow) and never a hang: each case has a time bound (fast-check's timeout;
 * inputs are bounded in size, so the bound catches hangs, it does not measure speed).
 */
import { describe, expect, it } from "vitest"
import fc from "fast-check"
import YAML from "yaml"
import { readFileSync } from "node:fs"
import { resolve } from "node:path"
import type { z } from "zod"
import { ConfigError, parseBatchConfig, parseBatchText } from "../src/schemas/batch.js"
import { SubmitMessage, GroupOnWire, GroupMessage, GroupWire } from "../src/schemas/wire.js"
import { BatchRecord, PipelineEvent, RunManifest, RunStatus, ScenarioResult } from "../src/schemas/results.js"
import { decodeMessage } from "../src/streams/bus.js"
import { DecodeError } from "../src/streams/errors.js"
import { FormulaParseError, parseFormula } from "../src/engine/scanner.js"

/** `npm run fuzz` runs 10,000 cases per target; `npm test` 2,000 (the suite must pass on a loaded machine). */
const RUNS = Number(process.env.TICKFLOW_FUZZ_RUNS ?? 2_000)
const CASE_TIMEOUT_MS = 10_000
const params = { numRuns: RUNS, timeout: CASE_TIMEOUT_MS }

/** Give the worker's event loop a turn every 50 cases: vitest's RPC must not starve. */
let cases = 0
const breathe = () => (++cases % 50 === 0 ? new Promise<void>((r) => setImmediate(r)) : Promise.resolve())

/** JSON nested `depth` levels deep, built iteratively (a deep parameter of a hostile sender). */
const deepJson = (depth: number, open = "[", close = "]") => `${open.repeat(depth)}1${close.repeat(depth)}`
const deepObject = (depth: number) => `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`

/** A valid value with one field replaced or removed at random: close to the real thing. */
const mutated = (valid: Record<string, unknown>) =>
  fc
    .tuple(fc.constantFrom(...Object.keys(valid)), fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.constant(undefined)))
    .map(([key, value]) => {
      const copy: Record<string, unknown> = { ...valid }
      if (value === undefined) delete copy[key]
      else copy[key] = value
      return copy
    })

describe("fuzz: YAML batch parser", () => {
  const example = readFileSync(resolve(__dirname, "..", "examples", "sweep.yaml"), "utf8")
  const parse = (text: string) => {
    try {
      parseBatchText(text, "fuzz.yaml")
      return "ok"
    } catch (e) {
      if (e instanceof ConfigError) return "config-error"
      throw e
    }
  }

  it("never crashes or hangs: accepted, or a ConfigError listing problems (not YAML, or not a batch) (10,000 cases with npm run fuzz)", async () => {
    const lines = example.split("\n")
    const text = fc.oneof(
      fc.string({ maxLength: 400 }),
      fc.string({ unit: fc.constantFrom(..."*&!%<<:{}[]"), maxLength: 20 }),
      fc.string({ unit: fc.constantFrom(..."abc:-[]{}&*!|>'\"#\n 0123456789.,?%@`"), maxLength: 400 }),
      // the example with lines dropped, duplicated or garbled
      fc.array(fc.oneof(fc.constantFrom(...lines), fc.string({ maxLength: 40 })), { maxLength: 60 }).map((ls) => ls.join("\n")),
      fc.jsonValue({ maxDepth: 5 }).map((v) => YAML.stringify({ batch_name: "f", defaults: v, runs: [v] })),
      fc.integer({ min: 65, max: 500 }).map((d) => `batch_name: deep\nruns: ${deepJson(d)}\n`)
    )
    const seen = new Set<string>()
    await fc.assert(fc.asyncProperty(text, async (t) => {
          seen.add(parse(t))
          await breathe()
        }), params)
    expect(seen.has("config-error")).toBe(true)
  })

  it("YAML that the yaml library rejects with a non-YAML exception (an unresolved alias) is a ConfigError", () => {
    expect(() => parseBatchText("*!", "x.yaml")).toThrow(ConfigError)
    expect(() => parseBatchText("*!", "x.yaml")).toThrow(/x\.yaml.*not valid YAML.*alias/s)
  })

  it("a config nested 100,000 levels deep is a ConfigError naming the field, not a stack overflow", () => {
    const raw = YAML.parse(`batch_name: deep\nruns: [{id: a, params: {x: ${deepJson(1_000)}}}]\n`, { maxAliasCount: 100 })
    expect(() => parseBatchConfig(raw)).toThrow(/runs\[0\]\.params\.x.*nested deeper than 64 levels/)
    const json = JSON.parse(`{"batch_name":"deep","runs":[{"id":"a","params":{"x":${deepJson(100_000)}}}]}`)
    expect(() => parseBatchConfig(json)).toThrow(ConfigError)
  })
})

describe("fuzz: wire decoders", () => {
  const scenario = JSON.parse(readFileSync(resolve(__dirname, "..", "examples", "scenario.json"), "utf8")) as Record<string, unknown>
  const group = {
    v: 1,
    batch_id: "b1",
    group_id: "g1",
    slice: { universe: ["AAA"], freq: "1d", start_date: "2020-01-02", end_date: "2020-12-31", warmup_bars: 0 },
    base: { strategy: "trend_baseline", params: {}, strict: true, start_capital: 1000, costs: { commission_bps: 0, spread_w: 0, impact_w: 0, slippage_bps: 0 }, batch_seed: 0 },
    items: [{ id: "s1" }],
    findings: []
  }
  const result = {
    v: 1, batch_id: "b1", scenario_id: "s1", status: "success", strategy: "x", params: {}, universe: ["AAA"], freq: "1d",
    start_date: "2020-01-02", end_date: "2020-12-31", warnings: [], engine_version: "1", timings: {}, finished_at: "2020-01-01T00:00:00Z"
  }
  const decoders: Array<[string, z.ZodType, Record<string, unknown>]> = [
    ["SubmitMessage", SubmitMessage, scenario],
    ["GroupOnWire", GroupOnWire, group],
    ["GroupWire", GroupWire, group],
    ["GroupMessage", GroupMessage, group],
    ["ScenarioResult", ScenarioResult, result],
    ["PipelineEvent", PipelineEvent, { v: 1, batch_id: "b1", subject_id: "s1", kind: "progress", at: "x", data: {} }],
    ["BatchRecord", BatchRecord, { batch_id: "b1" }],
    ["RunStatus", RunStatus, { batch_id: "b1" }],
    ["RunManifest", RunManifest, { batch_id: "b1" }]
  ]
  const enc = new TextEncoder()
  for (const [name, schema, valid] of decoders) {
    it(`${name}: any bytes decode to a value or a DecodeError (10,000 cases with npm run fuzz)`, async () => {
      // hostile depths are rare in the mix (weight 1 of 32): each costs milliseconds, not microseconds
      const bytes = fc.oneof(
        { arbitrary: fc.uint8Array({ maxLength: 300 }), weight: 10 },
        { arbitrary: fc.jsonValue({ maxDepth: 6 }).map((v) => enc.encode(JSON.stringify(v))), weight: 10 },
        { arbitrary: mutated(valid).map((v) => enc.encode(JSON.stringify(v))), weight: 10 },
        { arbitrary: fc.integer({ min: 65, max: 20_000 }).map((d) => enc.encode(d % 2 ? deepJson(d) : deepObject(d))), weight: 1 },
        { arbitrary: 
fc.integer({ min: 65, max: 5_000 }).map((d) => enc.encode(`{"params":${deepJson(d)},${JSON.stringify(valid).slice(1)}`)), weight: 1 }
      )
      await fc.assert(
        fc.asyncProperty(bytes, async (b) => {
          await breathe()
          const r = decodeMessage(schema, `tf.fuzz.${name}`, b)
          if (r._tag === "Left") {
            expect(r.left).toBeInstanceOf(DecodeError)
            expect(r.left.problems.length).toBeGreaterThan(0)
            // the problem text stays short: never an echo of a huge value
            expect(r.left.message.length).toBeLessThan(20_000)
          }
        }),
        params
      )
    })
  }
})

describe("fuzz: scanner formula parser", () => {
  it("any text parses to a formula or a FormulaParseError with a column (10,000 cases with npm run fuzz)", async () => {
    const words = ["close", "open", "high", "low", "volume", "sma", "ema", "rsi", "abs", "crossover", "and", "or", "not", ">", "<", ">=", "==", "+", "-", "*", "/", "(", ")", ",", "50", "1.5", " "]
    const text = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.array(fc.constantFrom(...words), { maxLength: 80 }).map((ws) => ws.join(" ")),
      fc.integer({ min: 50, max: 20_000 }).map((d) => `${"(".repeat(d)}close${")".repeat(d)} > 1`),
      fc.integer({ min: 50, max: 20_000 }).map((d) => `${"- ".repeat(d)}close > 1`),
      fc.integer({ min: 50, max: 20_000 }).map((d) => `${"not ".repeat(d)}close > 1`),
      fc.integer({ min: 50, max: 3_000 }).map((d) => `close > ${Array(d).fill("1").join(" + ")}`)
    )
    let parsed = 0
    await fc.assert(
      fc.asyncProperty(text, async (t) => {
        await breathe()
        try {
          parseFormula(t)
          parsed++
        } catch (e) {
          expect(e).toBeInstanceOf(FormulaParseError)
          expect((e as FormulaParseError).message).toMatch(/column \d+/)
        }
      }),
      params
    )
    expect(parsed).toBeGreaterThan(0)
  })
})
