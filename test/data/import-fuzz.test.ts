/**
 * Fuzzing the import headers with fast-check (10,000 cases per target): CSV header rows and
 * Parquet footers. Whatever the bytes, reading a file into the import sink either succeeds or
 * fails with a typed data error (DataError); it never throws anything else and never hangs
 * (each case is bounded). Each case reads the whole file through the real sink (checks,
 * frequency inference, partition writes) and then aborts it instead of committing, so 10,000
 * cases stay cheap; commit itself is covered by import.test.ts.
 */
import { afterAll, describe, expect, it } from "vitest"
import fc from "fast-check"
import { writeFile } from "node:fs/promises"
import { join } from "node:path"
import { parquetWriteBuffer } from "hyparquet-writer"
import { isDataError } from "../../src/data/index.js"
import { readCsvInto } from "../../src/data/csv.js"
import { readParquetInto } from "../../src/data/import-parquet.js"
import { ImportSink, type SourceColumns } from "../../src/data/import-sink.js"
import type { Freq } from "../../src/schemas/common.js"
import { cleanupTempDirs, tempDir } from "./helpers.js"

afterAll(cleanupTempDirs)

const RUNS = 10_000
/** generous: a case normally takes a few ms; this only catches a hang */
const CASE_BOUND_MS = 20_000

type Outcome = "ok" | "typed-error"

/** A real sink over `root`, aborted after the read: every check runs, nothing is renamed into place. */
const sinkFactory = (file: string, root: string, freq: Freq | undefined, symbol: string | undefined) => (columns: SourceColumns) =>
  new ImportSink({ file, root, freq, symbol }, columns)
const readAndAbort = async (read: () => Promise<{ sink: ImportSink }>) => {
  const { sink } = await read()
  await sink.abort()
}

/** Runs an import; a non-DataError or a case exceeding the bound fails the property. */
const outcome = async (run: () => Promise<unknown>): Promise<Outcome> => {
  let timer: NodeJS.Timeout | undefined
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`case did not finish within ${CASE_BOUND_MS} ms`)), CASE_BOUND_MS)
  })
  try {
    await Promise.race([run(), bound])
    return "ok"
  } catch (e) {
    if (isDataError(e)) {
      expect(e.message.length).toBeGreaterThan(0)
      return "typed-error"
    }
    throw e
  } finally {
    clearTimeout(timer)
  }
}

const KNOWN = ["ts", "Date", "Time", "datetime", "timestamp", "Open", "High", "Low", "Close", "Adj Close", "Volume", "price", "size", "symbol", "ticker", "bid", "ask"]
const cellArb = fc.oneof(
  fc.constantFrom("2020-03-02", "2020-03-02T14:30:00Z", "03/09/2020 09:30:00", "1583159400", "1583159400000", "Jan 1 2000", "20200302", "", "-1", "0", "1e308", "NaN"),
  fc.double({ noNaN: false }).map(String),
  fc.string({ maxLength: 12 }),
  fc.integer().map(String)
)
const headerArb = fc.array(fc.oneof(fc.constantFrom(...KNOWN), fc.string({ maxLength: 10 }), fc.constantFrom('"', '""', "\uFEFFts", " ", ",")), { minLength: 0, maxLength: 8 })

describe("fuzzing import headers", () => {
  it(`CSV: ${RUNS} random header rows (with a few random rows) give success or a typed error`, async () => {
    const dir = await tempDir()
    const file = join(dir, "fuzz.csv")
    const root = join(dir, "catalog")
    const seen = { ok: 0, "typed-error": 0 }
    await fc.assert(
      fc.asyncProperty(
        headerArb,
        fc.array(fc.array(cellArb, { maxLength: 8 }), { maxLength: 4 }),
        fc.constantFrom(undefined, "tick", "1d", "1min") as fc.Arbitrary<undefined | "tick" | "1d" | "1min">,
        fc.constantFrom(undefined, "X"),
        async (header, rows, freq, symbol) => {
          const text = [header, ...rows].map((r) => r.join(",")).join("\n")
          await writeFile(file, text)
          seen[await outcome(() => readAndAbort(() => readCsvInto({ file, root, freq, symbol }, sinkFactory(file, root, freq, symbol))))]++
        }
      ),
      { numRuns: RUNS }
    )
    // the generator reaches both outcomes
    expect(seen.ok).toBeGreaterThan(0)
    expect(seen["typed-error"]).toBeGreaterThan(0)
  }, 900_000)

  it(`Parquet: ${RUNS} corrupted footers, truncations and schema bytes give success or a typed error`, async () => {
    const dir = await tempDir()
    const n = 50
    const base = new Uint8Array(
      parquetWriteBuffer({
        columnData: [
          { name: "ts", data: BigInt64Array.from({ length: n }, (_, i) => 1583159400000000000n + BigInt(i) * 1_000_000_000n) },
          { name: "price", data: Float64Array.from({ length: n }, (_, i) => 10 + i) },
          { name: "symbol", data: Array.from({ length: n }, (_, i) => (i % 2 ? "A" : "B")) }
        ],
        schema: [
          { name: "root", num_children: 3 },
          { name: "ts", type: "INT64", repetition_type: "REQUIRED", logical_type: { type: "TIMESTAMP", isAdjustedToUTC: true, unit: "NANOS" } },
          { name: "price", type: "DOUBLE", repetition_type: "REQUIRED" },
          { name: "symbol", type: "BYTE_ARRAY", repetition_type: "REQUIRED", converted_type: "UTF8" }
        ],
        rowGroupSize: 20
      })
    )
    const footerLength = new DataView(base.buffer, base.byteOffset).getUint32(base.length - 8, true)
    const footerStart = base.length - 8 - footerLength
    const file = join(dir, "fuzz.parquet")
    const root = join(dir, "catalog")
    const seen = { ok: 0, "typed-error": 0 }
    const mutation = fc.oneof(
      // bytes of the footer (the thrift metadata: schema, row groups, statistics) overwritten
      fc.array(fc.tuple(fc.integer({ min: footerStart, max: base.length - 9 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }).map((edits) => ({ kind: "footer" as const, edits })),
      // the footer length field
      fc.integer({ min: 0, max: 0xffffffff }).map((len) => ({ kind: "length" as const, len })),
      // truncated anywhere
      fc.integer({ min: 0, max: base.length - 1 }).map((at) => ({ kind: "truncate" as const, at })),
      // data page bytes overwritten (header parsing of pages)
      fc.array(fc.tuple(fc.integer({ min: 4, max: footerStart - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }).map((edits) => ({ kind: "pages" as const, edits }))
    )
    await fc.assert(
      fc.asyncProperty(mutation, async (m) => {
        let bytes: Uint8Array
        if (m.kind === "truncate") bytes = base.slice(0, m.at)
        else {
          bytes = base.slice()
          if (m.kind === "length") new DataView(bytes.buffer).setUint32(bytes.length - 8, m.len, true)
          else for (const [at, v] of m.edits) bytes[at] = v
        }
        await writeFile(file, bytes)
        seen[
          await outcome(() =>
            readAndAbort(() =>
              bytes.length >= 4
                ? readParquetInto({ file, mapping: {}, timezone: "UTC", dailyBars: false }, sinkFactory(file, root, "tick", undefined))
                : readCsvInto({ file, root, freq: "tick" }, sinkFactory(file, root, "tick", undefined))
            )
          )
        ]++
      }),
      { numRuns: RUNS }
    )
    expect(seen.ok).toBeGreaterThan(0)
    expect(seen["typed-error"]).toBeGreaterThan(0)
  }, 900_000)
})
