import { Data } from "effect"

/** nats-server is not installed: says how to get it. */
export class NatsServerMissing extends Data.TaggedError("NatsServerMissing")<{ readonly searched: ReadonlyArray<string> }> {
  override get message(): string {
    return (
      "nats-server was not found (looked in PATH and " +
      this.searched.join(", ") +
      "). Install it: Debian/Ubuntu `sudo apt-get install nats-server`, macOS `brew install nats-server`, " +
      "or run `docker compose up nats` and set NATS_URL=nats://localhost:4222"
    )
  }
}

/** The embedded server did not come up. */
export class NatsServerStartError extends Data.TaggedError("NatsServerStartError")<{
  readonly reason: string
  readonly output: string
}> {
  override get message(): string {
    return `nats-server did not start: ${this.reason}${this.output ? `\n--- nats-server output ---\n${this.output}` : ""}`
  }
}

export class NatsConnectError extends Data.TaggedError("NatsConnectError")<{ readonly servers: string; readonly cause: unknown }> {
  override get message(): string {
    return `cannot connect to NATS at ${this.servers}: ${String((this.cause as Error)?.message ?? this.cause)}. Is the server running? (unset NATS_URL to use a private embedded server)`
  }
}

/** A JetStream / KV / object-store operation failed. `transient` ones are worth retrying. */
export class BusError extends Data.TaggedError("BusError")<{
  readonly op: string
  readonly cause: unknown
  readonly transient: boolean
}> {
  override get message(): string {
    return `${this.op} failed: ${String((this.cause as Error)?.message ?? this.cause)}`
  }
}

/** A message did not match its schema. */
export class DecodeError extends Data.TaggedError("DecodeError")<{
  readonly subject: string
  readonly problems: ReadonlyArray<string>
  /** the parsed JSON when it was JSON (to read ids from and answer the sender); never logged */
  readonly raw?: unknown
}> {
  override get message(): string {
    return `message on ${this.subject} is not valid: ${this.problems.join("; ")}`
  }
}

/**
 * A request was sent before the connection dropped and got no answer by the time it was back:
 * its answer is lost with the old connection. Transient: send it again (connection.ts).
 */
export class RequestLostInReconnect extends Data.TaggedError("RequestLostInReconnect")<{ readonly subject: string }> {
  override get message(): string {
    return `request on ${this.subject} lost in a reconnect: sent before the connection dropped, unanswered after it came back`
  }
}
