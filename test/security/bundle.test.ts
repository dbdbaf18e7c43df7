/**
 * A published strategy is one self-contained ES module: plain `node` (no tsx loader, no
 * node_modules around it) imports it from a directory of its own.
 */
import { describe, expect, it } from "vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { bundleStrategyFile, strategyHash } from "../../src/strategies-store.js"

const runNode = (cwd: string, script: string) =>
  new Promise<{ code: number | null; out: string; err: string }>((res) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { cwd, env: { PATH: process.env.PATH ?? "" } })
    let out = ""
    let err = ""
    child.stdout.on("data", (b) => (out += b))
    child.stderr.on("data", (b) => (err += b))
    child.on("exit", (code) => res({ code, out, err }))
  })

describe("strategy bundles", () => {
  it("a TypeScript strategy importing zod and engine types runs under plain node from an empty directory", async () => {
    const code = await Effect.runPromise(bundleStrategyFile(resolve(__dirname, "..", "fixtures", "slow-strategy.ts")))
    expect(strategyHash(code)).toMatch(/^[0-9a-f]{32}$/)
    expect(await Effect.runPromise(bundleStrategyFile(resolve(__dirname, "..", "fixtures", "slow-strategy.ts")))).toBe(code) // same input, same hash
    const dir = mkdtempSync(join(tmpdir(), "tf-bundle-"))
    try {
      writeFileSync(join(dir, "s.mjs"), code)
      const r = await runNode(
        dir,
        `const m = await import("./s.mjs"); const d = m.default; const p = d.params.parse({}); console.log(JSON.stringify({ name: d.name, p, warmup: d.calculateRequirements(p, "1d").warmupBars }))`
      )
      expect(r.err).toBe("")
      expect(r.code).toBe(0)
      expect(JSON.parse(r.out)).toEqual({ name: "slow", p: { spin_us: 50, fast: 5 }, warmup: 5 })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})
