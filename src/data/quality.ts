/**
 * Phase 5: is a loaded slice fit to backtest on? Pure function over the columns.
 *
 * Gaps: for ticks and intraday bars, a session is taken to be a UTC calendar day (US and
 * European sessions never cross UTC midnight), so the pause from one day's close to the next
 * day's open (overnight, weekend, holiday) is never a gap; within a day, consecutive rows more
 * than `maxGapMinutes` apart are. For daily bars, a gap is more than 5 weekdays missing
 * between consecutive bars (a holiday or two is normal, a week is not).
 * Gaps are errors in strict mode and warnings otherwise, like synthetic bars.
 * Opens equal to the previous close on most rows (opens synthesised from closes, as in the
 * sample SPX before 2006) are a warning: next-open fills are then same-close fills.
 */
import { FREQ_MS } from "../schemas/common.js"
import type { PriceSeries } from "../engine/types.js"
import type { QualityFinding, QualityOptions } from "./types.js"
import { msToIso, utcDay, weekdaysBetween } from "./time.js"

/** Most findings reported per code; the last one says how many more there were. */
const MAX_PER_CODE = 20
const MAX_MISSING_TRADING_DAYS = 5
/** "most rows": opens equal to the previous close on more than this share of rows */
const SYNTHESISED_OPEN_SHARE = 0.5
/** fewer rows than this say nothing about how the opens were made */
const MIN_ROWS_FOR_OPEN_CHECK = 20

/** Default allowed in-session pause: 30 minutes, or 3 bars for bars wider than 10 minutes. */
export const defaultMaxGapMinutes = (series: PriceSeries): number => Math.max(30, (3 * FREQ_MS[series.freq]) / 60_000)

const iso = (ms: number): string | null => (Number.isFinite(ms) ? msToIso(ms) : null)

export const checkQuality = (series: PriceSeries, opts: QualityOptions): QualityFinding[] => qualityFindingsFor(series, opts)(opts.warmupBarsRequired)

/**
 * The findings of one series for any warm-up need: the scans over the rows run once, here; the
 * returned function adds the warm-up check (one comparison) in its place. A sweep's scenarios
 * differ in warm-up only, so the quality phase scans each slice once, not once per warm-up.
 */
export const qualityFindingsFor = (series: PriceSeries, opts: Omit<QualityOptions, "warmupBarsRequired">): ((warmupBarsRequired: number) => QualityFinding[]) => {
  const findings: QualityFinding[] = []
  const { symbol, ts } = series
  const n = ts.length
  if (n === 0) {
    findings.push({ severity: "error", code: "empty", symbol, time: null, value: 0, message: `${symbol}: no ${series.freq} rows in the requested range` })
    return () => findings
  }
  const gapSeverity = opts.strict ? "error" : "warning"

  // timestamps: order and duplicates (first occurrence reported, with the count)
  let backwards = 0
  let firstBackwards = -1
  let duplicates = 0
  let firstDuplicate = -1
  for (let i = 1; i < n; i++) {
    if (ts[i] < ts[i - 1] || Number.isNaN(ts[i])) {
      if (backwards++ === 0) firstBackwards = i
    } else if (ts[i] === ts[i - 1]) {
      if (duplicates++ === 0) firstDuplicate = i
    }
  }
  if (backwards > 0) {
    const i = firstBackwards
    findings.push({
      severity: "error",
      code: "non_monotonic",
      symbol,
      time: iso(ts[i]),
      value: ts[i - 1] - ts[i],
      message: `${symbol}: timestamps go backwards at row ${i}: ${iso(ts[i])} follows ${iso(ts[i - 1])} (${ts[i - 1] - ts[i]} ms back; ${backwards} such rows); sort the data by time`
    })
  }
  if (duplicates > 0) {
    const i = firstDuplicate
    findings.push({
      severity: "warning",
      code: "duplicate_ts",
      symbol,
      time: iso(ts[i]),
      value: duplicates,
      message: `${symbol}: ${duplicates} rows repeat the timestamp of the row before, first at ${iso(ts[i])} (row ${i})`
    })
  }

  // prices: NaN, zero or negative in any price column
  const priceColumns: Array<[string, Float64Array | undefined]> = [
    ["close", series.close],
    ["open", series.open],
    ["high", series.high],
    ["low", series.low]
  ]
  for (const [name, values] of priceColumns) {
    if (!values) continue
    let bad = 0
    let first = -1
    for (let i = 0; i < n; i++) {
      const v = values[i]
      if (!(v > 0)) {
        if (bad++ === 0) first = i
      }
    }
    if (bad > 0) {
      findings.push({
        severity: "error",
        code: "bad_price",
        symbol,
        time: iso(ts[first]),
        value: Number.isNaN(values[first]) ? null : values[first],
        message: `${symbol}: ${name} is ${values[first]} at ${iso(ts[first])} (row ${first}; ${bad} rows with a NaN, zero or negative ${name}); fix or drop those rows`
      })
    }
  }

  // synthetic bars
  if (series.synthetic) {
    let count = 0
    let first = -1
    for (let i = 0; i < n; i++) {
      if (series.synthetic[i] === 1) {
        if (count++ === 0) first = i
      }
    }
    if (count > 0) {
      findings.push({
        severity: opts.strict ? "error" : "warning",
        code: "synthetic_bars",
        symbol,
        time: iso(ts[first]),
        value: count,
        message: `${symbol}: ${count} synthetic (filled) bars, first at ${iso(ts[first])}${opts.strict ? "; strict mode allows none" : ""}`
      })
    }
  }

  // opens made from closes: the engine fills a decision at the next bar's open, which is then the
  // decision bar's own close (same-close fills), whatever the docs promise about next-open fills
  if (series.open !== undefined && series.freq !== "tick" && n >= MIN_ROWS_FOR_OPEN_CHECK) {
    const open = series.open
    const close = series.close
    let same = 0
    let first = -1
    for (let i = 1; i < n; i++) {
      if (open[i] === close[i - 1]) {
        if (same++ === 0) first = i
      }
    }
    if (same > SYNTHESISED_OPEN_SHARE * (n - 1)) {
      const share = Math.round((100 * same) / (n - 1))
      findings.push({
        severity: "warning",
        code: "synthesised_opens",
        symbol,
        time: iso(ts[first]),
        value: same,
        message: `${symbol}: the open equals the previous close on ${same} of ${n - 1} rows (${share}%), first at ${iso(ts[first])}: the opens look synthesised from closes, so next-open fills are in effect same-close fills (the price of the bar the decision was made on); use data with real opens for open-sensitive strategies`
      })
    }
  }

  const head = findings.splice(0, findings.length)
  const warmupFinding = (required: number): QualityFinding[] =>
    series.startIndex < required
      ? [
          {
            severity: "warning",
            code: "insufficient_warmup",
            symbol,
            time: iso(ts[Math.min(series.startIndex, n - 1)]),
            value: series.startIndex,
            message: `${symbol}: ${series.startIndex} warmup bars before the start ${iso(ts[Math.min(series.startIndex, n - 1)])}, ${required} required; indicators start cold (move the start later or import earlier data)`
          }
        ]
      : []

  // gaps
  const gaps: QualityFinding[] = []
  let gapCount = 0
  if (series.freq === "1d") {
    for (let i = 1; i < n; i++) {
      const missing = weekdaysBetween(utcDay(ts[i - 1]), utcDay(ts[i]))
      if (missing > MAX_MISSING_TRADING_DAYS) {
        gapCount++
        if (gaps.length < MAX_PER_CODE) {
          gaps.push({
            severity: gapSeverity,
            code: "tick_gap",
            symbol,
            time: iso(ts[i - 1]),
            value: missing,
            message: `${symbol}: ${missing} trading days missing after ${iso(ts[i - 1])} (next bar ${iso(ts[i])}); more than ${MAX_MISSING_TRADING_DAYS} allowed`
          })
        }
      }
    }
  } else {
    const maxGap = opts.maxGapMinutes ?? defaultMaxGapMinutes(series)
    const maxGapMs = maxGap * 60_000
    for (let i = 1; i < n; i++) {
      const dt = ts[i] - ts[i - 1]
      if (dt > maxGapMs && utcDay(ts[i]) === utcDay(ts[i - 1])) {
        gapCount++
        if (gaps.length < MAX_PER_CODE) {
          const minutes = Math.round((dt / 60_000) * 100) / 100
          gaps.push({
            severity: gapSeverity,
            code: "tick_gap",
            symbol,
            time: iso(ts[i - 1]),
            value: minutes,
            message: `${symbol}: no ${series.freq === "tick" ? "tick" : "bar"} for ${minutes} minutes within the session after ${iso(ts[i - 1])} (next ${iso(ts[i])}); at most ${maxGap} allowed`
          })
        }
      }
    }
  }
  if (gapCount > gaps.length) {
    const last = gaps[gaps.length - 1]
    gaps[gaps.length - 1] = { ...last, message: `${last.message} (and ${gapCount - gaps.length} more gaps)` }
  }
  findings.push(...gaps)
  return (required) => {
    const warm = warmupFinding(required)
    return warm.length === 0 && findings.length === 0 ? head : [...head, ...warm, ...findings]
  }
}

/** True when no finding is an error. */
export const qualityPasses = (findings: ReadonlyArray<QualityFinding>): boolean => findings.every((f) => f.severity !== "error")
