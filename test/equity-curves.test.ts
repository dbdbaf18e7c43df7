import { describe, expect, it } from "vitest"
import { CurvesMessage, encodeCurves } from "../src/actors/equity.js"

describe("a chunk's curves message", () => {
  it("sends each distinct time axis once and rounds NAVs to 1/10,000", () => {
    const axisA = [1, 2, 3]
    const curves = new Map([
      ["s1", { ts: [...axisA], nav: [100, 100.123456789, 99.99994] }],
      ["s2", { ts: [...axisA], nav: [100, 101, 102] }],
      // same length and ends, another middle: a different axis
      ["s3", { ts: [1, 2.5, 3], nav: [100, 100, 100] }]
    ])
    const msg = encodeCurves("b", "g", curves)
    expect(CurvesMessage.safeParse(msg).success).toBe(true)
    expect(msg.times).toEqual([axisA, [1, 2.5, 3]])
    expect(msg.curves.s1).toEqual({ t: 0, nav: [100, 100.1235, 99.9999] })
    expect(msg.curves.s2!.t).toBe(0)
    expect(msg.curves.s3!.t).toBe(1)
  })
})
