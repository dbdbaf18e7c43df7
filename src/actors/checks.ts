/**
 * The per-scenario checks of the requirements phase as plain functions, shared by the
 * requirements actor and by `tickflow validate` / `run --dry-run`, so a dry run reports exactly
 * what the pipeline would skip. (Availability's check is `availabilityProblem` in availability.ts.)
 */
import { loadStrategy, validateParams, type StrategyDefinition } from "../engine/index.js"
import type { Scenario } from "../schemas/batch.js"

export type StrategyLookup = { readonly ok: true; readonly def: StrategyDefinition<any> } | { readonly ok: false; readonly reason: string }

/** Resolves a built-in name or a module path (relative to `baseDir`) without instantiating it. */
export const resolveStrategy = async (name: string, baseDir: string): Promise<StrategyLookup> => {
  try {
    return { ok: true, def: await loadStrategy(name, baseDir) }
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
