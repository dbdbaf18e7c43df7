/**
 * Results must be byte-identical across engine optimizations: each golden scenario's metrics
 * JSON and a hash of its whole outcome (equity curve, warnings, progress calls, errors) are
 * compared with golden-results.json, which was written by the engine before the per-series
 * caches and buffer reuse existed. Running the set twice in one process also checks that
 * cached / pooled state from earlier runs never leaks into later results.
 */
import { readFileSync, writeFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { goldenOutcomes } from "./golden.js"

const FILE = new URL("./golden-results.json", import.meta.url)

describe("golden results", () => {
  it("match golden-results.json exactly, on a first and a second (cached) pass", () => {
    const first = goldenOutcomes()
    if (process.env.UPDATE_GOLDEN === "1") writeFileSync(FILE, `${JSON.stringify(first, null, 1)}\n`)
    const expected = JSON.parse(readFileSync(FILE, "utf8")) as Record<string, unknown>
    expect(Object.keys(first).length).toBeGreaterThan(50)
    for (const [name, value] of Object.entries(expected)) {
      expect(JSON.stringify(first[name]), name).toBe(JSON.stringify(value))
    }
    expect(Object.keys(first).sort()).toEqual(Object.keys(expected).sort())
    const second = goldenOutcomes()
    expect(JSON.stringify(second)).toBe(JSON.stringify(first))
  })
})
