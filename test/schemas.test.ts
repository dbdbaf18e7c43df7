/**
 * Every schema refuses bad input with a message a person can act on: the path, the value, and
 * what is allowed. The exact text is asserted so a regression in wording shows up here.
 */
import { describe, expect, it } from "vitest"
import { parse as parseYaml } from "yaml"
import {
  BatchRecord,
  ConfigError,
  FREQS,
  GroupMessage,
  GroupWire,
  GroupOnWire,
  encodeGroup,
  decodeGroup,
  RunStatus,
  Scenario,
  ScenarioResult,
  SubmitMessage,
  expandBatch,
  formatIssues,
  lintScenarios,
  parseBatchConfig,
  sliceGroupKey,
  type BatchConfig
} from "../src/schemas/index.js"
import { batchConfigJsonSchema, jsonSchemaFor, resultJsonSchema, scenarioJsonSchema } from "../src/schemas/jsonschema.js"
import type { z } from "zod"

const RUN = {
  id: "r1",
  strategy: "sma_cross",
  freq: "1d",
  start_date: "2020-01-01",
  end_date: "2020-12-31",
  universe: ["AAPL"],
  start_capital: 100_000
}
const { id: _id, ...RUN_FIELDS } = RUN
const BATCH = { batch_name: "demo", runs: [RUN] }
const withRun = (over: Record<string, unknown>) => ({ ...BATCH, runs: [{ ...RUN, ...over }] })
const sweep = (grid: Record<string, unknown>, over: Record<string, unknown> = {}) => ({
  batch_name: "demo",
  defaults: RUN_FIELDS,
  sweep: { id: "sw", grid, ...over }
})

/** The problems parseBatchConfig reports, or [] when it accepts. */
const problemsOf = (raw: unknown): ReadonlyArray<string> => {
  try {
    parseBatchConfig(raw)
    return []
  } catch (e) {
    if (e instanceof ConfigError) return e.problems
    throw e
  }
}

/** Formatted problems of any schema, or [] when it accepts. */
const issuesOf = (schema: z.ZodType, raw: unknown): string[] => {
  const r = schema.safeParse(raw, { reportInput: true })
  return r.success ? [] : formatIssues(r.error)
}

const ID_HINT = "is not a valid id; use letters, digits, '-' and '_' only (max 128), it becomes part of a NATS subject and a folder name"
const FOLDER_HINT = "is not safe as a folder name; use letters, digits, '.', '-', '_' (max 128, no leading dot)"

describe("BatchConfig: each bad input is refused with the expected message", () => {
  it.each<[string, unknown, string]>([
    ["batch_name with a path", { ...BATCH, batch_name: "../etc" }, `batch_name: "../etc" ${FOLDER_HINT}`],
    ["batch_name with a space", { ...BATCH, batch_name: "my batch" }, `batch_name: "my batch" ${FOLDER_HINT}`],
    ["batch_name with a leading dot", { ...BATCH, batch_name: ".hidden" }, `batch_name: ".hidden" ${FOLDER_HINT}`],
    ["batch_name missing", { runs: [RUN] }, "batch_name: is required (string)"],
    ["seed negative", { ...BATCH, seed: -1 }, "seed: -1 is below the minimum 0"],
    ["seed fractional", { ...BATCH, seed: 1.5 }, "seed: 1.5 (number) is not an integer"],
    ["seed as a string", { ...BATCH, seed: "7" }, 'seed: "7" (string) is not a number'],
    ["strict not a boolean", { ...BATCH, strict: "yes" }, 'strict: "yes" (string) is not true or false'],
    ["unknown top-level field", { ...BATCH, batchname: "x" }, '(root): unknown field "batchname"; remove it or check the spelling'],
    ["unknown run field", withRun({ stratgy: "x" }), 'runs[0]: unknown field "stratgy"; remove it or check the spelling'],
    ["unknown defaults field", { ...BATCH, defaults: { id: "x" } }, 'defaults: unknown field "id"; remove it or check the spelling'],
    ["freq", withRun({ freq: "5m" }), 'runs[0].freq: "5m" is not one of tick, 1min, 5min, 1h, 1d'],
    ["freq in defaults", { ...BATCH, defaults: { freq: "daily" } }, 'defaults.freq: "daily" is not one of tick, 1min, 5min, 1h, 1d'],
    [
      "unreal date",
      withRun({ start_date: "2021-02-30" }),
      'runs[0].start_date: "2021-02-30" is not a real date; write YYYY-MM-DD (for example 2020-01-31)'
    ],
    [
      "date in another format",
      withRun({ end_date: "31/12/2020" }),
      'runs[0].end_date: "31/12/2020" is not a date; write YYYY-MM-DD (for example 2020-01-31)'
    ],
    ["date as a number", withRun({ start_date: 20200101 }), "runs[0].start_date: 20200101 is not a date; write YYYY-MM-DD"],
    ["start_capital 0", withRun({ start_capital: 0 }), "runs[0].start_capital: 0 must be greater than 0"],
    ["start_capital negative", withRun({ start_capital: -5 }), "runs[0].start_capital: -5 must be greater than 0"],
    ["start_capital string", withRun({ start_capital: "1000" }), 'runs[0].start_capital: "1000" (string) is not a number'],
    ["commission_bps negative", withRun({ commission_bps: -1 }), "runs[0].commission_bps: -1 is below the minimum 0"],
    ["commission_bps too high", withRun({ commission_bps: 5000 }), "runs[0].commission_bps: 5000 is above the maximum 1000"],
    ["empty strategy", withRun({ strategy: "" }), 'runs[0].strategy: "" must have at least 1 character'],
    ["empty universe", withRun({ universe: [] }), "runs[0].universe: an empty list must have at least 1 item"],
    [
      "universe of the wrong type",
      withRun({ universe: 5 }),
      "runs[0].universe: 5 is not a universe; write a symbol, a list of symbols, or {file: path}"
    ],
    [
      "bad symbol in universe",
      withRun({ universe: ["AAPL", "BRK B"] }),
      `runs[0].universe[1]: "BRK B" is not a symbol; use letters, digits, '.', '-', '_' (max 32)`
    ],
    ["universe file with empty path", withRun({ universe: { file: "" } }), 'runs[0].universe.file: "" must have at least 1 character'],
    ["params as a list", withRun({ params: [10, 50] }), "runs[0].params: a list is not a mapping of names to values"],
    ["runs as a mapping", { batch_name: "demo", runs: { r1: RUN } }, "runs: an object is not a list"],
    ["duplicate run ids", { ...BATCH, runs: [RUN, { ...RUN }] }, 'runs[1].id: "r1" is already used by runs[0]; run ids must be unique'],
    ["run id with a dot", withRun({ id: "fast.slow" }), `runs[0].id: "fast.slow" ${ID_HINT}`],
    ["run id with a space", withRun({ id: "my run" }), `runs[0].id: "my run" ${ID_HINT}`],
    ["sweep id with a dot", sweep({ fast: [1] }, { id: "sw.1" }), `sweep.id: "sw.1" ${ID_HINT}`],
    ["no runs and no sweep", { batch_name: "demo" }, "runs: no runs and no sweep: add at least one run or a sweep block"],
    ["empty runs and no sweep", { batch_name: "demo", runs: [] }, "runs: no runs and no sweep: add at least one run or a sweep block"],
    [
      "grid range with to < from",
      sweep({ fast: { from: 10, to: 5, step: 1 } }),
      `sweep.grid.fast: range {"from":10,"to":5,"step":1}: 'to' must be >= 'from'`
    ],
    ["grid range with step 0", sweep({ fast: { from: 1, to: 5, step: 0 } }), "sweep.grid.fast.step: 0 must be greater than 0"],
    ["grid range without step", sweep({ fast: { from: 1, to: 5 } }), "sweep.grid.fast.step: is required (number)"],
    [
      "grid range too large",
      sweep({ fast: { from: 0, to: 1_000_000, step: 1 } }),
      "sweep.grid.fast: range has more than 10,000 values; widen the step"
    ],
    [
      "grid axis as a number",
      sweep({ fast: 5 }),
      "sweep.grid.fast: 5 is not a grid axis; write a list [a, b, c] or a range {from, to, step}"
    ],
    [
      "grid axis as a string",
      sweep({ fast: "5,10" }),
      'sweep.grid.fast: "5,10" is not a grid axis; write a list [a, b, c] or a range {from, to, step}'
    ],
    ["grid axis empty", sweep({ fast: [] }), "sweep.grid.fast: an empty list must have at least 1 item"],
    ["grid axis of objects", sweep({ fast: [{ a: 1 }] }), "sweep.grid.fast[0]: an object is not a number or a string or true or false"],
    [
      "grid axis bad in the second of two sweeps",
      { ...sweep({ fast: [1] }), sweep: [{ id: "a", grid: { fast: [1] } }, { id: "b", grid: { fast: 3 } }] },
      "sweep[1].grid.fast: 3 is not a grid axis; write a list [a, b, c] or a range {from, to, step}"
    ],
    ["wire version", { ...BATCH, v: 2 }, "v: 2 is not one of 1"],
    ["not an object", ["demo"], "(root): a list is not an object"],
    ["null", null, "(root): null is not an object"]
  ])("%s", (_name, raw, expected) => {
    expect(problemsOf(raw)).toEqual([expected])
  })

  it("reports every problem at once, in one ConfigError whose message lists them", () => {
    const raw = {
      batch_name: "../x",
      seed: -1,
      extra: true,
      runs: [
        { ...RUN, freq: "5m", start_date: "2021-02-30", start_capital: 0 },
        { ...RUN, commission_bps: -1 }
      ]
    }
    let error: unknown
    try {
      parseBatchConfig(raw, "sweep.yaml")
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(ConfigError)
    const problems = (error as ConfigError).problems
    expect(problems).toEqual([
      `batch_name: "../x" ${FOLDER_HINT}`,
      "seed: -1 is below the minimum 0",
      'runs[0].freq: "5m" is not one of tick, 1min, 5min, 1h, 1d',
      'runs[0].start_date: "2021-02-30" is not a real date; write YYYY-MM-DD (for example 2020-01-31)',
      "runs[0].start_capital: 0 must be greater than 0",
      "runs[1].commission_bps: -1 is below the minimum 0",
      '(root): unknown field "extra"; remove it or check the spelling',
      'runs[1].id: "r1" is already used by runs[0]; run ids must be unique'
    ])
    expect((error as ConfigError).message.split("\n")[0]).toBe("sweep.yaml has 8 problems:")
    for (const p of problems) expect((error as ConfigError).message).toContain(p)
  })

  it("accepts a good config and fills defaults", () => {
    const cfg = parseBatchConfig(BATCH)
    expect(cfg).toMatchObject({ batch_name: "demo", output_root: "out", seed: 0, strict: true, defaults: {} })
    expect(cfg.runs[0].universe).toEqual(["AAPL"])
  })

  it("accepts YAML Date objects for dates and normalises them to YYYY-MM-DD", () => {
    const cfg = parseBatchConfig(withRun({ start_date: new Date("2020-03-02T00:00:00Z"), end_date: new Date(Date.UTC(2020, 11, 31)) }))
    expect(cfg.runs[0].start_date).toBe("2020-03-02")
    expect(cfg.runs[0].end_date).toBe("2020-12-31")
    // A YAML 1.1 parser turns unquoted dates into Date objects; the default 1.2 parser keeps strings.
    const text = "batch_name: demo\nruns:\n  - {id: r1, strategy: s, freq: 1d, universe: aapl, start_capital: 1, start_date: 2020-01-02, end_date: 2020-02-03}\n"
    for (const doc of [parseYaml(text, { schema: "yaml-1.1" }), parseYaml(text)]) {
      const run = parseBatchConfig(doc).runs[0]
      expect([run.start_date, run.end_date, run.universe]).toEqual(["2020-01-02", "2020-02-03", ["AAPL"]])
    }
  })
})

describe("expandBatch", () => {
  const expand = (raw: unknown) => expandBatch(parseBatchConfig(raw), { batchId: "B1" })
  const expandProblems = (raw: unknown): ReadonlyArray<string> => {
    try {
      expand(raw)
      return []
    } catch (e) {
      if (e instanceof ConfigError) return e.problems
      throw e
    }
  }

  it("names every required field a run lacks, and where to set it", () => {
    expect(expandProblems({ batch_name: "demo", runs: [RUN, { id: "r2", strategy: "x", freq: "1d", start_date: "2020-01-01", end_date: "2020-02-01", universe: "MSFT" }] })).toEqual([
      "runs[1].start_capital: is required; set it on the run or in defaults"
    ])
    expect(expandProblems({ batch_name: "demo", runs: [RUN, { id: "r2" }] })).toEqual(
      ["strategy", "freq", "start_date", "end_date", "universe", "start_capital"].map(
        (f) => `runs[1].${f}: is required; set it on the run or in defaults`
      )
    )
  })

  it("refuses a universe file it cannot read here, and a sweep id that collides with a run", () => {
    expect(expandProblems({ ...BATCH, runs: [{ ...RUN, universe: { file: "u.txt" } }] })).toEqual([
      'runs[0].universe: {file: "u.txt"} cannot be read here; list the symbols'
    ])
    expect(expandProblems({ ...sweep({ fast: [1] }), sweep: { id: "sw", grid: {} }, runs: [{ ...RUN, id: "sw" }] })).toEqual([
      'sweep[0]: scenario id "sw" is also produced by runs[0]; ids must be unique'
    ])
  })

  it("merges defaults with each run, run fields and params winning", () => {
    const [s1, s2] = expand({
      batch_name: "demo",
      seed: 42,
      defaults: { ...RUN_FIELDS, commission_bps: 2, params: { fast: 10, slow: 50 } },
      runs: [
        { id: "a", params: { fast: 5 } },
        { id: "b", freq: "1h", universe: ["msft", "aapl"], strict: false, commission_bps: 0 }
      ]
    })
    expect(s1).toMatchObject({
      v: 1,
      batch_id: "B1",
      scenario_id: "a",
      strategy: "sma_cross",
      freq: "1d",
      params: { fast: 5, slow: 50 },
      costs: { commission_bps: 2, spread_w: 0, impact_w: 0, slippage_bps: 0 },
      batch_seed: 42,
      strict: true
    })
    expect(s2).toMatchObject({ scenario_id: "b", freq: "1h", universe: ["MSFT", "AAPL"], params: { fast: 10, slow: 50 }, strict: false })
    // a cost set in defaults reaches every run that does not set it; a run's own 0 wins
    expect(s2.costs.commission_bps).toBe(0)
  })

  it("expands a sweep into stable, unique ids in grid order (last axis fastest)", () => {
    const raw = sweep({ symbol: ["aapl", "msft"], fast: [5, 10], flag: [true] }, { params: { slow: 50 } })
    const scenarios = expand(raw)
    expect(scenarios.map((s) => s.scenario_id)).toEqual([
      "sw__symbol-aapl__fast-5__flag-true",
      "sw__symbol-aapl__fast-10__flag-true",
      "sw__symbol-msft__fast-5__flag-true",
      "sw__symbol-msft__fast-10__flag-true"
    ])
    // the `symbol` axis sets the universe (upper-cased); other axes become parameters
    expect(scenarios.map((s) => s.universe)).toEqual([["AAPL"], ["AAPL"], ["MSFT"], ["MSFT"]])
    expect(scenarios[1].params).toEqual({ slow: 50, fast: 10, flag: true })
    expect(new Set(scenarios.map((s) => s.scenario_id)).size).toBe(scenarios.length)
    // same config, same ids, same order
    expect(expand(raw).map((s) => s.scenario_id)).toEqual(scenarios.map((s) => s.scenario_id))
  })

  it("sweeps run fields (freq, start_capital) and params.<name> axes", () => {
    const scenarios = expand(sweep({ freq: ["1h", "1d"], "params.fast": [3] }))
    expect(scenarios.map((s) => [s.scenario_id, s.freq, s.params])).toEqual([
      ["sw__freq-1h__fast-3", "1h", { fast: 3 }],
      ["sw__freq-1d__fast-3", "1d", { fast: 3 }]
    ])
  })

  it("writes float values in ids without dots (0.5 → 0p5), and 0.1 steps do not drift", () => {
    const scenarios = expand(sweep({ w: { from: 0.1, to: 1, step: 0.1 } }))
    expect(scenarios.map((s) => s.params.w)).toEqual([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1])
    expect(scenarios.map((s) => s.scenario_id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9].map((d) => `sw__w-0p${d}`).concat("sw__w-1"))
    const neg = expand(sweep({ w: [-0.5, 2.25] }))
    expect(neg.map((s) => s.scenario_id)).toEqual(["sw__w--0p5", "sw__w-2p25"])
  })

  it("refuses a sweep that expands past the scenario limit", () => {
    const cfg: BatchConfig = parseBatchConfig(sweep({ a: { from: 1, to: 100, step: 1 }, b: { from: 1, to: 100, step: 1 } }))
    expect(() => expandBatch(cfg, { batchId: "B1", maxScenarios: 1000 })).toThrow(
      "sweep[0].grid: expands to 10000 scenarios, above the limit 1000"
    )
  })

  it("lintScenarios warns when end_date is before start_date; good scenarios pass silently", () => {
    const scenarios = expand({
      batch_name: "demo",
      runs: [RUN, { ...RUN, id: "back", start_date: "2021-06-01", end_date: "2021-01-01" }]
    })
    expect(lintScenarios(scenarios)).toEqual(["back: end_date 2021-01-01 is before start_date 2021-06-01; it will be skipped"])
  })

  it("sliceGroupKey separates universe order (a scenario keeps its order), frequency, dates and root", () => {
    const base = { universe: ["AAPL", "MSFT"], freq: "1d" as const, start_date: "2020-01-01", end_date: "2020-12-31" }
    expect(sliceGroupKey(base)).toBe(sliceGroupKey({ ...base, universe: ["AAPL", "MSFT"] }))
    expect(sliceGroupKey(base)).not.toBe(sliceGroupKey({ ...base, universe: ["MSFT", "AAPL"] }))
    expect(sliceGroupKey(base)).not.toBe(sliceGroupKey({ ...base, freq: "1h" }))
    expect(sliceGroupKey(base)).not.toBe(sliceGroupKey({ ...base, end_date: "2020-12-30" }))
    expect(sliceGroupKey(base)).not.toBe(sliceGroupKey({ ...base, data_root: "/other" }))
  })
})

const SCENARIO = {
  batch_id: "B1",
  scenario_id: "s1",
  strategy: "sma_cross",
  freq: "1d",
  start_date: "2020-01-01",
  end_date: "2020-02-01",
  universe: ["AAPL"],
  start_capital: 1000
}

describe("Scenario", () => {
  it.each<[string, unknown, string[]]>([
    ["scenario id with a dot", { ...SCENARIO, scenario_id: "a.b" }, [`scenario_id: "a.b" ${ID_HINT}`]],
    ["batch id with a wildcard", { ...SCENARIO, batch_id: "B*" }, [`batch_id: "B*" ${ID_HINT}`]],
    ["empty universe", { ...SCENARIO, universe: [] }, ["universe: an empty list must have at least 1 item"]],
    [
      "bad symbol",
      { ...SCENARIO, universe: ["AAPL", "$$"] },
      [`universe[1]: "$$" is not a symbol; use letters, digits, '.', '-', '_' (max 32)`]
    ],
    // Freq and IsoDate carry their own messages (common.ts), which print a missing value as "undefined"
    [
      "missing strategy, freq and start_date",
      { ...SCENARIO, strategy: undefined, freq: undefined, start_date: undefined },
      ["strategy: is required (string)", "freq: is required; one of tick, 1min, 5min, 1h, 1d", "start_date: is required; write YYYY-MM-DD"]
    ],
    ["negative slippage", { ...SCENARIO, costs: { slippage_bps: -2 } }, ["costs.slippage_bps: -2 is below the minimum 0"]],
    ["unknown field", { ...SCENARIO, capital: 5 }, ['(root): unknown field "capital"; remove it or check the spelling']]
  ])("%s", (_name, raw, expected) => {
    expect(issuesOf(Scenario, raw)).toEqual(expected)
  })

  it("upper-cases and trims symbols and fills costs and defaults", () => {
    const s = Scenario.parse({ ...SCENARIO, universe: ["aapl", " brk.b "], benchmark: "spy" })
    expect(s.universe).toEqual(["AAPL", "BRK.B"])
    expect(s.benchmark).toBe("SPY")
    expect(s).toMatchObject({ v: 1, params: {}, strict: true, batch_seed: 0, costs: { commission_bps: 0, spread_w: 0, impact_w: 0, slippage_bps: 0 } })
    expect(Scenario.parse({ ...SCENARIO, costs: { commission_bps: 3 } }).costs).toEqual({ commission_bps: 3, spread_w: 0, impact_w: 0, slippage_bps: 0 })
  })
})

describe("SubmitMessage", () => {
  it("treats a message without kind as a scenario (ids optional)", () => {
    const { batch_id: _b, scenario_id: _s, ...bare } = SCENARIO
    const m = SubmitMessage.parse(bare)
    expect(m.kind).toBe("scenario")
    expect(m).toMatchObject({ strategy: "sma_cross", universe: ["AAPL"] })
  })

  it("accepts a scan job with a symbol list or all (the formula is parsed by the coordinator)", () => {
    const scan = { kind: "scan", symbols: ["spx", "brk.b"], freq: "1d", start_date: "2020-01-01", end_date: "2020-02-01", formula: "close > sma(close, 5)" }
    expect(SubmitMessage.parse(scan)).toMatchObject({ v: 1, kind: "scan", symbols: ["SPX", "BRK.B"] })
    expect(SubmitMessage.parse({ ...scan, symbols: "all" })).toMatchObject({ symbols: "all" })
  })

  it("accepts kind batch with any config (validated later by the coordinator)", () => {
    expect(SubmitMessage.parse({ kind: "batch", config: { batch_name: "x" } })).toEqual({ v: 1, kind: "batch", config: { batch_name: "x" } })
  })

  it.each<[string, unknown, string[]]>([
    ["unknown kind", { kind: "job" }, ['kind: "job" is not one of batch, scenario, scan']],
    ["scan without symbols", { kind: "scan", symbols: [], freq: "1d", start_date: "2020-01-01", end_date: "2020-02-01", formula: "close > 1" }, ["symbols: is empty; list at least one symbol, or send \"all\""]],
    ["scenario with a bad freq", { ...SCENARIO, kind: "scenario", freq: "1w" }, ['freq: "1w" is not one of tick, 1min, 5min, 1h, 1d']],
    ["not an object", "run it", ['(root): "run it" (string) is not an object']]
  ])("%s", (_name, raw, expected) => {
    expect(issuesOf(SubmitMessage, raw)).toEqual(expected)
  })
})

describe("GroupMessage", () => {
  const group = {
    v: 1,
    batch_id: "B1",
    group_id: "g1",
    slice: { universe: ["AAPL"], freq: "1d", start_date: "2020-01-01", end_date: "2020-02-01" },
    items: [{ scenario: SCENARIO }]
  }
  it("accepts a group and fills warnings and findings", () => {
    const g = GroupMessage.parse(group)
    expect(g.items[0].warnings).toEqual([])
    expect(g.findings).toEqual([])
    expect(g.slice.warmup_bars).toBe(0)
  })
  it.each<[string, unknown, string[]]>([
    ["no items", { ...group, items: [] }, ["items: an empty list must have at least 1 item"]],
    ["bad scenario inside an item", { ...group, items: [{ scenario: { ...SCENARIO, start_capital: 0 } }] }, ["items[0].scenario.start_capital: 0 must be greater than 0"]],
    ["negative warmup", { ...group, slice: { ...group.slice, warmup_bars: -1 } }, ["slice.warmup_bars: -1 is below the minimum 0"]]
  ])("%s", (_name, raw, expected) => {
    expect(issuesOf(GroupMessage, raw)).toEqual(expected)
  })
})

describe("ScenarioResult", () => {
  const metrics = {
    total_return: 0.1,
    cagr: 0.1,
    volatility: 0.2,
    sharpe: 0.5,
    sortino: null,
    max_drawdown_pct: 12,
    profit_factor: null,
    trades: 3,
    win_rate: 0.66,
    exposure: 0.9,
    final_equity: 1100,
    notes: {}
  }
  const result = {
    v: 1,
    batch_id: "B1",
    scenario_id: "s1",
    status: "success",
    strategy: "sma_cross",
    params: {},
    universe: ["AAPL"],
    freq: "1d",
    start_date: "2020-01-01",
    end_date: "2020-02-01",
    metrics,
    engine_version: "1",
    finished_at: "2024-01-01T00:00:00Z"
  }
  it("accepts a result with null metrics where undefined", () => {
    expect(ScenarioResult.parse(result)).toMatchObject({ warnings: [], timings: {} })
  })
  it.each<[string, unknown, string[]]>([
    ["status not in the enum", { ...result, status: "ok" }, ['status: "ok" is not one of success, skipped, failed']],
    ["phase not in the enum", { ...result, status: "skipped", phase: "load" }, ['phase: "load" is not one of submission, coverage, availability, requirements, loading, quality, execution, summary']],
    [
      "NaN and Infinity metrics",
      { ...result, metrics: { ...metrics, sharpe: Number.NaN, final_equity: Number.POSITIVE_INFINITY } },
      ["metrics.sharpe: NaN is not a finite number", "metrics.final_equity: Infinity is not a finite number"]
    ],
    ["negative trade count", { ...result, metrics: { ...metrics, trades: -1 } }, ["metrics.trades: -1 is below the minimum 0"]],
    ["attempt 0", { ...result, attempt: 0 }, ["attempt: 0 is below the minimum 1"]]
  ])("%s", (_name, raw, expected) => {
    expect(issuesOf(ScenarioResult, raw)).toEqual(expected)
  })
})

describe("BatchRecord and RunStatus", () => {
  const record = {
    v: 1,
    batch_id: "B1",
    batch_name: "demo",
    status: "running",
    total: 4,
    groups: 1,
    counts: { success: 1, skipped: 0, failed: 0 },
    created_at: "t",
    updated_at: "t"
  }
  it("accepts a batch record and fills phases", () => {
    expect(BatchRecord.parse(record).phases).toEqual({})
  })
  it.each<[string, z.ZodType, unknown, string[]]>([
    ["batch status", BatchRecord, { ...record, status: "finished" }, ['status: "finished" is not one of accepted, running, done, failed']],
    ["negative total", BatchRecord, { ...record, total: -1 }, ["total: -1 is below the minimum 0"]],
    ["missing counts", BatchRecord, { ...record, counts: undefined }, ["counts: is required (object)"]],
    ["wire version", BatchRecord, { ...record, v: 2 }, ["v: 2 is not one of 1"]],
    [
      "run status",
      RunStatus,
      { v: 1, batch_id: "B1", scenario_id: "s1", status: "done", updated_at: "t" },
      ['status: "done" is not one of queued, running, success, skipped, failed']
    ],
    ["run status key", RunStatus, { v: 1, batch_id: "B1", scenario_id: "s.1", status: "queued", updated_at: "t" }, [`scenario_id: "s.1" ${ID_HINT}`]]
  ])("%s", (_name, schema, raw, expected) => {
    expect(issuesOf(schema, raw)).toEqual(expected)
  })
})

describe("JSON Schema for editors", () => {
  const schema = batchConfigJsonSchema() as Record<string, any>

  it("describes the batch config with id, title and its top-level fields", () => {
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema")
    expect(schema.$id).toMatch(/^urn:tickflow:batch-config:v1$/)
    expect(schema.title).toBe("tickflow batch config")
    expect(typeof schema.description).toBe("string")
    expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(["batch_name", "runs", "sweep", "defaults", "seed"]))
    expect(schema.required).toEqual(["batch_name"])
    expect(schema.additionalProperties).toBe(false)
    expect(schema.anyOf).toEqual([{ required: ["runs"], properties: { runs: { minItems: 1 } } }, { required: ["sweep"] }])
  })

  it("lists the frequencies and gives dates a format, not {}", () => {
    const run = schema.properties.runs.items
    expect(run.properties.freq.enum).toEqual([...FREQS])
    expect(run.required).toEqual(["id"])
    for (const props of [run.properties, schema.properties.defaults.properties])
      for (const f of ["start_date", "end_date"])
        expect(props[f]).toMatchObject({ type: "string", format: "date", pattern: "^[0-9]{4}-[0-9]{2}-[0-9]{2}$" })
    expect(run.properties.start_capital).toMatchObject({ type: "number", exclusiveMinimum: 0 })
    expect(run.properties.freq.description).toContain("1min")
  })

  it("allows lower-case symbols, as the parser does", () => {
    const pattern = new RegExp(schema.properties.runs.items.properties.benchmark.pattern)
    expect(pattern.test("spy")).toBe(true)
    expect(pattern.test("BRK.B")).toBe(true)
    expect(pattern.test("a b")).toBe(false)
  })

  it("round-trips through JSON and is the same every time", () => {
    for (const s of [batchConfigJsonSchema(), scenarioJsonSchema(), resultJsonSchema()]) {
      expect(JSON.parse(JSON.stringify(s))).toEqual(s)
      expect(JSON.stringify(s)).not.toContain('"start_date":{}')
    }
    expect(JSON.stringify(batchConfigJsonSchema())).toBe(JSON.stringify(schema))
  })

  it("has scenario and result schemas with their own ids and required fields", () => {
    const scn = scenarioJsonSchema() as Record<string, any>
    const res = resultJsonSchema() as Record<string, any>
    expect(scn.$id).toBe("urn:tickflow:scenario:v1")
    expect(scn.required).toEqual(expect.arrayContaining(["strategy", "freq", "start_date", "end_date", "universe", "start_capital"]))
    expect(scn.properties.start_date.format).toBe("date")
    expect(res.$id).toBe("urn:tickflow:scenario-result:v1")
    expect(res.properties.status.enum).toEqual(["success", "skipped", "failed"])
    expect(res.properties.metrics.properties.sharpe.type).toEqual(["number", "null"])
    expect(jsonSchemaFor("result")).toEqual(res)
  })
})

describe("groups on the wire", () => {
  const scenario = (id: string, over: Record<string, unknown> = {}) =>
    Scenario.parse({ ...SCENARIO, scenario_id: id, universe: ["AAPL", "MSFT"], ...over })
  const full = (items: Array<ReturnType<typeof scenario>>): GroupMessage => ({
    v: 1,
    batch_id: "B1",
    group_id: "g1",
    slice: { universe: ["AAPL", "MSFT"], freq: "1d", start_date: SCENARIO.start_date, end_date: SCENARIO.end_date, warmup_bars: 20 },
    items: items.map((s, i) => ({ scenario: s, ...(i === 0 ? { params: { fast: 1 }, warmup_bars: 20 } : {}), warnings: i === 1 ? ["w"] : [] })),
    findings: []
  })

  it("round-trips exactly: shared fields once, per item only what differs", () => {
    const g = full([
      scenario("a", { params: { fast: 5 }, name: "first" }),
      scenario("b", { params: { fast: 6 }, start_capital: 7, benchmark: "spy" }),
      scenario("c", { params: { fast: 5 }, strategy: "other", strict: false, costs: { commission_bps: 3 } })
    ])
    const wire = GroupWire.parse(JSON.parse(JSON.stringify(encodeGroup(g))))
    expect(wire.items[0]).toEqual({ id: "a", name: "first", resolved: { fast: 1 }, warmup_bars: 20 })
    expect(wire.items[1]).toEqual({ id: "b", params: { fast: 6 }, start_capital: 7, benchmark: "SPY", warnings: ["w"] })
    expect(wire.base.name).toBeUndefined()
    expect(decodeGroup(wire)).toEqual(g)
    expect(GroupOnWire.parse(encodeGroup(g))).toEqual(g)
  })

  it("sends resolved parameters that only add the same defaults once for the group, not per item", () => {
    const g = full([scenario("a", { params: { fast: 5 } }), scenario("b", { params: { fast: 6 } }), scenario("c", { params: { fast: 7, slow: 30 } })])
    const resolvedGroup: GroupMessage = { ...g, items: g.items.map((it) => ({ ...it, params: { ...it.scenario.params, slow: (it.scenario.params.slow as number | undefined) ?? 50, allow_short: false } })) }
    const sent = (m: GroupMessage) => GroupWire.parse(JSON.parse(JSON.stringify(encodeGroup(m))))
    const shared: GroupMessage = { ...g, items: g.items.slice(0, 2).map((it) => ({ ...it, params: { ...it.scenario.params, slow: 50, allow_short: false } })) }
    const wire = sent(shared)
    expect(wire.resolved_defaults).toEqual({ slow: 50, allow_short: false })
    expect(wire.items.every((it) => it.resolved === undefined)).toBe(true)
    const back = decodeGroup(wire)
    expect(back.items.map((it) => JSON.stringify(it.params))).toEqual(shared.items.map((it) => JSON.stringify(it.params)))
    expect(back).toEqual(shared)
    // c resolves slow to its own 30, not the others' default: every item carries its own again
    const mixed = sent(resolvedGroup)
    expect(mixed.resolved_defaults).toBeUndefined()
    expect(mixed.items.map((it) => it.resolved)).toEqual(resolvedGroup.items.map((it) => it.params))
    expect(decodeGroup(mixed)).toEqual(resolvedGroup)
    // a coerced value or another key order is not "own plus defaults" either
    const coerced: GroupMessage = { ...shared, items: [shared.items[0], { ...shared.items[1], params: { allow_short: false, fast: 6, slow: 50 } }] }
    expect(sent(coerced).resolved_defaults).toBeUndefined()
    expect(decodeGroup(sent(coerced))).toEqual(coerced)
  })

  it("carries an item's own universe only when it differs from the slice's (a scan group)", () => {
    const g = full([scenario("a", { universe: ["AAPL"] }), scenario("b", { universe: ["MSFT"] }), scenario("c")])
    const wire = GroupWire.parse(JSON.parse(JSON.stringify(encodeGroup(g))))
    expect(wire.items.map((it) => it.universe)).toEqual([["AAPL"], ["MSFT"], undefined])
    expect(decodeGroup(wire).items.map((it) => it.scenario.universe)).toEqual([["AAPL"], ["MSFT"], ["AAPL", "MSFT"]])
  })

  it("is much smaller than the full form for a sweep", () => {
    const g = full(Array.from({ length: 500 }, (_, i) => scenario(`s${i}`, { params: { fast: i } })))
    const fullBytes = JSON.stringify(g).length
    const wireBytes = JSON.stringify(encodeGroup(g)).length
    expect(wireBytes).toBeLessThan(fullBytes / 4)
  })

  it("refuses an item that is not valid, naming it", () => {
    const wire = encodeGroup(full([scenario("a")]))
    expect(issuesOf(GroupWire, { ...wire, items: [{ id: "a.b" }] })[0]).toMatch(/^items\[0\]\.id: "a\.b" is not a valid id/)
  })
})
