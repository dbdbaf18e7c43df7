/**
 * `tickflow session start|add|remove|show|export|list`: plain NATS requests to the session actor
 * (`tf.ses.<id>.cmd`, `tf.ses.list`). The config file is read here, on the sender's machine, and
 * travels as JSON (no paths).
 */
import { readFile } from "node:fs/promises"
import type { Command } from "commander"
import { Duration, Effect, Layer, Schedule } from "effect"
import YAML from "yaml"
import { Nats, settingsFromEnv } from "../streams/connection.js"
import { SUBJECT } from "../streams/topology.js"
import { runCli } from "./system.js"

class SessionRequestError {
  readonly _tag = "SessionRequestError"
  constructor(readonly message: string, readonly retry: boolean) {}
}

/**
 * One request, retried while nobody answers (the owner is changing: a successor takes over
 * within the lease): every command is idempotent (a repeated add is a duplicate, a repeated
 * start with the same config too).
 */
export const sessionRequest = (subject: string, body: unknown, opts: { timeoutMs?: number; retryForMs?: number } = {}) =>
  Effect.gen(function* () {
    const { nc } = yield* Nats
    const once = Effect.tryPromise({
      try: () => nc.request(subject, JSON.stringify(body), { timeout: opts.timeoutMs ?? 60_000 }),
      catch: (e) => {
        const text = String((e as Error)?.message ?? e)
        const retry = /no responders|503|timeout/i.test(text) || /NoResponders/i.test(String((e as { cause?: unknown })?.cause))
        return new SessionRequestError(`${subject}: ${text}${retry ? " (no session actor answered: is `tickflow actors` running with the session actor?)" : ""}`, retry)
      }
    })
    const m = yield* once.pipe(
      Effect.retry({
        while: (e) => e.retry,
        schedule: Schedule.spaced(Duration.millis(250)).pipe(Schedule.upTo(Duration.millis(opts.retryForMs ?? 30_000)))
      })
    )
    return m.json<Record<string, unknown>>()
  })

const print = (reply: Record<string, unknown>) => {
  console.log(JSON.stringify(reply, null, 2))
  if (reply.ok !== true) process.exitCode = 1
}

const needsUrl = () => {
  if (process.env.NATS_URL) return true
  console.error("error: session commands need NATS_URL (and NATS_USER=researcher or admin) pointing at a server where `tickflow actors` runs")
  process.exitCode = 2
  return false
}

const send = async (subject: string, body: unknown) => {
  if (!needsUrl()) return
  const layer = Nats.Default.pipe(Layer.provideMerge(settingsFromEnv()))
  const reply = await runCli(sessionRequest(subject, body).pipe(Effect.provide(layer), Effect.scoped))
  if (reply) print(reply)
}

const collect = (v: string, prev: string[]) => [...prev, v]

export const registerSessionCommands = (program: Command) => {
  const session = program.command("session").description("long-lived sessions: symbols, intervals and indicators added mid-flight (needs NATS_URL)")
  session
    .command("start")
    .description("start a session from a YAML/JSON config (session_name, symbols, freqs, dates, strategies)")
    .argument("<config>", "session config file")
    .option("--id <id>", "session id (default: session_id of the config, else session_name)")
    .action(async (file: string, o: { id?: string }) => {
      let config: Record<string, unknown>
      try {
        config = YAML.parse(await readFile(file, "utf8")) as Record<string, unknown>
      } catch (e) {
        console.error(`error: cannot read ${file}: ${(e as Error).message}`)
        process.exitCode = 2
        return
      }
      const id = o.id ?? (config.session_id as string | undefined) ?? (config.session_name as string | undefined)
      if (typeof id !== "string" || !/^[A-Za-z0-9_-]{1,128}$/.test(id)) {
        console.error(`error: session id ${JSON.stringify(id)} is not valid; set session_id (letters, digits, '-', '_') in ${file} or pass --id`)
        process.exitCode = 2
        return
      }
      await send(SUBJECT.sessionCmd(id), { op: "start", config: { ...config, session_id: id } })
    })
  session
    .command("add")
    .description("add a symbol (or an interval / indicator for it): analyze, validate, provision, then run the session's strategies")
    .argument("<id>", "session id")
    .argument("<symbol>", "symbol")
    .option("--interval <freq>", "bar interval for this symbol (tick, 1min, 5min, 1h, 1d)")
    .option("--indicator <spec>", "indicator computed on the provisioned data, e.g. rsi:14 (repeatable)", collect, [])
    .option("--adhoc", "lightweight: validate and provision only; a later full add upgrades it", false)
    .option("--source <source>", "who adds it: config, strategy, scanner, adhoc")
    .action(async (id: string, symbol: string, o: { interval?: string; indicator: string[]; adhoc: boolean; source?: string }) => {
      await send(SUBJECT.sessionCmd(id), {
        op: "add",
        symbol,
        ...(o.interval ? { interval: o.interval } : {}),
        ...(o.indicator.length > 0 ? { indicators: o.indicator } : {}),
        ...(o.adhoc ? { adhoc: true } : {}),
        ...(o.source ? { source: o.source } : {})
      })
    })
  session
    .command("remove")
    .description("remove a symbol: no new scenarios for it")
    .argument("<id>", "session id")
    .argument("<symbol>", "symbol")
    .action(async (id: string, symbol: string) => send(SUBJECT.sessionCmd(id), { op: "remove", symbol }))
  session
    .command("show")
    .description("the session's state: symbols with metadata, validation, slices")
    .argument("<id>", "session id")
    .action(async (id: string) => send(SUBJECT.sessionCmd(id), { op: "show" }))
  session
    .command("export")
    .description("the session as JSON (symbols, metadata, indicator values); results: `tickflow watch <id>`")
    .argument("<id>", "session id")
    .action(async (id: string) => send(SUBJECT.sessionCmd(id), { op: "export" }))
  session
    .command("list")
    .description("sessions the session actor holds")
    .action(async () => send(SUBJECT.sessionList, {}))
}
