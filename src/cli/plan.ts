/**
 * The plan of a batch: its scenarios after expansion and every check that needs no backtest —
 * availability (dates, symbols and ranges against the catalog's coverage) and requirements
 * (strategy, parameters, warmup) — with the functions the pipeline's phases call
 * (`availabilityProblem`, `resolveStrategy`, `checkRequirements`). `tickflow validate` and
 * `tickflow run --dry-run` print it; `run` uses its warmups to replay runs for their files.
 */
import { resolve } from "node:path"
import { Effect } from "effect"
import { availabilityProblem } from "../actors/availability.js"
import { checkRequirements, resolveStrategy, type StrategyLookup } from "../actors/checks.js"
import { groupScenarios } from "../actors/coordinator.js"
import { resultKey, sliceHash } from "../actors/result-key.js"
import { buildCoverage, type CoverageReport } from "../data/index.js"
import type { Scenario } from "../schemas/batch.js"

export interface PlanProblem {
  /** the phase that would skip the scenario at run time */
  readonly phase: "availability" | "requirements"
  readonly reason: string
}

export interface PlanEntry {
  readonly scenario: Scenario
  readonly status: "ready" | "skipped"
  /** every problem found; the first is the one the pipeline would report */
  readonly problems: ReadonlyArray<PlanProblem>
  /** parameters after defaults, when they validate */
  readonly params?: Record<string, unknown>
  /** warm-up bars the scenario reads before its start (its strategy's requirement) */
  readonly warmupBars: number
  /**
   * the result key the pipeline will give its result (result-key.ts: slice, data and engine
   * version, resolved parameters, warm-up, capital, costs, seed); undefined when it would be skipped
   */
  readonly resultKey?: string
  readonly warnings: ReadonlyArray<string>
}

export interface BatchPlan {
  readonly entries: ReadonlyArray<PlanEntry>
  /** group messages the coordinator will publish (scenarios sharing a data slice) */
  readonly groups: number
  readonly dataRoot: string
  /** catalog data version (content hash), when the catalog could be read */
  readonly dataVersion?: string
}

export interface PlanOptions {
  readonly dataRoot: string
  readonly baseDir: string
}

/** Runs the checks of the availability and requirements phases on every scenario (no backtest). */
export const planBatch = async (scenarios: ReadonlyArray<Scenario>, opts: PlanOptions): Promise<BatchPlan> => {
  const coverage = new Map<string, CoverageReport | string>()
  const coverageFor = async (root: string) => {
    const abs = resolve(root)
    let hit = coverage.get(abs)
    if (hit === undefined) {
      const r = await Effect.runPromise(Effect.either(buildCoverage(abs)))
      hit = r._tag === "Right" ? r.right : `the coverage index of ${abs} is unreadable: ${r.left.message}`
      coverage.set(abs, hit)
    }
    return hit
  }
  const strategies = new Map<string, StrategyLookup>()
  const strategyFor = async (name: string) => {
    let hit = strategies.get(name)
    if (hit === undefined) {
      hit = await resolveStrategy(name, opts.baseDir)
      strategies.set(name, hit)
    }
    return hit
  }
  interface Draft {
    problems: PlanProblem[]
    params?: Record<string, unknown>
    warmupBars: number
    warnings: string[]
  }
  const drafts = new Map<string, Draft>()
  let dataVersion: string | undefined
  for (const s of scenarios) {
    const d: Draft = { problems: [], warmupBars: 0, warnings: [] }
    const root = s.data_root ?? opts.dataRoot
    const report = await coverageFor(root)
    if (typeof report === "string") d.problems.push({ phase: "availability", reason: report })
    else {
      dataVersion ??= report.dataVersion
      const problem = availabilityProblem({ ...s, warmup_bars: 0 }, report, root)
      if (problem) d.problems.push({ phase: "availability", reason: problem })
    }
    const def = await strategyFor(s.strategy)
    if (!def.ok) d.problems.push({ phase: "requirements", reason: def.reason })
    else {
      const check = checkRequirements(def.def, s)
      d.warnings.push(...check.warnings)
      if (!check.ok) d.problems.push({ phase: "requirements", reason: check.reason })
      else {
        d.params = check.params
        d.warmupBars = check.warmupBars
      }
    }
    drafts.set(s.scenario_id, d)
  }
  const groups = groupScenarios(scenarios)
  const entries: PlanEntry[] = scenarios.map((s) => {
    const d = drafts.get(s.scenario_id)!
    return {
      scenario: s,
      status: d.problems.length === 0 ? "ready" : "skipped",
      problems: d.problems,
      ...(d.params ? { params: d.params } : {}),
      warmupBars: d.warmupBars,
      ...(d.problems.length === 0 && d.params && dataVersion ? { resultKey: resultKey(sliceHash(s, dataVersion), s, d.params, d.warmupBars) } : {}),
      warnings: d.warnings
    }
  })
  return { entries, groups: groups.length, dataRoot: resolve(opts.dataRoot), ...(dataVersion ? { dataVersion } : {}) }
}

/** One line per problem, `scenario [phase] reason`, for validate and dry-run. */
export const planProblems = (plan: BatchPlan): string[] =>
  plan.entries.flatMap((e) => e.problems.map((p) => `${e.scenario.scenario_id} [${p.phase}] ${p.reason}`))
