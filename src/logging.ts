/**
 * Structured logging: pino underneath, bridged into Effect's Logger so `Effect.log*` lines come
 * out as one pino JSON line per event (pretty when stderr is a TTY). Annotations (batch_id,
 * scenario_id, actor, ...) become fields of the line.
 */
import { HashMap, Layer, List, Logger, LogLevel } from "effect"
import pino from "pino"

const level = (process.env.TICKFLOW_LOG_LEVEL ?? process.env.LOG_LEVEL ?? "info").toLowerCase()

const makePino = (): pino.Logger => {
  const pretty = process.stderr.isTTY && process.env.TICKFLOW_LOG_FORMAT !== "json"
  if (pretty) {
    return pino(
      { level, base: { pid: process.pid } },
      pino.transport({ target: "pino-pretty", options: { destination: 2, colorize: true, ignore: "pid,hostname" } })
    )
  }
  return pino({ level, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }))
}

let root: pino.Logger | undefined
/** The process-wide pino logger (stderr). Created lazily so tests can set the level first. */
export const rootLogger = (): pino.Logger => (root ??= makePino())

const toPinoLevel = (l: LogLevel.LogLevel): pino.Level => {
  switch (l._tag) {
    case "Fatal":
      return "fatal"
    case "Error":
      return "error"
    case "Warning":
      return "warn"
    case "Debug":
      return "debug"
    case "Trace":
    case "All":
      return "trace"
    default:
      return "info"
  }
}

const messageText = (message: unknown): string => {
  const parts = Array.isArray(message) ? message : [message]
  return parts.map((p) => (typeof p === "string" ? p : JSON.stringify(p))).join(" ")
}

export const pinoLogger = Logger.make(({ logLevel, message, annotations, spans, cause }) => {
  const log = rootLogger()
  const lvl = toPinoLevel(logLevel)
  if (!log.isLevelEnabled(lvl)) return
  const fields: Record<string, unknown> = {}
  for (const [k, v] of HashMap.toEntries(annotations)) fields[k] = v
  for (const span of List.toArray(spans)) fields[`span_${span.label}`] = span.startTime
  if (cause && cause._tag !== "Empty") fields.cause = String(cause)
  log[lvl](fields, messageText(message))
})

/** Replace Effect's default logger with the pino bridge. */
export const LoggingLive = Layer.merge(
  Logger.replace(Logger.defaultLogger, pinoLogger),
  Logger.minimumLogLevel(LogLevel.fromLiteral(level === "warn" ? "Warning" : (capitalize(level) as any)))
)

function capitalize(s: string): string {
  const c = s.charAt(0).toUpperCase() + s.slice(1)
  return ["All", "Fatal", "Error", "Warning", "Info", "Debug", "Trace", "None"].includes(c) ? c : "Info"
}
