/**
 * bench/pipeline.ts, the pipeline side: submit a batch to the real pipeline and collect its
 * telemetry (phase timeline, results per executor, CPU per process) until the reporter says done.
 */
import { Effect } from "effect"
import { cpus, loadavg } from "node:os"
import type { ChildProcess } from "node:child_process"
import type { Msg, Subscription } from "@nats-io/transport-node"
import { fmt, gc, machineCpuSeconds, procCpuSeconds, selfCpuSeconds, threadCpuSeconds } from "./_support.js"
import { BatchRecord } from "../src/schemas/results.js"
import { Nats, NatsSettings } from "../src/streams/connection.js"
import { Bus, kvGet, publishRaw } from "../src/streams/bus.js"
import { replayAll } from "../src/streams/replay.js"
import { CONSUMER, STREAM, SUBJECT } from "../src/streams/topology.js"

const BATCH_TIMEOUT_S = 120
const sum = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0)
const pct = (x: number) => `${(100 * x).toFixed(0)}%`


export interface PhaseStats {
  n: number
  sumMs: number
  maxMs: number
  firstStartAt: number
  firstDoneAt: number
  lastDoneAt: number
}
export interface ExecutorStats {
  n: number
  execMs: number
  firstAt: number
  lastAt: number
}
export interface BatchRun {
  ms: number
  record: BatchRecord
  phases: Map<string, PhaseStats>
  byExecutor: Map<string, ExecutorStats>
  firstResultAt: number
  lastResultAt: number
  results: number
  resultBytes: number
  /** size of every result message, to quote the median */
  resultSizes: number[]
  execMsSum: number
  /** CPU seconds over the run: this process, each executor (spawn order), nats-server, every other process on the machine */
  cpu: { self: number; executors: number[]; server: number; others: number }
  /** `started` events the executors published (one per long scenario, before its `equity` chunks) */
  runEvents: number
}

export const emptyPhase = (): PhaseStats => ({ n: 0, sumMs: 0, maxMs: 0, firstStartAt: Number.NaN, firstDoneAt: Number.NaN, lastDoneAt: Number.NaN })

export const cpuSnapshot = (executors: ReadonlyArray<ChildProcess>, serverPid: number | undefined) => ({
  machine: machineCpuSeconds().busy,
  self: selfCpuSeconds(),
  executors: executors.map((c) => procCpuSeconds(c.pid ?? -1)),
  server: serverPid ? procCpuSeconds(serverPid) : Number.NaN
})

const decoder = new TextDecoder()
const EXEC_MS_RE = /"exec_ms":([-+.\deE]+)/
const EXECUTOR_RE = /"executor":"([^"]*)"/

/** Messages each stream has taken so far (last sequence), by stream name. */
const storedPerStream = Effect.flatMap(Nats, ({ jsm }) =>
  Effect.promise(async () => {
    const out = new Map<string, number>()
    for await (const si of jsm.streams.list()) out.set(si.config.name, si.state.last_seq)
    return out
  })
)

/** Consumers each stream has now (streams with none left out), with their filters. */
const consumersPerStream = Effect.flatMap(Nats, ({ jsm }) =>
  Effect.promise(async () => {
    const out: string[] = []
    for await (const si of jsm.streams.list()) {
      const cs = await jsm.consumers.list(si.config.name).next()
      if (cs.length > 0) out.push(`${si.config.name} ${cs.length}`)
    }
    return out.join(", ")
  })
)

/** Submit a batch and wait for its record to say done; collect the telemetry on the way. */
export const runBatch = (batchId: string, cfg: unknown, executors: ReadonlyArray<ChildProcess>, opts: { timeoutS?: number; parseResults?: boolean } = {}) =>
  Effect.gen(function* () {
    const { nc } = yield* Nats
    const settings = yield* NatsSettings
    const bus = yield* Bus
    const phases = new Map<string, PhaseStats>()
    const byExecutor = new Map<string, ExecutorStats>()
    let t0 = 0
    let firstResultAt = 0
    let lastResultAt = 0
    let results = 0
    let resultBytes = 0
    const resultSizes: number[] = []
    let execMsSum = 0
    let doneAt = 0
    let runEvents = 0
    let resolveDone: () => void = () => undefined
    const done = new Promise<void>((r) => (resolveDone = r))
    const subs: Subscription[] = []
    // Only phase events, the batch summary and `started` (one per long run): a long run's `equity`
    // chunks (MBs per batch) would make this listener part of what is measured.
    subs.push(nc.subscribe(`tf.evt.${batchId}.*.started`, { callback: () => void runEvents++ }))
    subs.push(
      nc.subscribe(`tf.evt.${batchId}.batch`, {
        callback: (_e, m: Msg) => {
          const ev = m.json<{ status?: string }>()
          if (ev.status === "done" || ev.status === "failed") {
            doneAt = performance.now() - t0
            resolveDone()
          }
        }
      })
    )
    subs.push(
      nc.subscribe(`tf.evt.${batchId}.*.phase`, {
        callback: (_e, m: Msg) => {
          const at = performance.now() - t0
          const ev = m.json<{ kind?: string; phase?: string; data?: { ms?: number } }>()
          if (!ev.phase || (ev.kind !== "phase_result" && ev.kind !== "phase_start")) return
          const p = phases.get(ev.phase) ?? emptyPhase()
          phases.set(ev.phase, p)
          if (ev.kind === "phase_start") {
            if (Number.isNaN(p.firstStartAt)) p.firstStartAt = at
            return
          }
          p.n++
          p.sumMs += ev.data?.ms ?? 0
          p.maxMs = Math.max(p.maxMs, ev.data?.ms ?? 0)
          if (Number.isNaN(p.firstDoneAt)) p.firstDoneAt = at
          p.lastDoneAt = at
        }
      })
    )
    yield* Effect.promise(() => nc.flush())
    // Like each in-process run (_pipeline-inprocess.ts), each pipeline run starts from a collected
    // heap in this process (the actors'), not in the garbage of the runs before it.
    gc()
    const stored0 = yield* storedPerStream
    const cpu0 = cpuSnapshot(executors, settings.embedded?.pid)
    const traffic0 = nc.stats()
    const threads0 = executors.map((c) => threadCpuSeconds(c.pid ?? -1))
    t0 = performance.now()
    const submittedAtEpochMs = Date.now()
    yield* publishRaw(SUBJECT.submit, JSON.stringify({ kind: "batch", batch_id: batchId, config: cfg }), `submit:${batchId}`)
    const timeoutS = opts.timeoutS ?? BATCH_TIMEOUT_S
    const finished = yield* Effect.promise(() =>
      Promise.race([done.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutS * 1000).unref())])
    )
    const ms = finished ? doneAt : performance.now() - t0
    const cpu1 = cpuSnapshot(executors, settings.embedded?.pid)
    const traffic1 = nc.stats()
    const threads1 = executors.map((c) => threadCpuSeconds(c.pid ?? -1))
    const threadLine = threads1
      .map((t, i) => `#${i + 1} ` + [...t].map(([name, v]) => [name, v - (threads0[i]?.get(name) ?? 0)] as const).filter(([, v]) => v > 0.005).map(([name, v]) => `${name} ${v.toFixed(2)}`).join(", "))
      .join(" | ")
    // not for executors gone before the end (killed, or none)
    if (threads1.some((t) => t.size > 0)) console.log(`    executor threads, CPU s: ${threadLine}`)
    for (const s of subs) s.unsubscribe()
    // Consumers on each stream once the run is over: the pipeline's own (stage durables, the
    // reporter's followers) and nothing else; a count that grows from run to run is a leak
    // (nats.js's kv.keys() and getBlob left one per call before tickflow stopped using them).
    console.log("    consumers after the run: " + (yield* consumersPerStream))
    const stored1 = yield* storedPerStream
    console.log(
      `    this process's connection (actors + bench listeners): in ${traffic1.inMsgs - traffic0.inMsgs} msgs ${fmt((traffic1.inBytes - traffic0.inBytes) / 1e6)} MB, ` +
        `out ${traffic1.outMsgs - traffic0.outMsgs} msgs ${fmt((traffic1.outBytes - traffic0.outBytes) / 1e6)} MB`
    )
    console.log("    stored: " + [...stored1].map(([k, v]) => `${k} +${v - (stored0.get(k) ?? 0)}`).filter((x) => !x.endsWith("+0")).join(", "))
    // The results, read back from the stream once the clock has stopped: a listener taking every
    // result live would be part of what is measured (it shares this process with the actors).
    // When each arrived is the server's store time.
    for (const m of yield* replayAll(`tf.res.${batchId}.>`)) {
      const at = m.info.timestampNanos / 1e6 - submittedAtEpochMs
      if (results === 0 || at < firstResultAt) firstResultAt = at
      lastResultAt = Math.max(lastResultAt, at)
      results++
      resultBytes += m.data.length
      resultSizes.push(m.data.length)
      if (!opts.parseResults) continue
      // two fields of a ~1 KB result: a regex over the text
      const text = decoder.decode(m.data)
      const ms = Number(EXEC_MS_RE.exec(text)?.[1] ?? 0)
      const executor = EXECUTOR_RE.exec(text)?.[1] ?? "?"
      execMsSum += ms
      const e = byExecutor.get(executor) ?? { n: 0, execMs: 0, firstAt: at, lastAt: at }
      e.n++
      e.execMs += ms
      e.firstAt = Math.min(e.firstAt, at)
      e.lastAt = Math.max(e.lastAt, at)
      byExecutor.set(executor, e)
    }
    const rec = yield* kvGet(bus.batches, batchId, BatchRecord)
    if (!rec) return yield* Effect.fail(new Error(`batch ${batchId}: no record in tf_batches`))
    const record = rec.value
    if (finished && (record.status !== "done" || record.counts.success !== record.total))
      return yield* Effect.fail(new Error(`batch ${batchId} ended ${record.status}: ${JSON.stringify(record.counts)} of ${record.total}`))
    return {
      finished,
      run: {
        ms,
        record,
        phases,
        byExecutor,
        firstResultAt,
        lastResultAt,
        results,
        resultBytes,
        resultSizes,
        execMsSum,
        cpu: {
          self: cpu1.self - cpu0.self,
          executors: cpu1.executors.map((c, i) => c - (cpu0.executors[i] ?? 0)),
          server: cpu1.server - cpu0.server,
          others: Math.max(0, cpu1.machine - cpu0.machine - (cpu1.self - cpu0.self) - sum(cpu1.executors) + sum(cpu0.executors) - (cpu1.server - cpu0.server))
        },
        runEvents
      } satisfies BatchRun
    }
  })

export const PHASE_ORDER = ["submission", "availability", "requirements", "loading", "quality", "execution"]

/** Share of n executors × B spent inside execution-phase handlers (group received → phase_result). */
export const busyShare = (r: BatchRun, n: number) => (r.phases.get("execution")?.sumMs ?? 0) / (n * r.ms)

export const describeRun = (label: string, r: BatchRun, n: number) => {
  const cpuTotal = r.cpu.self + sum(r.cpu.executors) + r.cpu.server
  const exec = r.phases.get("execution")
  console.log(
    `  ${label}: B = ${fmt(r.ms)} ms (${r.record.total} scenarios, ${r.record.groups} groups, ${exec?.n ?? 0} exec messages) | CPU s: bench+actors ${r.cpu.self.toFixed(2)}, ` +
      `executors ${r.cpu.executors.map((c) => c.toFixed(2)).join(" + ")}, nats-server ${r.cpu.server.toFixed(2)} = ${cpuTotal.toFixed(2)}, other processes ${r.cpu.others.toFixed(2)}, of ${((r.ms / 1000) * cpus().length).toFixed(2)} core-s | ` +
      `executors busy ${pct(busyShare(r, n))} of ${n}×B` +
      (r.execMsSum > 0 ? `, in the engine ${pct(r.execMsSum / (n * r.ms))}` : "") +
      ` | load avg ${loadavg()[0].toFixed(1)}`
  )
}

export const describeTimeline = (r: BatchRun) => {
  const parts = PHASE_ORDER.filter((p) => r.phases.has(p)).map((p) => {
    const s = r.phases.get(p)!
    return `${p} ${s.n}× Σ${fmt(s.sumMs)} ms (max ${fmt(s.maxMs)}) ${fmt(s.firstStartAt)}→${fmt(s.firstDoneAt)}…${fmt(s.lastDoneAt)}`
  })
  console.log(`    timeline, ms after submit (first start→first done…last done): ${parts.join(" | ")}`)
  if (r.byExecutor.size > 0)
    console.log(
      `    per executor: ${[...r.byExecutor.values()]
        .map((e, i) => `#${i + 1} ${e.n} results, Σ exec_ms ${fmt(e.execMs)}, results ${fmt(e.firstAt)}…${fmt(e.lastAt)}`)
        .join(" | ")}`
    )
  console.log(
    `    results: ${r.results}${r.runEvents > 0 ? ` (${r.runEvents} long runs streamed started/equity events)` : ""} arrived ${fmt(r.firstResultAt)}…${fmt(r.lastResultAt)} ms (${fmt(r.resultBytes / 1e6)} MB, ${fmt(r.resultBytes / Math.max(1, r.results))} B each)` +
      (r.execMsSum > 0 ? `, Σ engine exec_ms ${fmt(r.execMsSum)} ms` : "") +
      `; batch done at ${fmt(r.ms)} ms (reporter ${fmt(r.ms - r.lastResultAt)} ms after the last result)`
  )
}

/** Wait until the executor consumer has `n` waiting pull requests (executors started and pulling). */
export const waitForExecutors = (n: number) =>
  Effect.gen(function* () {
    const { jsm } = yield* Nats
    const t0 = Date.now()
    for (;;) {
      const info = yield* Effect.promise(() => jsm.consumers.info(STREAM.pipeline, CONSUMER.executor.name))
      if (info.num_waiting >= n) return (Date.now() - t0) / 1000
      if (Date.now() - t0 > 60_000) return yield* Effect.fail(new Error(`only ${info.num_waiting} of ${n} executors are pulling after 60 s`))
      yield* Effect.sleep("100 millis")
    }
  })

