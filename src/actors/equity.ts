/**
 * Equity curves on demand. Results of a sweep are thin: their curve sits in the execution
 * chunk's `curves` message on TF_EVENTS (`equity_ref`), one message per chunk instead of
 * ~3 KB inside every result. A scenario run alone keeps its curve inline.
 */
import { endianness } from "node:os"
import { Effect } from "effect"
import { z } from "zod"
import { lastMessageOn } from "../streams/bus.js"
import type { ScenarioResult } from "../schemas/results.js"

export const EquityCurve = z.object({ ts: z.array(z.number()), nav: z.array(z.number()) })
export type EquityCurve = z.infer<typeof EquityCurve>

/**
 * A chunk's curves on the wire. The scenarios of a chunk mostly share their time axis (same
 * dates), so each distinct axis is sent once (`times`) and a curve names it by index. NAVs go
 * as base64 of little-endian IEEE-754 float64s (`nav64`), exactly as the run produced them:
 * writing 120 numbers a scenario out as decimal text was the executors' largest cost outside
 * the engine and the results after the engine (bench/pipeline.ts profiles), for about the same
 * size (~1.3 KB a scenario). Messages of earlier versions (`nav`, numbers rounded to 1/10,000)
 * still read.
 */
export const CurvesMessage = z.object({
  batch_id: z.string(),
  group_id: z.string(),
  times: z.array(z.array(z.number())),
  curves: z.record(
    z.string(),
    z.union([z.object({ t: z.number().int().nonnegative(), nav64: z.base64() }), z.object({ t: z.number().int().nonnegative(), nav: z.array(z.number()) })])
  )
})
export type CurvesMessage = z.infer<typeof CurvesMessage>

const sameAxis = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) => a.length === b.length && a.every((x, i) => x === b[i])

/** This machine stores a Float64Array's numbers as the wire wants them (little-endian). */
const NATIVE_LE = endianness() === "LE"

/**
 * NAVs as base64 of little-endian float64s. `scratch` (reused from curve to curve) takes the
 * numbers as they are in memory on a little-endian machine: one copy, where writeDoubleLE per
 * number cost ~5 µs a 120-point curve (executor CPU profile).
 */
export const encodeNav = (nav: ReadonlyArray<number>, scratch?: Float64Array): string => {
  if (!NATIVE_LE) {
    const bytes = Buffer.allocUnsafe(nav.length * 8)
    for (let i = 0; i < nav.length; i++) bytes.writeDoubleLE(nav[i]!, i * 8)
    return bytes.toString("base64")
  }
  const values = scratch !== undefined && scratch.length >= nav.length ? scratch : new Float64Array(nav.length)
  for (let i = 0; i < nav.length; i++) values[i] = nav[i]!
  return Buffer.from(values.buffer, values.byteOffset, nav.length * 8).toString("base64")
}

/** The NAVs of `encodeNav`; undefined when the text is not a whole number of float64s. */
export const decodeNav = (text: string): number[] | undefined => {
  const bytes = Buffer.from(text, "base64")
  if (bytes.length % 8 !== 0) return undefined
  const out = new Array<number>(bytes.length / 8)
  for (let i = 0; i < out.length; i++) out[i] = bytes.readDoubleLE(i * 8)
  return out
}

/**
 * A chunk's curves message, built as its scenarios finish: each curve's NAVs are encoded at
 * once and its time axis is shared with an equal earlier one, so a chunk keeps ~1.3 KB of text
 * per scenario until its end instead of two arrays of numbers. (It did not change how often an
 * executor's full collections run, ~5 per executor per 10,000-scenario sweep: those follow the
 * churn of buffers outside the heap, --trace-gc.)
 */
export class CurvesBuilder {
  readonly #times: number[][] = []
  readonly #byKey = new Map<string, number[]>()
  // no prototype: a scenario id may be `__proto__` (ids allow it), which must stay an own key
  readonly #curves: CurvesMessage["curves"] = Object.create(null)
  #size = 0
  #scratch = new Float64Array(128)

  get size(): number {
    return this.#size
  }

  add(id: string, c: EquityCurve): void {
    const key = `${c.ts.length}:${c.ts[0]}:${c.ts[c.ts.length - 1]}`
    const candidates = this.#byKey.get(key) ?? []
    let t = candidates.find((i) => sameAxis(this.#times[i]!, c.ts))
    if (t === undefined) {
      t = this.#times.push(c.ts) - 1
      this.#byKey.set(key, [...candidates, t])
    }
    if (!Object.hasOwn(this.#curves, id)) this.#size++
    if (this.#scratch.length < c.nav.length) this.#scratch = new Float64Array(c.nav.length)
    this.#curves[id] = { t, nav64: encodeNav(c.nav, this.#scratch) }
  }

  message(batchId: string, groupId: string): CurvesMessage {
    return { batch_id: batchId, group_id: groupId, times: this.#times, curves: this.#curves }
  }
}

/** The curves message of one chunk: shared time axes, NAVs as float64 bytes. */
export const encodeCurves = (batchId: string, groupId: string, curves: ReadonlyMap<string, EquityCurve>): CurvesMessage => {
  const builder = new CurvesBuilder()
  for (const [id, c] of curves) builder.add(id, c)
  return builder.message(batchId, groupId)
}

/** Every curve of a chunk's curves message, by scenario id (undefined when it is not one). */
export const readCurves = (message: unknown): Record<string, EquityCurve> | undefined => {
  const parsed = CurvesMessage.safeParse(message)
  if (!parsed.success) return undefined
  const { times } = parsed.data
  // The entries of the message itself, which zod has checked: zod's copy of a record loses a
  // key named `__proto__` (a scenario id may be one), the JSON-parsed message does not.
  const curves = (message as { curves: CurvesMessage["curves"] }).curves
  const out: Record<string, EquityCurve> = Object.create(null)
  for (const [id, c] of Object.entries(curves)) {
    const ts = times[c.t]
    const nav = "nav64" in c ? decodeNav(c.nav64) : c.nav
    if (ts && nav && ts.length === nav.length) out[id] = { ts, nav }
  }
  return out
}

/** Every curve of one chunk message, by scenario id (undefined when the message is gone). */
export const fetchCurves = (subject: string) =>
  lastMessageOn(subject).pipe(
    // an unreachable or missing message reads as "no curves" (the result stands without them)
    Effect.orElseSucceed(() => null),
    Effect.map((m) => (m ? readCurves(m.json()) : undefined))
  )

/** The equity curve of a result: inline, or fetched from the chunk it points at. */
export const fetchEquity = (r: Pick<ScenarioResult, "equity" | "equity_ref" | "scenario_id">) =>
  Effect.gen(function* () {
    if (r.equity) return r.equity
    if (!r.equity_ref) return undefined
    const curves = yield* fetchCurves(r.equity_ref)
    return curves?.[r.scenario_id]
  })
