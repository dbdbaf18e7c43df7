/**
 * Phase 3, requirements: resolve each scenario's strategy (without instantiating it), validate
 * its parameters (strict: bound violations skip; non-strict: clamped with a warning), compute
 * warmup needs. The group's slice asks for the largest warmup any scenario needs; each scenario
 * still reads only its own warm-up and dates from it (the executor starts it at its own offset).
 *
 * Then the result cache: a scenario whose result key (result-key.ts) has a stored result is
 * answered from it here — no load, no engine — unless the submission said `cache: false`.
 */
import { Effect, type Either } from "effect"
import { ENGINE_VERSION, type StrategyDefinition } from "../engine/index.js"
import { StrategyStore } from "../strategies-store.js"
import { checkRequirements } from "./checks.js"
import type { GroupMessage, GroupItem } from "../schemas/wire.js"
import type { ScenarioResult } from "../schemas/results.js"
import { phaseResult, phaseStart, publishGroup, stoppedResult, publishResults } from "./common.js"
import { lookupCached } from "./cache.js"
import { resultKey, sliceHash } from "./result-key.js"
import { groupActor } from "./runner.js"

/**
 * The warm-up a group's slice asks for: its largest scenario's, rounded up to a power of two
 * (at least 64). Each scenario reads only its own warm-up from the slice, so a larger slice
 * changes no result, while groups of one sweep with slightly different warm-ups (a 10,000-run
 * sweep is 20 groups) share one loaded slice per symbol instead of loading one each.
 */
export const sliceWarmup = (bars: number): number => (bars <= 0 ? 0 : Math.max(64, 2 ** Math.ceil(Math.log2(bars))))

export const requirementsActor = groupActor({
  name: "requirements",
  consumer: "requirements",
  phase: "requirements",
  // several groups at once: a stage waits on the bus and the disk more than on the CPU
  concurrency: 4,
  handle: (group) =>
    Effect.gen(function* () {
      const strategies = yield* StrategyStore
      const started = yield* phaseStart("requirements", group)
      const passed: GroupItem[] = []
      const skipped = []
      // a sweep names one strategy: resolved once per group, not once per scenario
      const resolved = new Map<string, Either.Either<StrategyDefinition<any>, unknown>>()
      for (const item of group.items) {
        const s = item.scenario
        let def = resolved.get(s.strategy)
        if (def === undefined) resolved.set(s.strategy, (def = yield* Effect.either(strategies.load(s.strategy))))
        if (def._tag === "Left") {
          const cause = (def.left as { error?: unknown }).error ?? def.left
          skipped.push(stoppedResult(s, "skipped", "requirements", `strategy: ${(cause as Error).message ?? String(cause)}`))
          continue
        }
        // the same parameter and warm-up checks `tickflow validate` runs (checks.ts)
        const check = checkRequirements(def.right, s)
        if (!check.ok) {
          skipped.push(stoppedResult(s, "skipped", "requirements", check.reason, { warnings: check.warnings }))
          continue
        }
        passed.push({ scenario: s, params: check.params, warmup_bars: check.warmupBars, warnings: [...item.warnings, ...check.warnings] })
      }
      yield* publishResults(skipped, group.submission)
      const cached = yield* answerFromCache(group, passed)
      const answered = new Set(cached.map((c) => c.scenario_id))
      const toRun = answered.size === 0 ? passed : passed.filter((p) => !answered.has(p.scenario.scenario_id))
      if (toRun.length > 0) {
        const warmup = sliceWarmup(Math.max(...toRun.map((p) => p.warmup_bars ?? 0)))
        const next: GroupMessage = { ...group, slice: { ...group.slice, warmup_bars: warmup }, items: toRun, resolved_by: ENGINE_VERSION }
        yield* publishGroup("load", next)
      }
      yield* phaseResult("requirements", group, started, {
        in: group.items.length,
        pass: passed.length,
        skipped: skipped.length,
        failed: 0
      }, cached.length > 0 ? { cached: cached.length } : {})
    })
})

/**
 * Publish the cached answer of every passed scenario whose result key is known; returns them.
 * The stored result keeps its metrics, timings and equity reference; ids, name and submission
 * are this scenario's. A cache that cannot be read is no reason to stop: the scenarios run.
 */
const answerFromCache = (group: GroupMessage, passed: ReadonlyArray<GroupItem>) =>
  Effect.gen(function* () {
    if (group.cache === false || group.data_version === undefined || passed.length === 0) return []
    const sliceKey = sliceHash(group.slice, group.data_version)
    const found = yield* lookupCached(sliceKey).pipe(
      Effect.catchAll((e) => Effect.logWarning("result cache unavailable; running every scenario", e).pipe(Effect.as(new Map<string, ScenarioResult>())))
    )
    if (found.size === 0) return []
    const answers: ScenarioResult[] = []
    for (const item of passed) {
      const key = resultKey(sliceKey, item.scenario, item.params ?? item.scenario.params, item.warmup_bars ?? 0)
      const hit = found.get(key)
      if (!hit) continue
      const s = item.scenario
      const { name: _name, submission: _submission, attempt: _attempt, ...stored } = hit
      answers.push({
        ...stored,
        batch_id: s.batch_id,
        scenario_id: s.scenario_id,
        ...(s.name !== undefined ? { name: s.name } : {}),
        cached: true
      })
    }
    yield* publishResults(answers, group.submission)
    return answers
  })
