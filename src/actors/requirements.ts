/**
 * Phase 3, requirements: resolve each scenario's strategy (without instantiating it), validate
 * its parameters (strict: bound violations skip; non-strict: clamped with a warning), compute
 * warmup needs. The group's slice asks for the largest warmup any scenario needs.
 */
import { Effect } from "effect"
import { validateParams } from "../engine/index.js"
import { StrategyStore } from "../strategies-store.js"
import type { GroupMessage, GroupItem } from "../schemas/wire.js"
import { phaseResult, phaseStart, publishGroup, stoppedResult, publishResults } from "./common.js"
import { groupActor } from "./runner.js"

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
      for (const item of group.items) {
        const s = item.scenario
        const def = yield* Effect.either(strategies.load(s.strategy))
        if (def._tag === "Left") {
          const cause = (def.left as { error?: unknown }).error ?? def.left
          skipped.push(stoppedResult(s, "skipped", "requirements", `strategy: ${(cause as Error).message ?? String(cause)}`))
          continue
        }
        const v = validateParams(def.right, s.params, { strict: s.strict })
        if (!v.ok) {
          skipped.push(stoppedResult(s, "skipped", "requirements", v.errors.join("; "), { warnings: v.warnings }))
          continue
        }
        let warmup: number
        try {
          warmup = def.right.calculateRequirements(v.params, s.freq).warmupBars
        } catch (e) {
          skipped.push(stoppedResult(s, "skipped", "requirements", `calculateRequirements threw: ${(e as Error).message}`))
          continue
        }
        passed.push({ scenario: s, params: v.params, warmup_bars: warmup, warnings: [...item.warnings, ...v.warnings] })
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
