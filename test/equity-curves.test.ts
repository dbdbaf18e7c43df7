import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { CurvesBuilder, CurvesMessage, decodeNav, encodeCurves, encodeNav, readCurves } from "../src/actors/equity.js"

describe("a chunk's curves message", () => {
  it("sends each distinct time axis once and reads back every curve exactly", () => {
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
    expect(msg.curves.s2!.t).toBe(0)
    expect(msg.curves.s3!.t).toBe(1)
    // through JSON, as it travels
    expect(readCurves(JSON.parse(JSON.stringify(msg)))).toEqual(Object.fromEntries(curves))
  })

  it("built curve by curve, a scenario id that is also a property of every object (__proto__) stays a curve", () => {
    const builder = new CurvesBuilder()
    builder.add("__proto__", { ts: [1, 2], nav: [100, 101] })
    builder.add("constructor", { ts: [1, 2], nav: [100, 99] })
    builder.add("__proto__", { ts: [1, 2], nav: [100, 102] })
    expect(builder.size).toBe(2)
    const read = readCurves(JSON.parse(JSON.stringify(builder.message("b", "g"))))!
    expect(Object.keys(read).sort()).toEqual(["__proto__", "constructor"])
    expect(read["__proto__"]).toEqual({ ts: [1, 2], nav: [100, 102] })
  })

  it("NAV bytes: any float64s round-trip bit for bit; a text that is not whole float64s is refused", () => {
    const scratch = new Float64Array(300).fill(7)
    fc.assert(
      fc.property(fc.array(fc.double({ noNaN: true }), { maxLength: 300 }), (nav) => {
        const back = decodeNav(encodeNav(nav))!
        expect(back.length).toBe(nav.length)
        // the bytes are little-endian float64s whatever the machine, with a reused scratch too
        const reference = Buffer.alloc(nav.length * 8)
        nav.forEach((x, i) => reference.writeDoubleLE(x, i * 8))
        expect(encodeNav(nav, scratch)).toBe(reference.toString("base64"))
        expect(encodeNav(nav)).toBe(reference.toString("base64"))
        // Object.is tells -0 from 0: the bytes are the value
        for (let i = 0; i < nav.length; i++) expect(Object.is(back[i], nav[i])).toBe(true)
      })
    )
    expect(decodeNav(Buffer.from([1, 2, 3]).toString("base64"))).toBeUndefined()
  })

  it("still reads a message of the earlier format (NAVs as rounded numbers)", () => {
    const old = { batch_id: "b", group_id: "g", times: [[1, 2]], curves: { s1: { t: 0, nav: [100, 100.1235] }, bad: { t: 3, nav: [1, 2] } } }
    expect(readCurves(old)).toEqual({ s1: { ts: [1, 2], nav: [100, 100.1235] } })
    expect(readCurves({ batch_id: "b" })).toBeUndefined()
  })
})
