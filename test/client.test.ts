/**
 * tickflow/client on a real nats-server with the whole pipeline in this process (sample
 * catalog): the README's example, run as its own process exactly as printed there, and the
 * client's contract (each result once, the batch record at the end, errors naming the field).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { ensureSampleCatalog } from "../src/data/index.js"
import { NatsSettings } from "../src/streams/connection.js"
import { TSX_LOADER } from "../src/cli/system.js"
import { connect, TickflowInvalidError, TickflowTimeoutError } from "../src/client/index.js"
import { systemTestLayer } from "./support/system.js"

const ROOT = resolve(__dirname, "..")

/** The ```ts block of the README section on the client. */
const readmeExample = (): string => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8")
  const section = readme.slice(readme.indexOf("### From TypeScript: `tickflow/client`"))
  const block = /```ts\n([\s\S]*?)```/.exec(section)
  if (!block) throw new Error("README: no ```ts block in the client section")
  return block[1]
}

/** Run a TypeScript file as a child process (async: tests never block their worker). */
const runTs = (file: string, env: Record<string, string>) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((res, rej) => {
    const child = spawn(process.execPath, ["--import", TSX_LOADER, file], { env: { ...process.env, ...env }, cwd: ROOT })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    child.once("error", rej)
    child.once("exit", (code) => res({ code, stdout, stderr }))
  })

/** A sample catalog and the whole pipeline on a private server for `body`. */
const withSystem = <A>(body: (env: { servers: string; user: string; pass: string }) => Promise<A>) => {
  const root = mkdtempSync(join(tmpdir(), "tf-client-"))
  return Effect.gen(function* () {
    yield* ensureSampleCatalog(root)
    const settings = yield* NatsSettings
    const creds = settings.embedded!.credentials.submitter
    return yield* Effect.promise(() => body({ servers: settings.servers, user: creds.user, pass: creds.pass }))
  }).pipe(
    Effect.provide(systemTestLayer({ settings: { dataRoot: root } })),
    Effect.ensuring(Effect.sync(() => rmSync(root, { recursive: true, force: true })))
  )
}

describe("tickflow/client", () => {
  it.scopedLive(
    "the README example runs as printed and gets a scenario result and a whole batch",
    () =>
      withSystem(async (env) => {
        const dir = mkdtempSync(join(tmpdir(), "tf-client-example-"))
        try {
          // The README imports the published name; here it is the source of that export.
          const code = readmeExample().replace('from "tickflow/client"', `from ${JSON.stringify(pathToFileURL(join(ROOT, "src/client/index.ts")).href)}`)
          expect(code).not.toContain("tickflow/client")
          const file = join(dir, "example.mts")
          writeFileSync(file, code)
          const out = await runTs(file, { NATS_URL: env.servers, NATS_PASSWORD: env.pass })
          expect(out.stderr).toBe("")
          expect(out.code).toBe(0)
          const lines = out.stdout.trim().split("\n")
          expect(lines[0]).toMatch(/^spx-ema-10-50: success sharpe=-?\d/)
          const batchLines = lines.slice(1)
          expect(batchLines).toHaveLength(4)
          const ids = batchLines.map((l) => /^service_sweep-\S+ (\S+): success$/.exec(l)?.[1])
          expect(ids.sort()).toEqual(["ema__fast-10__slow-100", "ema__fast-10__slow-50", "ema__fast-5__slow-100", "ema__fast-5__slow-50"])
        } finally {
          rmSync(dir, { recursive: true, force: true })
        }
      }),
    120_000
  )

  it.scopedLive(
    "runBatch returns one result per scenario and the final batch record; a late follower replays the same",
    () =>
      withSystem(async (env) => {
        const tf = await connect({ servers: env.servers, user: env.user, pass: env.pass })
        try {
          const outcome = await tf.runBatch(
            {
              batch_name: "client_contract",
              defaults: { strategy: "trend_baseline", freq: "1d", start_date: "2010-01-04", end_date: "2014-12-31", universe: ["SPX"], start_capital: 50_000 },
              runs: [
                { id: "good", params: { fast: 10, slow: 40 } },
                // no data for this symbol: a skipped result, not a stuck batch
                { id: "nodata", universe: ["NOPE"] }
              ]
            },
            { timeoutMs: 90_000 }
          )
          expect(outcome.record.status).toBe("done")
          expect(outcome.record.total).toBe(2)
          const byId = new Map(outcome.results.map((r) => [r.scenario_id, r]))
          expect(outcome.results).toHaveLength(2)
          expect(byId.get("good")?.status).toBe("success")
          expect(byId.get("nodata")?.status).toBe("skipped")
          expect(byId.get("nodata")?.reason).toContain("NOPE")
          const again = []
          for await (const r of tf.followBatch(outcome.record.batch_id, { timeoutMs: 30_000 })) again.push(r.scenario_id)
          expect(again.sort()).toEqual(["good", "nodata"])
        } finally {
          await tf.close()
        }
      }),
    120_000
  )

  it.scopedLive(
    "invalid input is refused before publishing, naming the field; waiting has a deadline",
    () =>
      withSystem(async (env) => {
        const tf = await connect({ servers: env.servers, user: env.user, pass: env.pass })
        try {
          const bad = tf.submitScenario({
            batch_id: "svc",
            scenario_id: "bad one",
            strategy: "trend_baseline",
            freq: "5m" as never,
            start_date: "2010-01-04",
            end_date: "2012-12-31",
            universe: ["SPX"],
            start_capital: 1_000
          })
          await expect(bad).rejects.toBeInstanceOf(TickflowInvalidError)
          const problems = await bad.catch((e: TickflowInvalidError) => e.problems.join("\n"))
          expect(problems).toContain("scenario.scenario_id")
          expect(problems).toContain("scenario.freq")
          expect(problems).toContain("5m")
          const noIds = tf.submitScenario({ strategy: "trend_baseline", freq: "1d", start_date: "2010-01-04", end_date: "2012-12-31", universe: ["SPX"], start_capital: 1 } as never)
          await expect(noIds).rejects.toThrow(/scenario\.batch_id: required/)
          const badBatch = tf.submitBatch({ batch_name: "x", defaults: { freq: "1d" } } as never)
          await expect(badBatch).rejects.toBeInstanceOf(TickflowInvalidError)
          // a batch nobody submitted never finishes: the deadline ends the wait
          await expect(tf.awaitBatch("never-submitted", { timeoutMs: 500 })).rejects.toBeInstanceOf(TickflowTimeoutError)
        } finally {
          await tf.close()
        }
      }),
    60_000
  )
})
