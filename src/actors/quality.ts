/**
 * Phase 5, quality: stretch gaps, warmup sufficiency, synthetic bars in strict mode,
 * non-monotonic timestamps, bad prices, duplicates — on the loaded slices. Errors skip the
 * scenario with the findings as reason; warnings travel on to its result. Passing scenarios are
 * split into execution messages by work (rows × scenarios, `execChunkRows`), at most
 * `execChunkSize` each: short daily runs travel hundreds to a message (a message costs an
 * executor several bus round trips), long tick runs a handful, so executors still share evenly.
 */
import { Effect } from "effect"
import { qualityFindingsFor, type QualityFinding } from "../data/index.js"
import type { PriceSeries } from "../engine/types.js"
import { sliceItems, type GroupMessage, type GroupItem } from "../schemas/wire.js"
import { ActorSettings, ownUniverses, phaseResult, phaseStart, publishResults, publishGroup, stoppedResult } from "./common.js"
import { fetchSlice } from "./slices.js"
import { groupActor } from "./runner.js"

const summarize = (findings: ReadonlyArray<QualityFinding>, max = 3) =>
  findings.slice(0, max).map((f) => f.message).join("; ") + (findings.length > max ? `; and ${findings.length - max} more` : "")

/**
 * Split a list into chunks of at most `size`, sized evenly (25 → 13+12, not 24+1). `slice`
 * cuts one chunk (sliceItems keeps a group's items in the form they arrived in).
 */
export const evenChunks = <A>(items: ReadonlyArray<A>, size: number, slice: (from: number, to: number) => A[] = (from, to) => items.slice(from, to)): A[][] => {
  const count = Math.max(1, Math.ceil(items.length / Math.max(1, size)))
  const out: A[][] = []
  for (let i = 0; i < count; i++) out.push(slice(Math.floor((i * items.length) / count), Math.floor(((i + 1) * items.length) / count)))
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
      // Findings depend on (strict, warmup) only: each slice is scanned once per strictness,
      // and each distinct warm-up adds its one comparison (qualityFindingsFor). An item that
      // reads its own symbols (a scan group) is judged on those symbols' series only.
      const perItem = ownUniverses(group)
      const checkers = new Map<boolean, Array<(warmup: number) => QualityFinding[]>>()
      const memo = new Map<string, { errors: QualityFinding[]; warnings: string[] }>()
      const findingsFor = (strict: boolean, warmup: number, universe: ReadonlyArray<string>) => {
        const k = perItem ? `${strict}:${warmup}:${universe.join(",")}` : `${strict}:${warmup}`
        let f = memo.get(k)
        if (!f) {
          let perSeries = checkers.get(strict)
          if (!perSeries) checkers.set(strict, (perSeries = series.map((s) => qualityFindingsFor(s, { strict }))))
          const judged = perItem ? perSeries.filter((_, i) => universe.includes(refs[i]!.symbol)) : perSeries
          const all = judged.flatMap((check) => check(warmup))
          f = { errors: all.filter((x) => x.severity === "error"), warnings: all.filter((x) => x.severity === "warning").map((x) => x.message) }
          memo.set(k, f)
        }
        return f
      }
      const passed: GroupItem[] = []
      const skipped = []
      for (const item of group.items) {
        const { errors, warnings } = findingsFor(item.scenario.strict, item.warmup_bars ?? 0, item.scenario.universe)
        if (errors.length > 0)
          skipped.push(
            stoppedResult(item.scenario, "skipped", "quality", `data quality: ${summarize(errors)}`, {
              ...(item.params ? { params: item.params } : {}),
              warnings: [...item.warnings, ...warnings],
              ...(group.data_version ? { data_version: group.data_version } : {})
            })
          )
        else passed.push(warnings.length === 0 ? item : { ...item, warnings: [...item.warnings, ...warnings] })
      }
      // every item passed unchanged: the chunks are parts of the group's own items (wire.ts, sliceItems)
      const kept = skipped.length === 0 && passed.every((it, i) => it === group.items[i]) ? group.items : passed
      yield* publishResults(skipped, group.submission)
      // a scenario reads the whole universe, a scan item its own symbol: rows of one on average
      const allRows = series.reduce((n, x) => n + x.ts.length, 0)
      const rowsPerScenario = Math.max(1, perItem ? allRows / Math.max(1, series.length) : allRows)
      const chunkSize = Math.max(1, Math.min(settings.execChunkSize, Math.floor(settings.execChunkRows / rowsPerScenario)))
      const chunks = evenChunks(kept, chunkSize, (from, to) => sliceItems(kept, from, to))
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
