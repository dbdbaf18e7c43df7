/**
 * Structured logging: pino underneath, bridged into Effect's Logger so `Effect.log*` lines come
 * out as one pino JSON line per event (pretty when stderr is a TTY). Annotations (batch_id,
 * scenario_id, actor, ...) become fields of the line.
 */
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import { HashMap, Layer, List, Logger, LogLevel } from "effect"
import pino from "pino"
import pinoPretty from "pino-pretty"

const level = (process.env.TICKFLOW_LOG_LEVEL ?? process.env.LOG_LEVEL ?? "info").toLowerCase()

export interface LogTargets {
  /** level of the lines written to stderr (default: TICKFLOW_LOG_LEVEL or info) */
  readonly stderrLevel?: string
  /** also write every line at the base level, as JSON, to this file */
  readonly file?: string
}
let targets: LogTargets = {}

/**
 * Where logs go, set before the first line: `tickflow run` keeps the terminal for its progress
 * bar and table (warnings only) and writes the full JSON log next to the results.
 */
export const configureLogging = (t: LogTargets): void => {
  targets = t
  root = undefined
}

const makePino = (): pino.Logger => {
  const pretty = process.stderr.isTTY && process.env.TICKFLOW_LOG_FORMAT !== "json"
  const stderrLevel = (targets.stderrLevel ?? level) as pino.Level
  // pino-pretty as a synchronous stream (no worker thread): lines are out before the process exits.
  const stderr = pretty ? pinoPretty({ destination: 2, sync: true, colorize: true, ignore: "pid,hostname" }) : pino.destination({ dest: 2, sync: true })
  const streams: pino.StreamEntry[] = [{ level: stderrLevel, stream: stderr }]
  if (targets.file) {
    mkdirSync(dirname(targets.file), { recursive: true })
    streams.push({ level: level as pino.Level, stream: pino.destination({ dest: targets.file, sync: true }) })
  }
  return pino({ level, base: { pid: process.pid } }, pino.multistream(streams))
}

let root: pino.Logger | undefined
/** The process-wide pino logger (stderr, and a file when configured). Created lazily. */
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
