/**
 * The strategy registry: built-ins by name, user strategies by `name@hash` — a module published
 * to the strategy store (src/strategies-store.ts) and fetched by that content key. A strategy
 * value is never a path or URL: nothing a bus message names is ever imported.
 */
import { pathToFileURL } from "node:url"
import { StrategyNotFoundError } from "../errors.js"
import type { StrategyDefinition } from "../types.js"
import { breakout } from "./breakout.js"
import { meanReversion } from "./mean_reversion.js"
import { trendBaseline } from "./trend_baseline.js"
import { scanDefinition } from "./scan.js"

const BUILT_INS: ReadonlyArray<StrategyDefinition<any>> = [trendBaseline, meanReversion, breakout]
/**
 * Names a scenario may use: the trading built-ins, and `scan` (a scanner job's per-symbol
 * scenario: its requirements resolve like a strategy's, its execution is the scanner's). `scan`
 * is not listed as a strategy and never runs through the backtest loop.
 */
const BY_NAME = new Map<string, StrategyDefinition>([...BUILT_INS, scanDefinition as StrategyDefinition<any>].map((s) => [s.name, s]))

/** True for the engine's own strategy objects (they get unguarded columns: see window.ts). */
export const isBuiltInStrategy = (def: StrategyDefinition<any>): boolean => BUILT_INS.includes(def)

export const getStrategy = (name: string): StrategyDefinition | undefined => BY_NAME.get(name)

export const listStrategies = (): StrategyDefinition[] => [...BUILT_INS]

const builtInList = (): string => BUILT_INS.map((s) => s.name).join(", ")

/** Published strategy names: start with a letter; letters, digits, '_' and '-' (max 64). */
export const STRATEGY_NAME_RE = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/
/** Content hash in a reference: the first 32 hex digits (128 bits) of the module's sha256. */
export const STRATEGY_HASH_RE = /^[0-9a-f]{32}$/

export type StrategyRef =
  | { readonly kind: "builtin"; readonly name: string; readonly definition: StrategyDefinition }
  | { readonly kind: "published"; readonly name: string; readonly hash: string; readonly key: string }

/** A value shown in a message: at most 120 characters of it. */
const shown = (value: string): string => JSON.stringify(value.length > 120 ? `${value.slice(0, 100)}…` : value)

const looksLikePathOrUrl = (value: string): boolean =>
  /[/\\]/.test(value) || /^[A-Za-z][A-Za-z0-9+.-]*:/.test(value) || /\.(m?[jt]s|cjs|cts|mts|json|node)$/i.test(value) || value.startsWith(".")

const PUBLISH_HINT = "publish a module with `tickflow strategy publish ./my_strategy.ts` (role researcher or admin) and use the name@hash it prints"

/**
 * What a strategy value names: a built-in, or a published module by name@hash. Throws
 * StrategyNotFoundError for anything else — paths, `../`, URLs and unknown names — without
 * touching the file system.
 */
export const parseStrategyRef = (value: string): StrategyRef => {
  const builtIn = BY_NAME.get(value)
  if (builtIn !== undefined) return { kind: "builtin", name: value, definition: builtIn }
  const at = value.lastIndexOf("@")
  if (at > 0) {
    const name = value.slice(0, at)
    const hash = value.slice(at + 1)
    if (STRATEGY_NAME_RE.test(name) && STRATEGY_HASH_RE.test(hash)) return { kind: "published", name, hash, key: `${name}@${hash}` }
  }
  if (looksLikePathOrUrl(value))
    throw new StrategyNotFoundError(
      value,
      `strategy ${shown(value)} names a module path or URL; modules are never loaded from a path or URL in a message. Built-in strategies are ${builtInList()}; ${PUBLISH_HINT}`
    )
  throw new StrategyNotFoundError(value, `unknown strategy ${shown(value)}; built-in strategies are ${builtInList()}, or ${PUBLISH_HINT}`)
}

export const isStrategyDefinition = (value: unknown): value is StrategyDefinition => {
  if (typeof value !== "object" || value === null) return false
  const v = value as Record<string, unknown>
  const params = v.params as { safeParse?: unknown } | undefined
  return (
    typeof v.name === "string" &&
    typeof params === "object" &&
    params !== null &&
    typeof params.safeParse === "function" &&
    typeof v.validateConfig === "function" &&
    typeof v.calculateRequirements === "function" &&
    typeof v.create === "function"
  )
}

/**
 * Import a module file that this process wrote itself (the strategy store's private cache,
 * after verifying the content hash) and take its `default` or `strategy` export.
 */
export const importStrategyModule = async (label: string, absoluteFile: string): Promise<StrategyDefinition> => {
  let mod: Record<string, unknown>
  try {
    mod = (await import(pathToFileURL(absoluteFile).href)) as Record<string, unknown>
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause)
    throw new StrategyNotFoundError(label, `strategy module ${label} failed to load: ${why.slice(0, 500)}`)
  }
  const candidate = mod.default ?? mod.strategy
  if (!isStrategyDefinition(candidate)) {
    throw new StrategyNotFoundError(
      label,
      `strategy module ${label} exports no strategy: expected a \`default\` or \`strategy\` export with name, params (a zod schema), validateConfig, calculateRequirements and create`
    )
  }
  return candidate
}

/**
 * A built-in by name, or a published module through `fetchPublished` (the strategy store).
 * Never a path: see parseStrategyRef.
 */
export const loadStrategy = async (
  value: string,
  fetchPublished?: (ref: Extract<StrategyRef, { kind: "published" }>) => Promise<StrategyDefinition>
): Promise<StrategyDefinition> => {
  const ref = parseStrategyRef(value)
  if (ref.kind === "builtin") return ref.definition
  if (fetchPublished === undefined)
    throw new StrategyNotFoundError(value, `strategy ${shown(value)} is a published module, and this process has no strategy store to fetch it from`)
  return fetchPublished(ref)
}
