/**
 * What an import checks before it writes: the frequency the timestamps show (a monthly file
 * is not daily bars) and row-level problems, counted by kind with the first example.
 */
import type { Freq } from "../schemas/common.js"
import { MS_PER_DAY } from "./time.js"

/** Frequencies a file's timestamps can show: tickflow's own plus the ones it has no slot for. */
export type InferredFreq = Freq | "weekly" | "monthly" | "quarterly" | "yearly" | `${number}min` | `${number}h`

export interface FreqInference {
  readonly freq: InferredFreq
  /** median step between consecutive distinct timestamps, ms */
  readonly medianStepMs: number
  readonly samples: number
}

const near = (v: number, target: number) => Math.abs(v - target) <= target * 0.02

/** The frequency of sorted or unsorted timestamps (epoch ms) from the median positive step; null below two distinct times. */
export const inferFrequency = (tsMs: ArrayLike<number>): FreqInference | null => {
  const sorted = Float64Array.from(tsMs).sort()
  const steps: number[] = []
  for (let i = 1; i < sorted.length; i++) {
    const d = sorted[i] - sorted[i - 1]
    if (d > 0) steps.push(d)
  }
  if (steps.length === 0) return null
  steps.sort((a, b) => a - b)
  const median = steps[Math.floor(steps.length / 2)]
  const day = MS_PER_DAY
  let freq: InferredFreq
  if (median >= 300 * day) freq = "yearly"
  else if (median >= 80 * day) freq = "quarterly"
  else if (median >= 25 * day) freq = "monthly"
  // a week of daily bars with a weekend in it still has a median step of one day
  else if (median >= 5 * day) freq = "weekly"
  else if (median >= 0.9 * day) freq = "1d"
  else if (near(median, 3_600_000)) freq = "1h"
  else if (near(median, 300_000)) freq = "5min"
  else if (near(median, 60_000)) freq = "1min"
  else if (median < 60_000) freq = "tick"
  else if (median % 3_600_000 === 0) freq = `${median / 3_600_000}h`
  else if (median % 60_000 === 0) freq = `${median / 60_000}min`
  else freq = "tick"
  return { freq, medianStepMs: median, samples: sorted.length }
}

/** Human form of a step: "30.4 days", "1 min", "0.8 s". */
export const describeStep = (ms: number): string =>
  ms >= MS_PER_DAY ? `${+(ms / MS_PER_DAY).toFixed(1)} days` : ms >= 3_600_000 ? `${+(ms / 3_600_000).toFixed(2)} h` : ms >= 60_000 ? `${+(ms / 60_000).toFixed(2)} min` : `${+(ms / 1000).toFixed(3)} s`

/**
 * Whether rows that look like `inferred` may be filed as `asked`. Ticks are any intraday
 * stream (sparse ticks can show a minute-like median step); bars must show their own width.
 */
export const freqAccepts = (asked: Freq, inferred: InferredFreq): boolean => {
  if (asked === "tick") return inferred !== "1d" && !["weekly", "monthly", "quarterly", "yearly"].includes(inferred)
  return asked === inferred
}

export type RowProblemKind =
  | "bad_time"
  | "bad_price"
  | "high_below_open_close"
  | "low_above_open_close"
  | "unsorted"
  | "duplicate_ts"

export const ROW_PROBLEM_TEXT: Record<RowProblemKind, string> = {
  bad_time: "time missing or not a time (row dropped)",
  bad_price: "price missing, not a number or <= 0 (row dropped)",
  high_below_open_close: "high below max(open, close) (row dropped)",
  low_above_open_close: "low above min(open, close) (row dropped)",
  unsorted: "timestamp earlier than the row before (rows sorted)",
  duplicate_ts: "timestamp repeated (the later row kept)"
}

export interface RowProblem {
  readonly count: number
  /** source row (CSV line, 1-based with the header; Parquet row, 0-based) of the first case */
  readonly firstRow: number
  readonly example: string
}

/** Counts of each problem kind with the first example; plain mutable tallies for the hot loop. */
export class ProblemTally {
  private readonly byKind = new Map<RowProblemKind, { count: number; firstRow: number; example: string }>()
  add(kind: RowProblemKind, row: number, example: () => string, count = 1): void {
    const hit = this.byKind.get(kind)
    if (hit) hit.count += count
    else this.byKind.set(kind, { count, firstRow: row, example: example().slice(0, 200) })
  }
  get total(): number {
    let t = 0
    for (const v of this.byKind.values()) t += v.count
    return t
  }
  toJSON(): Partial<Record<RowProblemKind, RowProblem>> {
    return Object.fromEntries([...this.byKind.entries()].map(([k, v]) => [k, { ...v }]))
  }
}
