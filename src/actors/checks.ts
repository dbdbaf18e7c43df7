/**
 * The per-scenario checks of the requirements phase as plain functions, shared by the
 * requirements actor and by `tickflow validate` / `run --dry-run`, so a dry run reports exactly
 * what the pipeline would skip. (Availability's check is `availabilityProblem` in availability.ts.)
 */
import { existsSync } from "node:fs"
import { resolve } from "node:path"
import { Effect } from "effect"
import { getStrategy, loadStrategy, validateParams, type StrategyDefinition } from "../engine/index.js"
import { bundleStrategyFile, inspectBundle } from "../strategies-store.js"
import type { Scenario } from "../schemas/batch.js"

export type StrategyLookup = { readonly ok: true; readonly def: StrategyDefinition<any> } | { readonly ok: false; readonly reason: string }

/**
 * Resolves a built-in name or a local module path (relative to `baseDir`, bundled as `submit`
 * publishes it) without instantiating it: what the CLI checks before sending a batch.
 */
export const resolveStrategy = async (name: string, baseDir: string): Promise<StrategyLookup> => {
  try {
    const builtin = getStrategy(name)
    if (builtin) return { ok: true, def: builtin as StrategyDefinition<any> }
    const file = resolve(baseDir, name)
    if (/\.(m?[jt]s|cts|cjs)$/i.test(name) && existsSync(file))
      return { ok: true, def: (await Effect.runPromise(bundleStrategyFile(file).pipe(Effect.flatMap(inspectBundle)))) as StrategyDefinition<any> }
    return { ok: true, def: await loadStrategy(name) }
  } catch (e) {
    const cause = (e as { error?: unknown }).error ?? e
    return { ok: false, reason: `strategy: ${(cause as Error)?.message ?? String(cause)}` }
  }
}

export type RequirementsCheck =
  | {
      readonly ok: true
      /** parameters after defaults (and clamping when not strict) */
      readonly params: Record<string, unknown>
      readonly warmupBars: number
      readonly warnings: ReadonlyArray<string>
    }
  | { readonly ok: false; readonly reason: string; readonly warnings: ReadonlyArray<string> }

/** Parameters against the strategy's schema and rules, then its warmup need. */
export const checkRequirements = (def: StrategyDefinition<any>, s: Pick<Scenario, "params" | "strict" | "freq">): RequirementsCheck => {
  const v = validateParams(def, s.params, { strict: s.strict })
  if (!v.ok) return { ok: false, reason: v.errors.join("; "), warnings: v.warnings }
  try {
    const warmupBars = def.calculateRequirements(v.params, s.freq).warmupBars
    return { ok: true, params: v.params, warmupBars, warnings: v.warnings }
  } catch (e) {
    return { ok: false, reason: `calculateRequirements threw: ${(e as Error).message}`, warnings: v.warnings }
  }
}
