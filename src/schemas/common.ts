import { z } from "zod"

/** Version of every wire message and file format tickflow writes. Bumped on breaking change. */
export const WIRE_VERSION = 1 as const

export const FREQS = ["tick", "1min", "5min", "1h", "1d"] as const
export const Freq = z.enum(FREQS, {
  error: (issue) =>
    issue.input === undefined
      ? `is required; one of ${FREQS.join(", ")}`
      : `${JSON.stringify(issue.input)} is not one of ${FREQS.join(", ")}`
})
export type Freq = z.infer<typeof Freq>

/** Milliseconds covered by one bar of each frequency (tick: 0, it has no fixed width). */
export const FREQ_MS: Record<Freq, number> = {
  tick: 0,
  "1min": 60_000,
  "5min": 300_000,
  "1h": 3_600_000,
  "1d": 86_400_000
}

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/

/** True when `s` is YYYY-MM-DD and names a real calendar day (2023-02-30 is refused). */
export const isRealDate = (s: string): boolean => {
  const m = ISO_DATE.exec(s)
  if (!m) return false
  // setUTCFullYear, not Date.UTC: Date.UTC maps years 0–99 to 1900–1999 (0001-01-01 was refused)
  const d = new Date(0)
  d.setUTCFullYear(Number(m[1]), Number(m[2]) - 1, Number(m[3]))
  return d.getUTCFullYear() === Number(m[1]) && d.getUTCMonth() === Number(m[2]) - 1 && d.getUTCDate() === Number(m[3])
}

/** A calendar date as YYYY-MM-DD. YAML may hand us a Date object: we accept it and normalise. */
export const IsoDate = z.preprocess(
  (v) => (v instanceof Date && !Number.isNaN(v.getTime()) ? v.toISOString().slice(0, 10) : v),
  z
    .string({ error: (i) => (i.input === undefined ? "is required; write YYYY-MM-DD" : `${JSON.stringify(i.input)} is not a date; write YYYY-MM-DD`) })
    .refine(isRealDate, {
      error: (i) =>
        ISO_DATE.test(String(i.input))
          ? `${JSON.stringify(i.input)} is not a real date; write YYYY-MM-DD (for example 2020-01-31)`
          : `${JSON.stringify(i.input)} is not a date; write YYYY-MM-DD (for example 2020-01-31)`
    })
)

/** Epoch milliseconds (UTC) of the start of an ISO day. */
export const dayStartMs = (isoDate: string): number => Date.parse(`${isoDate}T00:00:00Z`)
/** Epoch milliseconds (UTC) just past the end of an ISO day (exclusive bound). */
export const dayEndMs = (isoDate: string): number => dayStartMs(isoDate) + 86_400_000

/** Names used as folder names: letters, digits, dot, dash, underscore; no leading dot. */
export const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/
export const SafeName = z.string().regex(SAFE_NAME, {
  error: (i) =>
    `${JSON.stringify(i.input)} is not safe as a folder name; use letters, digits, '.', '-', '_' (max 128, no leading dot)`
})

/** Symbols: upper-case tickers with optional dot/dash (BRK.B, BTC-USD, ^GSPC written as GSPC). */
export const SYMBOL_RE = /^[A-Z0-9][A-Z0-9._-]{0,31}$/
export const Symbol = z
  .string()
  .transform((s) => s.trim().toUpperCase())
  .pipe(
    z.string().regex(SYMBOL_RE, {
      error: (i) => `${JSON.stringify(i.input)} is not a symbol; use letters, digits, '.', '-', '_' (max 32)`
    })
  )

/**
 * What each cost field means, in one place: the JSON Schema, `tickflow strategies` and the README
 * state these. Each is paid per side (on buys and on sells), adverse to the trader; the model is in
 * src/engine/broker.ts.
 */
export const COST_UNITS = {
  commission_bps: "commission in basis points of the traded value at the fill price (0..1000)",
  spread_w: "half-spread in basis points of the execution price, per side; the same whether bars carry high/low or not (0..10)",
  impact_w:
    "square-root market impact coefficient: the fill moves by impact_w × √(units traded / the execution bar's volume) as a fraction of price, capped at 100%; 0 without volume (0..10)",
  slippage_bps: "slippage in basis points of the execution price, per side (0..1000)"
} as const

/** Trading costs of a scenario, all non-negative (units: COST_UNITS). bps = 1/100 of a percent. */
export const Costs = z.object({
  /** COST_UNITS.commission_bps */
  commission_bps: z.number().min(0).max(1000).default(0),
  /** COST_UNITS.spread_w: half-spread in bps of price (not a fraction of the bar's range) */
  spread_w: z.number().min(0).max(10).default(0),
  /** COST_UNITS.impact_w: impact fraction = impact_w × sqrt(units / bar volume) */
  impact_w: z.number().min(0).max(10).default(0),
  /** COST_UNITS.slippage_bps */
  slippage_bps: z.number().min(0).max(1000).default(0)
})
export type Costs = z.infer<typeof Costs>
