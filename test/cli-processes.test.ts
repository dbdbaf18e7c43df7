/**
 * Operations' view, through the CLI only: `tickflow server` prints how to reach it, stage actors
 * run in one process (`tickflow actors --only ...`), an executor in another (`tickflow executor`),
 * a batch goes in with `tickflow submit` and comes out with `tickflow watch`.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import { stopChild, until } from "./support/child.js"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { generateCatalog } from "../src/data/index.js"

const BIN = resolve(__dirname, "..", "bin", "tickflow.mjs")
const dir = mkdtempSync(join(tmpdir(), "tf-procs-"))
const children: ChildProcess[] = []

const start = (args: string[], env: Record<string, string> = {}) => {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: dir,
    env: { ...process.env, TICKFLOW_LOG_FORMAT: "json", TICKFLOW_LOG_LEVEL: "warn", TICKFLOW_DATA_ROOT: join(dir, "catalog"), ...env }
  })
  children.push(child)
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (b) => (stdout += b))
  child.stderr!.on("data", (b) => (stderr += b))
  const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)))
  return { child, out: () => stdout, err: () => stderr, exited }
}

beforeAll(async () => {
  await Effect.runPromise(generateCatalog({ root: join(dir, "catalog"), symbols: ["AAA", "BBB"], freqs: ["1d"], start: "2015-01-01", end: "2020-12-31", seed: 13 }))
  writeFileSync(
    join(dir, "batch.yaml"),
    "batch_name: ops\ndefaults: {strategy: breakout, freq: 1d, start_date: 2016-01-04, end_date: 2020-12-30, start_capital: 10000}\nsweep: {id: bo, grid: {entry_window: [20, 55], symbol: [AAA, BBB]}}\n"
  )
}, 600_000)

afterAll(async () => {
  await Promise.all(children.map((c) => stopChild(c)))
  rmSync(dir, { recursive: true, force: true })
})

describe("tickflow as separate processes", () => {
  it("server + actors + executor + submit + watch", async () => {
    const server = start(["server"])
    await until(() => /export NATS_USER=admin NATS_PASSWORD=\S+/.test(server.out()), "tickflow server", 480_000)
    const url = /export NATS_URL=(\S+)/.exec(server.out())![1]
    const pass = (role: string) => new RegExp(`TF_${role.toUpperCase()}_PASSWORD=(\\S+)`).exec(server.out())![1]
    const as = (role: string) => ({ NATS_URL: url, NATS_USER: role, NATS_PASSWORD: pass(role) })

    const actors = start(["actors", "--only", "coordinator,availability,requirements,loader,quality,reporter"], as("actor"))
    const executor = start(["executor"], as("executor"))
    const submit = start(["submit", "batch.yaml"], as("submitter"))
    expect(await submit.exited).toBe(0)
    expect(submit.out()).toMatch(/submitted to tf.submit \(stream TF_PIPELINE, seq \d+\)/)

    const batchId = /batch (ops-\S+): follow it with `tickflow watch \1`/.exec(submit.out())![1]
    const watch = start(["watch", batchId], as("viewer"))
    expect(await watch.exited).toBe(0)
    expect(watch.out()).toContain(`batch ${batchId} (ops): done — 4/4 results, 4 ok, 0 skipped, 0 failed`)
    expect(watch.out()).toContain("bo__entry_window-55__symbol-BBB")
    expect(actors.err()).not.toMatch(/"level":5\d/)
    expect(executor.err()).not.toMatch(/"level":5\d/)

    // Ctrl-C / SIGTERM: each process stops cleanly
    for (const p of [executor, actors, server]) {
      p.child.kill("SIGTERM")
      expect(await p.exited).toBe(0)
    }
  }, 600_000)
})
