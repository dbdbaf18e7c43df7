/**
 * Phase 3, requirements: resolve each scenario's strategy (without instantiating it), validate
 * its parameters (strict: bound violations skip; non-strict: clamped with a warning), compute
 * warmup needs. The group's slice asks for the largest warmup any scenario needs.
 */
import { Effect } from "effect"
import { checkRequirements, resolveStrategy } from "./checks.js"
import type { GroupMessage, GroupItem } from "../schemas/wire.js"
import { ActorSettings, phaseResult, phaseStart, publishGroup, stoppedResult, publishResults } from "./common.js"
import { groupActor } from "./runner.js"

export const requirementsActor = groupActor({
  name: "requirements",
  consumer: "requirements",
  phase: "requirements",
  // several groups at once: a stage waits on the bus and the disk more than on the CPU
  concurrency: 4,
  handle: (group) =>
    Effect.gen(function* () {
      const settings = yield* ActorSettings
      const started = yield* phaseStart("requirements", group)
      const passed: GroupItem[] = []
      const skipped = []
      for (const item of group.items) {
        const s = item.scenario
        // the same checks `tickflow validate` runs (checks.ts)
        const def = yield* Effect.promise(() => resolveStrategy(s.strategy, settings.baseDir))
        if (!def.ok) {
          skipped.push(stoppedResult(s, "skipped", "requirements", def.reason))
          continue
        }
        const check = checkRequirements(def.def, s)
        if (!check.ok) {
          skipped.push(stoppedResult(s, "skipped", "requirements", check.reason, { warnings: check.warnings }))
          continue
        }
        passed.push({ scenario: s, params: check.params, warmup_bars: check.warmupBars, warnings: [...item.warnings, ...check.warnings] })
      }
      yield* publishResults(skipped)
      if (passed.length > 0) {
        const warmup = Math.max(...passed.map((p) => p.warmup_bars ?? 0))
        const next: GroupMessage = { ...group, slice: { ...group.slice, warmup_bars: warmup }, items: passed }
        yield* publishGroup("load", next)
      }
      yield* phaseResult("requirements", group, started, {
        in: group.items.length,
        pass: passed.length,
        skipped: skipped.length,
        failed: 0
      })
    })
})
