/**
 * The data plane's public contract. The pipeline (src/actors) depends only on this file and
 * on the functions exported from src/data/index.ts.
 */
import type { Freq } from "../schemas/common.js"
import type { PriceSeries } from "../engine/types.js"

/** One slice of data a scenario group needs. Dates are YYYY-MM-DD, inclusive. */
export interface SliceRequirement {
  readonly symbol: string
  readonly freq: Freq
  readonly start: string
  readonly end: string
  readonly warmupBars: number
}

export interface CoverageGap {
  /** ISO timestamps of the last row before and the first row after the gap */
  readonly from: string
  readonly to: string
  /** gap length in calendar days (fractional) */
  readonly days: number
}

export interface CoverageEntry {
  readonly symbol: string
  readonly freq: Freq
  /** ISO timestamps (UTC) */
  readonly first: string
  readonly last: string
  readonly rows: number
  /** distinct UTC days with at least one row */
  readonly days: number
  readonly gaps: ReadonlyArray<CoverageGap>
  readonly files: number
  /** true when this frequency is not on disk but can be resampled from ticks */
  readonly derivedFromTicks?: boolean
}

export interface CoverageReport {
  readonly root: string
  readonly builtAt: string
  readonly entries: ReadonlyArray<CoverageEntry>
  /** content hash of the catalog files (names, sizes, mtimes): the data version */
  readonly dataVersion: string
}

export interface LoadedSlice {
  readonly requirement: SliceRequirement
  readonly series: PriceSeries
  /** warmup rows actually present before start (may be fewer than asked) */
  readonly warmupRows: number
  /** true when bars were resampled from ticks */
  readonly resampledFromTicks: boolean
  readonly rowGroupsRead: number
  readonly rowGroupsSkipped: number
}

export type QualitySeverity = "error" | "warning"

export interface QualityFinding {
  readonly severity: QualitySeverity
  readonly code:
    | "tick_gap"
    | "insufficient_warmup"
    | "synthetic_bars"
    | "synthesised_opens"
    | "non_monotonic"
    | "bad_price"
    | "duplicate_ts"
    | "empty"
  readonly symbol: string
  /** ISO timestamp of the row the finding is about */
  readonly time: string | null
  /** the measured value (gap in minutes, warmup bars present, bad price, ...) */
  readonly value: number | null
  readonly message: string
}

export interface QualityOptions {
  readonly strict: boolean
  /** maximum allowed gap between consecutive ticks/bars within a session, minutes */
  readonly maxGapMinutes?: number
  readonly warmupBarsRequired: number
}
