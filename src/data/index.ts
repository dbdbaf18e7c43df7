/**
 * The data plane's public API. I/O functions return Effects whose error channel is DataError
 * (tagged errors from ./errors.ts); pure functions (quality checks, slice codec) are plain.
 */
import { Effect } from "effect"
import type { Freq } from "../schemas/common.js"
import type { CoverageReport, LoadedSlice, SliceRequirement } from "./types.js"
import { CatalogError, isDataError, type DataError } from "./errors.js"
import { buildCoverageAsync, type CoverageOptions } from "./coverage.js"
import { loadSliceAsync, readPriceFileAsync, type LoadedFile, type LoadOptions, type ReadFileOptions } from "./loader.js"
import type { ImportCsvOptions, ImportProgress } from "./csv.js"
import { importFileAsync, type ImportFileOptions, type ImportReport } from "./import.js"
import type { SymbolImportSummary } from "./import-sink.js"
import { generateCatalogAsync, type GenerateOptions, type GenerateSummary } from "./generate.js"
import { ensureSampleCatalogAsync } from "./sample.js"

export * from "./types.js"
export * from "./errors.js"
export { coverageFor, problemsFor, catalogVersion, DEFAULT_GAP_DAYS, type CoverageOptions, type CoverageMemory } from "./coverage.js"
export { checkQuality, qualityFindingsFor, qualityPasses, defaultMaxGapMinutes } from "./quality.js"
export { sliceContentKey, encodeSlice, decodeSlice, SLICE_FORMAT_VERSION } from "./slice-codec.js"
export { resampleTicks, type BarColumns } from "./resample.js"
export { catalogRelPath, listCatalogFiles, COVERAGE_CACHE_FILE, type CatalogFile } from "./layout.js"
export { footerCounters, DEFAULT_DECODER, type ColumnMapping, type Decoder } from "./parquet.js"
export type { LoadOptions, ReadFileOptions, LoadedFile } from "./loader.js"
export { FooterCache } from "./loader.js"
export type { ImportCsvOptions, ImportProgress, CsvColumns } from "./csv.js"
export type { ImportFileOptions, ImportReport, ImportFormat } from "./import.js"
export type { SymbolImportSummary, SymbolImportSummary as ImportSummary } from "./import-sink.js"
export { inferFrequency, ROW_PROBLEM_TEXT, type InferredFreq, type RowProblem, type RowProblemKind } from "./import-checks.js"
export type { GenerateOptions, GenerateSummary, GenerateGap } from "./generate.js"
export { SAMPLE_SYMBOLS, vegaDataFile } from "./sample.js"

/** The default catalog root: $TICKFLOW_DATA_ROOT, else .tickflow/data under the working directory. */
export const defaultDataRoot = (): string => process.env.TICKFLOW_DATA_ROOT ?? ".tickflow/data"

/** Runs an async data-plane step as an Effect; anything not already a DataError becomes a CatalogError on `path`. */
const attempt = <A>(path: string, run: () => Promise<A>): Effect.Effect<A, DataError> =>
  Effect.tryPromise({
    try: run,
    catch: (e) => (isDataError(e) ? e : new CatalogError({ path, reason: e instanceof Error ? e.message : String(e) }))
  })

/** Phase 1: coverage of the catalog at `root` (cached in <root>/.coverage-cache.json). */
export const buildCoverage = (root: string, opts?: CoverageOptions): Effect.Effect<CoverageReport, DataError> =>
  attempt(root, () => buildCoverageAsync(root, opts))

/** Phase 4: one slice (range + warmup) of one symbol and frequency as a PriceSeries. */
export const loadSlice = (root: string, req: SliceRequirement, opts?: LoadOptions): Effect.Effect<LoadedSlice, DataError> =>
  attempt(root, () => loadSliceAsync(root, req, opts))

/** Any Parquet file with a time and a price column (names mapped by `opts.columns`) as a PriceSeries. */
export const readPriceFile = (file: string, opts?: ReadFileOptions): Effect.Effect<LoadedFile, DataError> =>
  attempt(file, () => readPriceFileAsync(file, opts))

/** CSV or Parquet (told apart by content) → catalog; checked, atomic and idempotent. */
export const importFile = (opts: ImportFileOptions, onProgress?: ImportProgress): Effect.Effect<ImportReport, DataError> =>
  attempt(opts.file, () => importFileAsync(opts, onProgress))

/** One symbol's summary of an import (the asked symbol, or the first): the CSV-era API. */
export const importCsv = (opts: ImportCsvOptions, onProgress?: ImportProgress): Effect.Effect<SymbolImportSummary, DataError> =>
  attempt(opts.file, async () => {
    const report = await importFileAsync(opts, onProgress)
    return report.symbols.find((s) => s.symbol === opts.symbol?.toUpperCase()) ?? report.symbols[0]
  })

/** Deterministic synthetic catalog: same options → same bytes. */
export const generateCatalog = (opts: GenerateOptions): Effect.Effect<GenerateSummary, DataError> =>
  attempt(opts.root, () => generateCatalogAsync(opts))

/** Real SPX daily bars + synthetic SYN1..SYN4 daily + a week of SYN1 ticks; idempotent. */
export const ensureSampleCatalog = (root: string): Effect.Effect<{ symbols: string[] }, DataError> =>
  attempt(root, () => ensureSampleCatalogAsync(root))

export type { Freq }
