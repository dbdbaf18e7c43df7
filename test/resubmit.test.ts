/**
 * Every submission answers (issue: a result is a pure function of its inputs): a plain NATS
 * client sending the README's example twice gets two results on the same subject, the second
 * from the result cache; single scenarios sent to one batch never collide; a batch counts a
 * scenario once however often it is submitted.
 */
import { ActorMetrics } from "../src/actors/process-state.js"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { connect } from "@nats-io/transport-node"
import { ensureSampleCatalog } from "../src/data/index.js"
import { NatsSettings } from "../src/streams/connection.js"
import { systemTestLayer } from "./support/system.js"
import { waitForBatch } from "./support/results.js"

type Json = Record<string, unknown>

/** As a service in any language would: subscribe to the result subject, request on tf.submit. */
const submitAndWait = (servers: string | string[], creds: { user: string; pass: string }, payload: Uint8Array | string, resultSubject: string, expected: number) =>
  Effect.promise(async () => {
    const nc = await connect({ servers, user: creds.user, pass: creds.pass })
    try {
      const sub = nc.subscribe(resultSubject, { max: expected })
      const ack = await nc.request("tf.submit", payload, { timeout: 5_000 })
      const results: Json[] = []
      for await (const m of sub) {
        results.push(m.json<Json>())
        if (results.length === expected) break
      }
      return { ack: ack.json<{ stream: string; seq: number; duplicate?: boolean }>(), results }
    } finally {
      await nc.close()
    }
  }).pipe(Effect.timeout("40 seconds"))

describe("every submission answers", () => {
  it.scopedLive(
    "examples/scenario.json sent twice by a plain client gets two results, the second from the cache",
    () => {
      const root = mkdtempSync(join(tmpdir(), "tf-resubmit-"))
      return Effect.gen(function* () {
        const metrics = yield* ActorMetrics
        yield* ensureSampleCatalog(root)
        const settings = yield* NatsSettings
        const creds = settings.embedded!.credentials.submitter
        const file = readFileSync(resolve(__dirname, "..", "examples", "scenario.json"))
        const subject = "tf.res.example-service.spx-ema-10-50"

        const first = yield* submitAndWait(settings.servers, creds, file, subject, 1)
        expect(first.results[0]).toMatchObject({ status: "success", cached: false })
        const loads = metrics.loads
        const runs = metrics.scenarios

        const second = yield* submitAndWait(settings.servers, creds, file, subject, 1)
        // the same bytes are a new submission (a new stream message), not a duplicate
        expect(second.ack.duplicate).toBeUndefined()
        expect(second.ack.seq).toBeGreaterThan(first.ack.seq)
        const [a, b] = [first.results[0], second.results[0]]
        expect(b).toMatchObject({ status: "success", cached: true, result_key: a.result_key })
        expect(JSON.stringify(b.metrics)).toBe(JSON.stringify(a.metrics))
        expect(b.timings).toEqual(a.timings)
        expect(b.equity).toEqual(a.equity)
        // answered without loading data or running the engine
        expect(metrics.loads).toBe(loads)
        expect(metrics.scenarios).toBe(runs)

        // The batch counts the scenario once.
        const rec = yield* waitForBatch("example-service")
        expect(rec).toMatchObject({ status: "done", total: 1, counts: { success: 1, skipped: 0, failed: 0 } })

        // cache: false runs it again, with the same numbers.
        const fresh = JSON.stringify({ ...JSON.parse(file.toString()), cache: false })
        const third = yield* submitAndWait(settings.servers, creds, fresh, subject, 1)
        expect(third.results[0]).toMatchObject({ status: "success", cached: false, result_key: a.result_key })
        expect(JSON.stringify(third.results[0].metrics)).toBe(JSON.stringify(a.metrics))
        expect(metrics.scenarios).toBe(runs + 1)
      }).pipe(
        Effect.provide(systemTestLayer({ settings: { dataRoot: root } })),
        Effect.ensuring(Effect.sync(() => rmSync(root, { recursive: true, force: true })))
      )
    },
    120_000
  )

  it.scopedLive(
    "three single scenarios sent to one batch on the same data get three results, counted once each",
    () => {
      const root = mkdtempSync(join(tmpdir(), "tf-three-"))
      return Effect.gen(function* () {
        yield* ensureSampleCatalog(root)
        const settings = yield* NatsSettings
        const creds = settings.embedded!.credentials.submitter
        const example = JSON.parse(readFileSync(resolve(__dirname, "..", "examples", "scenario.json"), "utf8")) as Json
        const answers = yield* Effect.forEach(
          [
            { id: "three-a", params: { fast: 10, slow: 50 } },
            { id: "three-b", params: { fast: 20, slow: 100 } },
            { id: "three-c", params: { fast: 5, slow: 30 } }
          ],
          ({ id, params }) =>
            submitAndWait(
              settings.servers,
              creds,
              JSON.stringify({ ...example, batch_id: "three-singles", scenario_id: id, params }),
              `tf.res.three-singles.${id}`,
              1
            ),
          { concurrency: 3 }
        )
        expect(answers.map((a) => a.results[0].scenario_id)).toEqual(["three-a", "three-b", "three-c"])
        for (const a of answers) expect(a.results[0].status).toBe("success")
        const rec = yield* waitForBatch("three-singles")
        expect(rec).toMatchObject({ status: "done", total: 3, counts: { success: 3, skipped: 0, failed: 0 } })
      }).pipe(
        Effect.provide(systemTestLayer({ settings: { dataRoot: root } })),
        Effect.ensuring(Effect.sync(() => rmSync(root, { recursive: true, force: true })))
      )
    },
    120_000
  )
})
