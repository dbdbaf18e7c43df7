/** The actors' coverage index: one build per catalog root at a time, shared by the callers. */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { coverageOf } from "../src/actors/coverage.js"
import { ActorMetrics } from "../src/actors/process-state.js"
import { coverageFor, generateCatalog } from "../src/data/index.js"
import { systemTestLayer } from "./support/system.js"

describe("coverage index", () => {
  it.scopedLive("four groups asking at once share one build; the report is kept for the next caller", () => {
    const root = mkdtempSync(join(tmpdir(), "tf-covindex-"))
    return Effect.gen(function* () {
      yield* generateCatalog({ root, symbols: ["AAA", "BBB"], freqs: ["1d"], start: "2019-01-01", end: "2019-12-31", seed: 5 })
      const metrics = yield* ActorMetrics
      const reports = yield* Effect.all([coverageOf(root), coverageOf(root), coverageOf(root), coverageOf(root)], { concurrency: 4 })
      expect(metrics.coverageBuilds).toBe(1)
      expect(new Set(reports).size).toBe(1)
      expect(coverageFor(reports[0]!, "BBB", "1d")?.first).toBe("2019-01-01T00:00:00.000Z")
      yield* coverageOf(root)
      expect(metrics.coverageBuilds).toBe(1)
    }).pipe(
      Effect.provide(systemTestLayer({ actors: [], settings: { dataRoot: root } })),
      Effect.ensuring(Effect.sync(() => rmSync(root, { recursive: true, force: true })))
    )
  })
})
