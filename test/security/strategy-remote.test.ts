/**
 * A user strategy published once runs on an executor started in another working directory,
 * with no access to the strategy's file (deleted after publishing) and no catalog (slices come
 * from the object store). Every part is a separate `tickflow` process on a real nats-server,
 * each with its own role: server, actors (actor), strategy publish (researcher), executor
 * (executor), submit (submitter); results are read as viewer.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { connect } from "@nats-io/transport-node"
import { jetstream } from "@nats-io/jetstream"
import { generateCatalog } from "../../src/data/index.js"
import { ScenarioResult } from "../../src/schemas/results.js"

const BIN = resolve(__dirname, "..", "..", "bin", "tickflow.mjs")
const home = mkdtempSync(join(tmpdir(), "tf-remote-home-"))
const authorDir = mkdtempSync(join(tmpdir(), "tf-remote-author-"))
const executorDir = mkdtempSync(join(tmpdir(), "tf-remote-executor-"))
const children: ChildProcess[] = []

/** A tickflow process in `cwd` with exactly the environment given (plus PATH/HOME). */
const start = (args: string[], cwd: string, env: Record<string, string>) => {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", TICKFLOW_LOG_FORMAT: "json", TICKFLOW_LOG_LEVEL: "warn", ...env }
  })
  children.push(child)
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (b) => (stdout += b))
  child.stderr!.on("data", (b) => (stderr += b))
  const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)))
  return { child, out: () => stdout, err: () => stderr, exited }
}

const until = async (check: () => boolean, ms: number, what: string) => {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

// A strategy with a parameter of its own: weight 0 never trades (exact oracle: capital kept,
// no trades), weight 1 is long from the first bar.
const STRATEGY = `import { z } from "zod"
const Params = z.object({ weight: z.number().min(0).max(1).default(0) })
export default {
  name: "fixed_weight",
  description: "a constant target weight (test strategy)",
  params: Params,
  validateConfig: () => [],
  calculateRequirements: (_p: unknown, freq: string) => ({ warmupBars: 0, indicators: [], intervals: [freq] }),
  create: (p: { weight: number }) => ({ onBar: () => p.weight })
}
`

beforeAll(async () => {
  await Effect.runPromise(generateCatalog({ root: join(home, "catalog"), symbols: ["AAA"], freqs: ["1d"], start: "2015-01-01", end: "2020-12-31", seed: 21 }))
  writeFileSync(join(authorDir, "fixed_weight.ts"), STRATEGY)
}, 60_000)

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM")
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.on("exit", r)))))
  for (const d of [home, authorDir, executorDir]) rmSync(d, { recursive: true, force: true })
})

describe("published strategies", () => {
  it("published once, run by an executor in another directory without the file", async () => {
    const server = start(["server"], home, {})
    await until(() => /export NATS_USER=admin NATS_PASSWORD=\S+/.test(server.out()), 90_000, "tickflow server")
    const url = /export NATS_URL=(\S+)/.exec(server.out())![1]
    const pass = (role: string) => new RegExp(`TF_${role.toUpperCase()}_PASSWORD=(\\S+)`).exec(server.out())![1]
    const as = (role: string) => ({ NATS_URL: url, NATS_USER: role, NATS_PASSWORD: pass(role) })

    const actors = start(["actors", "--only", "coordinator,availability,requirements,loader,quality,reporter"], home, {
      ...as("actor"),
      TICKFLOW_DATA_ROOT: join(home, "catalog")
    })

    // A submitter may not publish code.
    const denied = start(["strategy", "publish", "fixed_weight.ts"], authorDir, as("submitter"))
    expect(await denied.exited).not.toBe(0)
    expect(denied.err()).toMatch(/cannot (store|open)|ermission/)

    const publish = start(["strategy", "publish", "fixed_weight.ts"], authorDir, as("researcher"))
    expect(await publish.exited).toBe(0)
    const key = publish.out().trim()
    expect(key).toMatch(/^fixed_weight@[0-9a-f]{32}$/)
    // Published again: the same content, the same key, nothing new stored.
    const again = start(["strategy", "publish", "fixed_weight.ts"], authorDir, as("researcher"))
    expect(await again.exited).toBe(0)
    expect(again.out().trim()).toBe(key)
    expect(again.err()).toContain("already published")
    rmSync(authorDir, { recursive: true, force: true })

    // The executor: another directory, no catalog, no strategy file, executor role.
    const executor = start(["executor"], executorDir, { ...as("executor"), TICKFLOW_INSTANCE_SUFFIX: "remote" })
    writeFileSync(
      join(home, "batch.yaml"),
      `batch_name: remote\ndefaults: {strategy: "${key}", freq: 1d, start_date: 2016-01-04, end_date: 2020-12-30, universe: {file: universe.txt}, start_capital: 10000}\nruns:\n  - {id: flat, params: {weight: 0}}\n  - {id: long, params: {weight: 1}}\n`
    )
    // read by `tickflow submit` on this machine and sent as a symbol list
    writeFileSync(join(home, "universe.txt"), "# symbols\nAAA\n")
    const submit = start(["submit", "batch.yaml"], home, as("submitter"))
    expect(await submit.exited).toBe(0)
    const batchId = /batch (remote-\S+): follow it/.exec(submit.out())![1]

    // Results, read as a viewer.
    const v = as("viewer")
    const nc = await connect({ servers: v.NATS_URL, user: v.NATS_USER, pass: v.NATS_PASSWORD })
    const results = new Map<string, ScenarioResult>()
    try {
      const consumer = await jetstream(nc).consumers.get("TF_RESULTS", { filter_subjects: `tf.res.${batchId}.>` })
      while (results.size < 2) {
        const m = await consumer.next({ expires: 60_000 })
        if (!m) throw new Error(`no results for ${batchId}: actors said ${actors.err().slice(-2000)} executor said ${executor.err().slice(-2000)}`)
        const r = ScenarioResult.parse(m.json())
        results.set(r.scenario_id, r)
      }
    } finally {
      await nc.close()
    }
    const flat = results.get("flat")!
    const long = results.get("long")!
    for (const r of [flat, long]) {
      expect(r.status).toBe("success")
      expect(r.strategy).toBe(key)
      expect(r.executor).toMatch(/:remote$/) // ran in the executor process, not in the actors
      expect(r.universe).toEqual(["AAA"])
    }
    expect(flat.params).toEqual({ weight: 0 })
    expect(flat.metrics).toMatchObject({ final_equity: 10_000, total_return: 0, trades: 0, exposure: 0 })
    expect(long.params).toEqual({ weight: 1 })
    expect(long.metrics!.exposure).toBeGreaterThan(0.95)
    expect(long.metrics!.final_equity).not.toBe(10_000) // held the market: its equity moved
    // the executor's working directory got nothing: modules live in its private temp cache
    expect(readdirSync(executorDir)).toEqual([])
    expect(existsSync(join(executorDir, "fixed_weight.ts"))).toBe(false)

    for (const p of [executor, actors, server]) {
      p.child.kill("SIGTERM")
      expect(await p.exited).toBe(0)
    }
  }, 240_000)
})
