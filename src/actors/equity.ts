/**
 * Equity curves on demand. Results of a sweep are thin: their curve sits in the execution
 * chunk's `curves` message on TF_RESULTS (`equity_ref`), one message per chunk instead of
 * ~3 KB inside every result. A scenario run alone keeps its curve inline.
 */
import { Effect } from "effect"
import { z } from "zod"
import { lastMessageOn } from "../streams/bus.js"
import type { ScenarioResult } from "../schemas/results.js"

export const EquityCurve = z.object({ ts: z.array(z.number()), nav: z.array(z.number()) })
export type EquityCurve = z.infer<typeof EquityCurve>

/**
 * A chunk's curves on the wire. The scenarios of a chunk mostly share their time axis (same
 * dates), so each distinct axis is sent once (`times`) and a curve names it by index; NAVs are
 * rounded to 1/10,000 of the currency unit (the curve is for plotting; metrics are computed
 * from the full-precision run). About 1.3 KB per scenario instead of ~4 KB: the executors
 * wrote ~40 MB of curves per 10,000-scenario sweep (bench/pipeline.ts).
 */
export const CurvesMessage = z.object({
  batch_id: z.string(),
  group_id: z.string(),
  times: z.array(z.array(z.number())),
  curves: z.record(z.string(), z.object({ t: z.number().int().nonnegative(), nav: z.array(z.number()) }))
})
export type CurvesMessage = z.infer<typeof CurvesMessage>

const NAV_SCALE = 10_000
const sameAxis = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) => a.length === b.length && a.every((x, i) => x === b[i])

/** The curves message of one chunk: shared time axes, rounded NAVs. */
export const encodeCurves = (batchId: string, groupId: string, curves: ReadonlyMap<string, EquityCurve>): CurvesMessage => {
  const times: number[][] = []
  const byKey = new Map<string, number[]>()
  const out: CurvesMessage["curves"] = {}
  for (const [id, c] of curves) {
    const key = `${c.ts.length}:${c.ts[0]}:${c.ts[c.ts.length - 1]}`
    const candidates = byKey.get(key) ?? []
    let t = candidates.find((i) => sameAxis(times[i]!, c.ts))
    if (t === undefined) {
      t = times.push(c.ts) - 1
      byKey.set(key, [...candidates, t])
    }
    out[id] = { t, nav: c.nav.map((x) => Math.round(x * NAV_SCALE) / NAV_SCALE) }
  }
  return { batch_id: batchId, group_id: groupId, times, curves: out }
}

/** Every curve of one chunk message, by scenario id (undefined when the message is gone). */
export const fetchCurves = (subject: string) =>
  lastMessageOn(subject).pipe(
    // an unreachable or missing message reads as "no curves" (the result stands without them)
    Effect.orElseSucceed(() => null),
    Effect.map((m): Record<string, EquityCurve> | undefined => {
      if (!m) return undefined
      const parsed = CurvesMessage.safeParse(m.json())
      if (!parsed.success) return undefined
      const { times, curves } = parsed.data
      const out: Record<string, EquityCurve> = {}
      for (const [id, c] of Object.entries(curves)) {
        const ts = times[c.t]
        if (ts && ts.length === c.nav.length) out[id] = { ts, nav: c.nav }
      }
      return out
    })
  )

/** The equity curve of a result: inline, or fetched from the chunk it points at. */
export const fetchEquity = (r: Pick<ScenarioResult, "equity" | "equity_ref" | "scenario_id">) =>
  Effect.gen(function* () {
    if (r.equity) return r.equity
    if (!r.equity_ref) return undefined
    const curves = yield* fetchCurves(r.equity_ref)
    return curves?.[r.scenario_id]
  })
