/**
 * Phase 5, quality: stretch gaps, warmup sufficiency, synthetic bars in strict mode,
 * non-monotonic timestamps, bad prices, duplicates — on the loaded slices. Errors skip the
 * scenario with the findings as reason; warnings travel on to its result. Passing scenarios are
 * split into execution messages small enough that executors share the work evenly.
 */
import { Effect } from "effect"
import { checkQuality, type QualityFinding } from "../data/index.js"
import type { PriceSeries } from "../engine/types.js"
import type { GroupMessage, GroupItem } from "../schemas/wire.js"
import { ActorSettings, ownUniverses, phaseResult, phaseStart, publishResults, publishGroup, stoppedResult } from "./common.js"
import { fetchSlice } from "./slices.js"
import { groupActor } from "./runner.js"

const summarize = (findings: ReadonlyArray<QualityFinding>, max = 3) =>
  findings.slice(0, max).map((f) => f.message).join("; ") + (findings.length > max ? `; and ${findings.length - max} more` : "")

/** Split a list into chunks of at most `size`, sized evenly (25 → 13+12, not 24+1). */
export const evenChunks = <A>(items: ReadonlyArray<A>, size: number): A[][] => {
  const count = Math.max(1, Math.ceil(items.length / Math.max(1, size)))
  const out: A[][] = []
  for (let i = 0; i < count; i++) out.push(items.slice(Math.floor((i * items.length) / count), Math.floor(((i + 1) * items.length) / count)))
  return out.filter((c) => c.length > 0)
}

export const qualityActor = groupActor({
  name: "quality",
  consumer: "quality",
  phase: "quality",
  // several groups at once: a stage waits on the bus and the disk more than on the CPU
  concurrency: 4,
  handle: (group) =>
    Effect.gen(function* () {
      const settings = yield* ActorSettings
      const started = yield* phaseStart("quality", group)
      // the universe's slices decide quality; a benchmark only needs to be there
      const refs = (group.slices ?? []).filter((r) => group.slice.universe.includes(r.symbol))
      const series: PriceSeries[] = yield* Effect.forEach(refs, fetchSlice, { concurrency: 4 })
      // Findings depend on (strict, warmup) only: computed once per distinct pair. An item that
      // reads its own symbols (a scan group) is judged on those symbols' series only.
      const perItem = ownUniverses(group)
      const memo = new Map<string, QualityFinding[]>()
      const findingsFor = (strict: boolean, warmup: number, universe: ReadonlyArray<string>) => {
        const k = perItem ? `${strict}:${warmup}:${universe.join(",")}` : `${strict}:${warmup}`
        let f = memo.get(k)
        if (!f) {
          const judged = perItem ? series.filter((_, i) => universe.includes(refs[i].symbol)) : series
          f = judged.flatMap((s) => checkQuality(s, { strict, warmupBarsRequired: warmup }))
          memo.set(k, f)
        }
        return f
      }
      const passed: GroupItem[] = []
      const skipped = []
      for (const item of group.items) {
        const f = findingsFor(item.scenario.strict, item.warmup_bars ?? 0, item.scenario.universe)
        const errors = f.filter((x) => x.severity === "error")
        const warnings = f.filter((x) => x.severity === "warning").map((x) => x.message)
        if (errors.length > 0)
          skipped.push(
            stoppedResult(item.scenario, "skipped", "quality", `data quality: ${summarize(errors)}`, {
              ...(item.params ? { params: item.params } : {}),
              warnings: [...item.warnings, ...warnings],
              ...(group.data_version ? { data_version: group.data_version } : {})
            })
          )
        else passed.push({ ...item, warnings: [...item.warnings, ...warnings] })
      }
      yield* publishResults(skipped, group.submission)
      const chunks = evenChunks(passed, settings.execChunkSize)
      yield* Effect.forEach(
        chunks,
        (items, i) => {
          const next: GroupMessage = { ...group, group_id: `${group.group_id}-e${i}`, items }
          return publishGroup("exec", next)
        },
        { concurrency: 16, discard: true }
      )
      yield* phaseResult("quality", group, started, { in: group.items.length, pass: passed.length, skipped: skipped.length, failed: 0 }, { exec_messages: chunks.length })
    })
})
