/**
 * One bad file must not break the catalog: coverage lists it as a problem (naming the file and
 * what is wrong), the rest is reported, and on a real nats-server a batch skips only the
 * scenarios that need the bad file while the others succeed.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { buildCoverage, catalogRelPath, coverageFor, generateCatalog, problemsFor, vegaDataFile } from "../../src/data/index.js"
import { availabilityProblem } from "../../src/actors/availability.js"
import { publishRaw } from "../../src/streams/bus.js"
import { SUBJECT } from "../../src/streams/topology.js"
import { DuckDBInstance } from "@duckdb/node-api"
import { systemTestLayer } from "../support/system.js"
import { readResults, waitForBatch } from "../support/results.js"

/** AAA and BBB daily 2014..2021; AAA's 2019 file truncated; a flights file filed as FLIGHTS 1d 2020. */
const badCatalog = (root: string) =>
  Effect.gen(function* () {
    yield* generateCatalog({ root, symbols: ["AAA", "BBB"], freqs: ["1d"], start: "2014-01-01", end: "2021-06-30", seed: 5 })
    yield* Effect.promise(async () => {
      const aaa2019 = join(root, catalogRelPath("1d", "AAA", "2019-01-01"))
      const bytes = await readFile(aaa2019)
      await writeFile(aaa2019, bytes.subarray(0, Math.floor(bytes.length / 2)))
      await mkdir(join(root, "1d", "FLIGHTS"), { recursive: true })
      await copyFile(vegaDataFile("flights-3m.parquet"), join(root, catalogRelPath("1d", "FLIGHTS", "2020-01-01")))
    })
  })

describe("a catalog with bad files", () => {
  it.effect("coverage reports every other file and lists the truncated, the non-price and the misnamed file with their reasons", () =>
    Effect.gen(function* () {
      const root = mkdtempSync(join(tmpdir(), "tf-bad-catalog-"))
      yield* badCatalog(root)
      // a good file under a name promising other dates
      yield* Effect.promise(() => copyFile(join(root, catalogRelPath("1d", "BBB", "2020-01-01")), join(root, "1d", "BBB", "2009.parquet")))
      const report = yield* buildCoverage(root)
      const byFile = Object.fromEntries(report.problems.map((p) => [p.file, p.reason]))
      expect(Object.keys(byFile).sort()).toEqual(["1d/AAA/2019.parquet", "1d/BBB/2009.parquet", "1d/FLIGHTS/2020.parquet"])
      expect(byFile["1d/AAA/2019.parquet"]).toContain("PAR1")
      expect(byFile["1d/AAA/2019.parquet"]).toContain(join(root, "1d/AAA/2019.parquet"))
      expect(byFile["1d/FLIGHTS/2020.parquet"]).toContain("not tick/bar data")
      expect(byFile["1d/BBB/2009.parquet"]).toContain("outside the period its name says (2009-01-01 to 2009-12-31)")
      // the good files still count: BBB whole, AAA without 2019
      expect(coverageFor(report, "BBB", "1d")!.first).toBe("2014-01-01T00:00:00.000Z")
      expect(coverageFor(report, "AAA", "1d")!.gaps.some((g) => g.from.startsWith("2018-12-31") && g.to.startsWith("2020-01-01"))).toBe(true)
      expect(coverageFor(report, "FLIGHTS", "1d")).toBeUndefined()
      expect(problemsFor(report, "AAA", "1d", "2020-01-01", "2020-12-31")).toEqual([])
      const slice = { universe: ["AAA"], freq: "1d", start_date: "2018-06-01", end_date: "2019-06-01" } as never
      expect(availabilityProblem(slice, report, root)).toContain("needs 1d/AAA/2019.parquet, which cannot be used")
      rmSync(root, { recursive: true, force: true })
    })
  )

  it.effect("a file another tool wrote: days are the distinct days with rows (600 weekday rows → 600 days, not the 838 calendar days they span)", () =>
    Effect.gen(function* () {
      const root = mkdtempSync(join(tmpdir(), "tf-foreign-days-"))
      const file = join(root, "1d", "FOO", "history.parquet")
      const last = yield* Effect.promise(async () => {
        await mkdir(join(root, "1d", "FOO"), { recursive: true })
        const con = await (await DuckDBInstance.create(":memory:")).connect()
        await con.run(`COPY (SELECT d::TIMESTAMPTZ AS ts, 100.0 + row_number() OVER () AS close FROM range(TIMESTAMP '2018-01-01', TIMESTAMP '2021-01-01', INTERVAL 1 DAY) t(d)
          WHERE dayofweek(d) BETWEEN 1 AND 5 QUALIFY row_number() OVER (ORDER BY d) <= 600) TO '${file}' (FORMAT parquet)`)
        const rows = (await con.runAndReadAll(`SELECT strftime(max(ts) AT TIME ZONE 'UTC', '%Y-%m-%d') FROM read_parquet('${file}')`)).getRows()
        return String(rows[0][0])
      })
      const entry = coverageFor(yield* buildCoverage(root), "FOO", "1d")!
      expect([entry.rows, entry.days, entry.first, entry.last]).toEqual([600, 600, "2018-01-01T00:00:00.000Z", `${last}T00:00:00.000Z`])
      // a weekday series spans more calendar days than it has rows: the old row-group min..max count
      expect(Date.parse(entry.last) / 86_400_000 - Date.parse(entry.first) / 86_400_000 + 1).toBeGreaterThan(800)
      rmSync(root, { recursive: true, force: true })
    })
  )

  it.scopedLive(
    "a batch on it: scenarios needing the corrupt or the non-price file are skipped naming it; the others succeed",
    () => {
      const root = mkdtempSync(join(tmpdir(), "tf-bad-catalog-"))
      return Effect.gen(function* () {
        yield* badCatalog(root)
        const config = {
          batch_name: "bad_catalog",
          seed: 3,
          defaults: { strategy: "trend_baseline", freq: "1d", start_date: "2020-03-02", end_date: "2021-03-31", universe: ["BBB"], start_capital: 100_000 },
          runs: [
            { id: "needs_corrupt", universe: ["AAA"], start_date: "2018-06-01", end_date: "2019-12-31" },
            { id: "needs_flights", universe: ["FLIGHTS"], start_date: "2020-03-02", end_date: "2020-06-30" }
          ],
          sweep: { id: "ema", grid: { fast: [5, 10], slow: [40, 60] } }
        }
        yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: "badcat", config }), "submit:badcat")
        const rec = yield* waitForBatch("badcat")
        expect(rec.counts).toEqual({ success: 4, skipped: 2, failed: 0 })
        const results = yield* readResults("badcat")
        const byId = new Map(results.map((r) => [r.scenario_id, r]))
        expect(byId.get("needs_corrupt")).toMatchObject({ status: "skipped", phase: "availability" })
        expect(byId.get("needs_corrupt")!.reason).toContain("1d/AAA/2019.parquet")
        expect(byId.get("needs_corrupt")!.reason).toContain("PAR1")
        expect(byId.get("needs_flights")).toMatchObject({ status: "skipped", phase: "availability" })
        expect(byId.get("needs_flights")!.reason).toContain("1d/FLIGHTS/2020.parquet")
        expect(byId.get("needs_flights")!.reason).toContain("not tick/bar data")
        expect(results.filter((r) => r.status === "success")).toHaveLength(4)
      }).pipe(
        Effect.provide(systemTestLayer({ settings: { dataRoot: root } })),
        Effect.ensuring(Effect.sync(() => rmSync(root, { recursive: true, force: true })))
      )
    },
    120_000
  )
})
