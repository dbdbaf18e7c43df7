/**
 * The strategy registry: built-ins by name, user strategies by module path.
 */
import { existsSync } from "node:fs"
import { isAbsolute, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { StrategyNotFoundError } from "../errors.js"
import type { StrategyDefinition } from "../types.js"
import { breakout } from "./breakout.js"
import { meanReversion } from "./mean_reversion.js"
import { trendBaseline } from "./trend_baseline.js"

const BUILT_INS: ReadonlyArray<StrategyDefinition<any>> = [trendBaseline, meanReversion, breakout]
const BY_NAME = new Map<string, StrategyDefinition>(BUILT_INS.map((s) => [s.name, s]))

/** True for the engine's own strategy objects (they get unguarded columns: see window.ts). */
export const isBuiltInStrategy = (def: StrategyDefinition<any>): boolean => BUILT_INS.includes(def)

export const getStrategy = (name: string): StrategyDefinition | undefined => BY_NAME.get(name)

export const listStrategies = (): StrategyDefinition[] => [...BY_NAME.values()]

const builtInList = (): string => [...BY_NAME.keys()].join(", ")

const looksLikePath = (value: string): boolean =>
  value.includes("/") || value.includes("\\") || /\.(m?[jt]s|cjs|cts|mts)$/.test(value)

const isStrategyDefinition = (value: unknown): value is StrategyDefinition => {
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

/** Loaded user modules by absolute path: a module is imported (and checked) once per process. */
const moduleCache = new Map<string, Promise<StrategyDefinition>>()

const importStrategy = async (value: string, absolutePath: string): Promise<StrategyDefinition> => {
  let mod: Record<string, unknown>
  try {
    mod = (await import(pathToFileURL(absolutePath).href)) as Record<string, unknown>
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause)
    throw new StrategyNotFoundError(value, `strategy module ${JSON.stringify(value)} (${absolutePath}) failed to load: ${why}`)
  }
  const candidate = mod.default ?? mod.strategy
  if (!isStrategyDefinition(candidate)) {
    throw new StrategyNotFoundError(
      value,
      `strategy module ${JSON.stringify(value)} (${absolutePath}) exports no strategy: expected a \`default\` or \`strategy\` export with name, params (a zod schema), validateConfig, calculateRequirements and create`
    )
  }
  return candidate
}

/**
 * A built-in strategy by name, or a module (path relative to `baseDir`, default the current
 * directory; `.ts` works under tsx) exporting `default` or `strategy`. Throws
 * StrategyNotFoundError naming the value and listing the built-ins.
 */
export const loadStrategy = async (nameOrPath: string, baseDir?: string): Promise<StrategyDefinition> => {
  const builtIn = BY_NAME.get(nameOrPath)
  if (builtIn !== undefined) return builtIn
  if (!looksLikePath(nameOrPath)) {
    throw new StrategyNotFoundError(
      nameOrPath,
      `unknown strategy ${JSON.stringify(nameOrPath)}; built-in strategies are ${builtInList()}, or give a module path (./my_strategy.ts)`
    )
  }
  const absolutePath = isAbsolute(nameOrPath) ? nameOrPath : resolve(baseDir ?? process.cwd(), nameOrPath)
  if (!existsSync(absolutePath)) {
    throw new StrategyNotFoundError(
      nameOrPath,
      `strategy module ${JSON.stringify(nameOrPath)} not found at ${absolutePath}; built-in strategies are ${builtInList()}`
    )
  }
  let loading = moduleCache.get(absolutePath)
  if (loading === undefined) {
    loading = importStrategy(nameOrPath, absolutePath)
    moduleCache.set(absolutePath, loading)
    // a failed import is not cached: the file may be fixed and retried
    loading.catch(() => moduleCache.delete(absolutePath))
  }
  return loading
}
