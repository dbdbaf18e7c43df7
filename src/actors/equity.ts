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
export const CurvesMessage = z.object({ batch_id: z.string(), group_id: z.string(), curves: z.record(z.string(), EquityCurve) })

/** Every curve of one chunk message, by scenario id (undefined when the message is gone). */
export const fetchCurves = (subject: string) =>
  lastMessageOn(subject).pipe(
    // an unreachable or missing message reads as "no curves" (the result stands without them)
    Effect.orElseSucceed(() => null),
    Effect.map((m) => {
      if (!m) return undefined
      const parsed = CurvesMessage.safeParse(m.json())
      return parsed.success ? parsed.data.curves : undefined
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
