/** Submission limits and host-path refusals on raw messages: counted, never expanded. */
import { describe, expect, it } from "vitest"
import { boundReason, countScenarios, hostPathProblems, limitProblems, securitySettingsFromEnv, truncate } from "../../src/security/limits.js"
import { expandBatch, parseBatchConfig } from "../../src/schemas/batch.js"

const limits = securitySettingsFromEnv({})

const base = { strategy: "trend_baseline", freq: "1d", start_date: "2016-01-04", end_date: "2020-12-31", universe: ["AAA"], start_capital: 1000 }

describe("countScenarios", () => {
  it("equals the expansion's count for runs plus several sweep blocks with lists and ranges", () => {
    const cfg = {
      batch_name: "c",
      defaults: base,
      runs: [{ id: "a" }, { id: "b" }],
      sweep: [
        { id: "s1", grid: { fast: [5, 10, 20], slow: { from: 100, to: 250, step: 50 } } },
        { id: "s2", grid: { fast: { from: 0.1, to: 1.0, step: 0.1 } } }
      ]
    }
    const expanded = expandBatch(parseBatchConfig(cfg), { batchId: "c" })
    expect(countScenarios(cfg)).toBe(expanded.length)
    expect(expanded.length).toBe(2 + 3 * 4 + 10)
  })

  it("counts a 1,000,000-scenario grid from a message of about 1 KB without expanding it", () => {
    const axis = { from: 1, to: 100, step: 1 }
    const cfg = { batch_name: "huge", defaults: base, sweep: { id: "g", grid: { a: axis, b: axis, c: axis } } }
    const msg = { kind: "batch", batch_id: "huge", config: cfg }
    const bytes = JSON.stringify(msg).length
    expect(bytes).toBeLessThan(1024)
    expect(countScenarios(cfg)).toBe(1_000_000)
    const problems = limitProblems(msg, bytes, limits)
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(/^config: expands to 1000000 scenarios .* above the limit 100000 per batch \(TICKFLOW_MAX_SCENARIOS\)/)
  })

  it("adds up blocks: 20 blocks of 100,000 are 2,000,000 for the whole batch", () => {
    const sweep = Array.from({ length: 20 }, (_, i) => ({ id: `b${i}`, grid: { a: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], b: Array.from({ length: 10_000 }, (_, k) => k) } }))
    const cfg = { batch_name: "blocks", defaults: base, sweep }
    expect(countScenarios(cfg)).toBe(2_000_000)
    expect(limitProblems({ kind: "batch", config: cfg }, 100, limits)[0]).toMatch(/expands to 2000000 scenarios/)
  })
})

describe("limitProblems", () => {
  it("refuses a message over the byte limit before looking inside", () => {
    expect(limitProblems({ kind: "batch" }, limits.maxMessageBytes + 1, limits)).toEqual([
      `message: ${limits.maxMessageBytes + 1} bytes, above the limit ${limits.maxMessageBytes} (TICKFLOW_MAX_SUBMIT_BYTES); split it into several batches`
    ])
  })

  it("refuses a huge parameter value by its size, without repeating it", () => {
    const big = "x".repeat(900_000)
    const problems = limitProblems({ ...base, params: { fast: big } }, 900_100, { ...limits, maxMessageBytes: 2_000_000 })
    expect(problems).toEqual([`params.fast: a value of 900002 bytes, above the limit ${limits.maxParamBytes} (TICKFLOW_MAX_PARAM_BYTES); parameters are numbers, flags or short names`])
    const inGrid = limitProblems({ kind: "batch", config: { batch_name: "g", defaults: base, sweep: { id: "s", grid: { p: [1, big] } } } }, 100, limits)
    expect(inGrid[0]).toMatch(/^config\.sweep\.grid\.p\[1\]: a value of 900002 bytes/)
    expect(inGrid.join("").length).toBeLessThan(300)
  })

  it("refuses too many symbols per scenario, configurably", () => {
    const universe = Array.from({ length: 30 }, (_, i) => `S${i}`)
    expect(limitProblems({ ...base, universe }, 100, limits)).toEqual([])
    expect(limitProblems({ ...base, universe }, 100, { ...limits, maxSymbolsPerScenario: 20 })[0]).toMatch(
      /^scenario\.universe: 30 symbols, above the limit 20 per scenario \(TICKFLOW_MAX_SYMBOLS\)/
    )
  })

  it("reads its limits from the environment once, and refuses a bad value naming it", () => {
    expect(securitySettingsFromEnv({ TICKFLOW_MAX_SCENARIOS: "50" }).maxScenariosPerBatch).toBe(50)
    expect(() => securitySettingsFromEnv({ TICKFLOW_MAX_PARAM_BYTES: "-1" })).toThrow(/TICKFLOW_MAX_PARAM_BYTES="-1" is not a positive number/)
  })
})

describe("hostPathProblems", () => {
  it("names every host path a bus submission carries", () => {
    const msg = {
      kind: "batch",
      base_dir: "/etc",
      config: { batch_name: "p", data_root: "../../etc", output_root: "/tmp/x", defaults: { ...base, universe: { file: "/etc/passwd" } }, runs: [{ id: "r", universe: { file: "u.txt" } }] }
    }
    const problems = hostPathProblems(msg)
    expect(problems.map((p) => p.split(":")[0])).toEqual(["base_dir", "config.data_root", "config.output_root", "config.defaults.universe", "config.runs[0].universe"])
    expect(problems.join(" ")).not.toContain("/etc/passwd")
    expect(hostPathProblems({ ...base, data_root: "/etc" })[0]).toMatch(/^data_root: not accepted/)
    expect(hostPathProblems({ ...base })).toEqual([])
  })
})

describe("bounded reasons", () => {
  it("truncates each problem and the whole text, saying how much was left out", () => {
    expect(truncate("abc", 10)).toBe("abc")
    expect(truncate("x".repeat(1000), 100)).toMatch(/^x{70}… \(1000 characters in all\)$/)
    const reason = boundReason(Array.from({ length: 100 }, () => "y".repeat(5000)), 2000)
    expect(reason.length).toBeLessThanOrEqual(2100)
    expect(reason).toMatch(/… and \d+ more problems$/)
  })
})
