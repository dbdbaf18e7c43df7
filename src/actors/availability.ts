/**
 * Phase 2, availability: end >= start, coverage exists for every symbol at the frequency, and
 * the dates lie inside it. The checks depend on the data slice only, so a group passes or is
 * skipped as a whole. An unreadable catalog fails the batch (a batch-level failure).
 */
import { Effect } from "effect"
import { coverageFor, problemsFor, type CoverageReport } from "../data/index.js"
import type { GroupMessage, SliceSpec } from "../schemas/wire.js"
import { ActorSettings, ownUniverses, phaseResult, phaseStart, publishGroup, stopGroup } from "./common.js"
import { coverageOf } from "./coverage.js"
import { groupActor } from "./runner.js"

const day = (iso: string) => iso.slice(0, 10)

/** Why a slice cannot run on this catalog, or undefined when it can. */
export const availabilityProblem = (slice: SliceSpec, report: CoverageReport, root: string): string | undefined => {
  if (slice.end_date < slice.start_date)
    return `end_date ${slice.end_date} is before start_date ${slice.start_date}; swap them or fix the range`
  if (report.entries.length === 0)
    return `the catalog ${root} is missing or holds no data files: build it with \`tickflow data sample --root ${root}\` or \`tickflow data import <csv> --root ${root}\`, or point data_root at an existing catalog`
  for (const symbol of slice.universe) {
    // a bad catalog file skips only the scenarios that would read it, naming it and what is wrong
    const fromTicks = slice.freq !== "tick" && coverageFor(report, symbol, slice.freq) === undefined
    const bad =
      problemsFor(report, symbol, slice.freq, slice.start_date, slice.end_date)[0] ??
      (fromTicks ? problemsFor(report, symbol, "tick", slice.start_date, slice.end_date)[0] : undefined)
    if (bad) return `${symbol} ${slice.freq} data from ${slice.start_date} to ${slice.end_date} needs ${bad.file}, which cannot be used: ${bad.reason}`
    const entry = coverageFor(report, symbol, slice.freq) ?? (slice.freq !== "tick" ? derivable(report, symbol) : undefined)
    if (!entry) {
      const have = [...new Set(report.entries.filter((e) => e.freq === slice.freq).map((e) => e.symbol))]
      const list = have.length > 0 ? `symbols with ${slice.freq} data: ${have.slice(0, 12).join(", ")}${have.length > 12 ? ", ..." : ""}` : `no ${slice.freq} data at all`
      return `no ${slice.freq} data for ${symbol} under ${root} (${list}); import it with \`tickflow data import\``
    }
    const first = day(entry.first)
    const last = day(entry.last)
    if (slice.start_date < first || slice.end_date > last)
      return `${symbol} ${slice.freq} data covers ${first} to ${last}; asked ${slice.start_date} to ${slice.end_date}: keep the range inside the coverage`
  }
  return undefined
}

/**
 * A group whose items read their own symbols and whose slice failed as a whole: each item is
 * judged on its own symbols, so one symbol without data stops only its own scenario; the
 * passing ones go on with a slice of just their symbols.
 */
const perItemAvailability = (group: GroupMessage, report: CoverageReport, root: string, started: number) =>
  Effect.gen(function* () {
    const passing = group.items.filter((it) => availabilityProblem({ ...group.slice, universe: it.scenario.universe }, report, root) === undefined)
    const stopped = group.items.filter((it) => !passing.includes(it))
    for (const it of stopped) yield* stopGroup(group, [it], "skipped", "availability", availabilityProblem({ ...group.slice, universe: it.scenario.universe }, report, root)!)
    if (passing.length > 0) {
      const universe = [...new Set(passing.flatMap((it) => it.scenario.universe))]
      yield* publishGroup("reqs", { ...group, slice: { ...group.slice, universe }, items: passing, data_version: report.dataVersion } satisfies GroupMessage)
    }
    yield* phaseResult("availability", group, started, { in: group.items.length, pass: passing.length, skipped: stopped.length, failed: 0 })
  })

/** Bars can be made from ticks: a symbol with tick coverage can run at any bar frequency. */
const derivable = (report: CoverageReport, symbol: string) => coverageFor(report, symbol, "tick")

export const availabilityActor = groupActor({
  name: "availability",
  consumer: "availability",
  phase: "availability",
  // several groups at once: a stage waits on the bus and the disk more than on the CPU
  concurrency: 4,
  handle: (group) =>
    Effect.gen(function* () {
      const settings = yield* ActorSettings
      const started = yield* phaseStart("availability", group)
      const root = group.slice.data_root ?? settings.dataRoot
      const report = yield* Effect.either(coverageOf(root))
      const n = group.items.length
      if (report._tag === "Left") {
        const reason = `coverage index of ${root} is unreadable: ${report.left.message}`
        // a batch-level failure: the reporter fails the batch from these results' phase
        yield* stopGroup(group, group.items, "failed", "coverage", reason)
        yield* phaseResult("availability", group, started, { in: n, pass: 0, skipped: 0, failed: n })
        return
      }
      const problem = availabilityProblem(group.slice, report.right, root)
      if (problem && ownUniverses(group)) return yield* perItemAvailability(group, report.right, root, started)
      if (problem) {
        yield* stopGroup(group, group.items, "skipped", "availability", problem)
        yield* phaseResult("availability", group, started, { in: n, pass: 0, skipped: n, failed: 0 })
        return
      }
      // A benchmark is data like any symbol: a scenario whose benchmark has no coverage is skipped.
      const benchmarkProblem = new Map<string, string | undefined>()
      const problemOf = (symbol: string) => {
        if (!benchmarkProblem.has(symbol)) benchmarkProblem.set(symbol, availabilityProblem({ ...group.slice, universe: [symbol] }, report.right, root))
        return benchmarkProblem.get(symbol)
      }
      const noBenchmark = group.items.filter((it) => it.scenario.benchmark !== undefined && problemOf(it.scenario.benchmark) !== undefined)
      // all of them, as they came (sent on in the form they arrived in: wire.ts, sliceItems)
      const passing = noBenchmark.length === 0 ? group.items : group.items.filter((it) => !noBenchmark.includes(it))
      for (const it of noBenchmark) yield* stopGroup(group, [it], "skipped", "availability", `benchmark: ${problemOf(it.scenario.benchmark!)}`)
      if (passing.length > 0) yield* publishGroup("reqs", { ...group, items: passing, data_version: report.right.dataVersion } satisfies GroupMessage)
      yield* phaseResult("availability", group, started, { in: n, pass: passing.length, skipped: noBenchmark.length, failed: 0 })
    })
})
