/**
 * IdleCollector: one full collection after an idle period, none while work keeps coming, none
 * when turned off or when the heap has not grown enough — and a collection really returns
 * garbage (the heap shrinks).
 */
import { describe, expect, it } from "vitest"
import { IdleCollector } from "../src/actors/process-state.js"

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe("IdleCollector", () => {
  it("collects once after idleMs without work, never while busy, never when off", async () => {
    const c = new IdleCollector(40, 0)
    c.busy()
    c.idle()
    c.busy() // work came back before the idle period ended
    await sleep(120)
    expect(c.collections).toBe(0)
    c.idle()
    await sleep(200)
    expect(c.collections).toBe(1)
    await sleep(100)
    expect(c.collections).toBe(1) // once per idle period, not repeatedly

    const off = new IdleCollector(0, 0)
    off.idle()
    await sleep(100)
    expect(off.collections).toBe(0)
  })

  it("frees what is no longer referenced", async () => {
    const c = new IdleCollector(10, 0)
    let garbage: Array<Record<string, unknown>> | undefined = Array.from({ length: 200_000 }, (_, i) => ({ i, text: `row ${i}` }))
    const withGarbage = process.memoryUsage().heapUsed
    garbage = undefined
    void garbage
    c.idle()
    await sleep(150)
    expect(c.collections).toBe(1)
    expect(process.memoryUsage().heapUsed).toBeLessThan(withGarbage - 5_000_000)
  })

  it("waits for the heap to grow by growthBytes before collecting again", async () => {
    const c = new IdleCollector(10, 1 << 40)
    c.idle()
    await sleep(80)
    expect(c.collections).toBe(0)
  })
})
