/**
 * The result key: a result is a pure function of its inputs (DESIGN.md), so it is cached by the
 * hash of those inputs. Two parts:
 * - the slice part: what data the scenario read (universe in order, frequency, dates, the data
 *   version of the catalog it read) and the engine version;
 * - the scenario part: everything else that decides the numbers (strategy, resolved parameters,
 *   warm-up, capital, costs, benchmark, seed).
 * Ids, names, batch, group, order, executor and attempt are not inputs and never enter it.
 *
 * The cache (KV `tf_cache`) stores one entry per execution chunk under `<slice hash>.<chunk>`,
 * holding the thin results of that chunk by result key: writes cost one put per chunk, and the
 * requirements phase finds every cached result of a group's slice with one key listing.
 */
import * as nodeCrypto from "node:crypto"
import { ENGINE_VERSION, scenarioSeed } from "../engine/index.js"
import type { Scenario } from "../schemas/batch.js"

/**
 * SHA-256 hex of a string. Node's one-shot `crypto.hash` (20.12+) is ~3× cheaper than a
 * createHash object for the short texts hashed here once per scenario; older 20.x fall back.
 */
const sha: (s: string) => string =
  typeof (nodeCrypto as { hash?: unknown }).hash === "function"
    ? (s) => (nodeCrypto as unknown as { hash: (alg: string, data: string, enc: string) => string }).hash("sha256", s, "hex")
    : (s) => nodeCrypto.createHash("sha256").update(s).digest("hex")

/** Strings JSON writes as they are, between quotes: no escaping to do. */
const PLAIN_TEXT = /^[A-Za-z0-9_.:-]*$/
const quoted = (text: string) => (PLAIN_TEXT.test(text) ? `"${text}"` : JSON.stringify(text))

/**
 * JSON with object keys sorted at every level: the same value always gives the same text.
 * Loops and string appends rather than map/filter/join, and numbers, booleans and plain
 * strings written without JSON.stringify: it runs once per scenario on the executors' hot path
 * (result keys; test/hot-path-codecs.test.ts holds it to the plain definition). Keys whose
 * value is undefined are left out, as JSON does.
 */
export const canonicalJson = (value: unknown): string => {
  switch (typeof value) {
    case "number":
      // JSON writes a finite number as Number#toString does, anything else as null
      return Number.isFinite(value) ? String(value) : "null"
    case "string":
      return quoted(value)
    case "boolean":
      return value ? "true" : "false"
    case "object":
      break
    default:
      return JSON.stringify(value) ?? "null"
  }
  if (value === null) return "null"
  if (Array.isArray(value)) {
    let out = "["
    for (let i = 0; i < value.length; i++) out += (i > 0 ? "," : "") + canonicalJson(value[i])
    return out + "]"
  }
  const obj = value as Record<string, unknown>
  const keys = Object.keys(obj).sort()
  let out = "{"
  let first = true
  for (const k of keys) {
    const v = obj[k]
    if (v === undefined) continue
    out += (first ? "" : ",") + quoted(k) + ":" + canonicalJson(v)
    first = false
  }
  return out + "}"
}

/** Hash of the data a group's scenarios read and the engine that reads it (32 hex chars). */
export const sliceHash = (
  slice: { readonly universe: ReadonlyArray<string>; readonly freq: string; readonly start_date: string; readonly end_date: string },
  dataVersion: string,
  engineVersion: string = ENGINE_VERSION
): string =>
  sha(canonicalJson({ k: "slice", universe: slice.universe, freq: slice.freq, start: slice.start_date, end: slice.end_date, data: dataVersion, engine: engineVersion })).slice(0, 32)

/** Everything about a scenario, beyond its slice, that decides its numbers. */
export const scenarioContent = (s: Scenario, resolvedParams: Record<string, unknown>, warmupBars: number) => ({
  strategy: s.strategy,
  params: resolvedParams,
  warmup: warmupBars,
  capital: s.start_capital,
  costs: s.costs,
  benchmark: s.benchmark ?? null,
  // the seed a strategy sees is derived from the batch seed and the scenario id
  seed: scenarioSeed(s.batch_seed, s.scenario_id)
})

/** The result key of one scenario: `<slice hash>` + hash of its content (64 hex chars). */
export const resultKey = (sliceKey: string, s: Scenario, resolvedParams: Record<string, unknown>, warmupBars: number): string =>
  sliceKey + sha(canonicalJson(scenarioContent(s, resolvedParams, warmupBars))).slice(0, 32)

/** The slice hash a result key starts with (its cache entries live under it). */
export const sliceOfKey = (key: string): string => key.slice(0, 32)

/** KV key of one execution chunk's cache entry. */
export const cacheEntryKey = (sliceKey: string, batchId: string, groupId: string) => `${sliceKey}.${batchId}.${groupId}`
