/**
 * JetStream publishes in bulk, their acknowledgements gathered on one subscription.
 *
 * `js.publish` is a request per message: nats.js builds a request object, a timer and an error
 * (for its stack) for each one, which on the executors' hot path — one result message per
 * scenario — cost about as much CPU as the engine run of a daily scenario (bench/pipeline.ts,
 * CPU profiles). Here a bulk publish sends each message with a reply subject under this
 * connection's own inbox and one timer waits for the whole bulk; the server's PubAck (or its
 * error) for each comes back on the one inbox subscription. The protocol is the same as
 * `js.publish`: HPUB with a `Nats-Msg-Id` header, a JSON PubAck in reply; a 503 status is "no
 * stream answered" (no responders).
 *
 * A connection that comes back after a disconnect may never deliver the acks that were in
 * flight: those publishes fail at once, as transient errors, so the caller's retry (same
 * msg-ids: the server drops what did arrive) goes out right after the reconnect instead of
 * after the timeout.
 */
import { createInbox, headers, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node"
import { JetStreamApiError, type PubAck } from "@nats-io/jetstream"

/** One message of a bulk publish, already encoded. */
export interface EncodedMessage {
  readonly subject: string
  readonly payload: Uint8Array
  readonly msgId: string
}

/** The outcome of one message: its PubAck, or why it was not acknowledged. */
export type PublishOutcome = { readonly ok: true; readonly ack: PubAck } | { readonly ok: false; readonly error: Error }

interface Waiting {
  readonly settle: (o: PublishOutcome) => void
}

export class AckTimeoutError extends Error {
  constructor(subject: string, ms: number) {
    super(`TimeoutError: no JetStream acknowledgement for ${subject} within ${ms} ms`)
    this.name = "TimeoutError"
  }
}

export class AckedPublisher {
  readonly #nc: NatsConnection
  readonly #prefix: string
  readonly #sub: Subscription
  readonly #waiting = new Map<string, Waiting>()
  /** one decoder for every ack (decoding without `stream: true` keeps no state between calls) */
  readonly #decoder = new TextDecoder()
  readonly #status: AsyncIterable<{ type: string }> & { stop?: () => void }
  #next = 0
  #stopped = false

  constructor(nc: NatsConnection) {
    this.#nc = nc
    this.#prefix = `${createInbox()}.`
    this.#sub = nc.subscribe(`${this.#prefix}*`, { callback: (err, m) => (err ? undefined : this.#onAck(m)) })
    this.#status = nc.status() as AsyncIterable<{ type: string }> & { stop?: () => void }
    this.#watchReconnects().catch(() => undefined)
  }

  /** Publish every message; resolves with one outcome per message, in order. Never rejects. */
  publishAll(messages: ReadonlyArray<EncodedMessage>, timeoutMs: number): Promise<PublishOutcome[]> {
    const outcomes = new Array<PublishOutcome>(messages.length)
    if (messages.length === 0) return Promise.resolve(outcomes)
    return new Promise((resolve) => {
      let open = messages.length
      const tokens: string[] = []
      const timer = setTimeout(() => {
        for (let i = 0; i < tokens.length; i++) {
          const w = this.#waiting.get(tokens[i])
          if (w) w.settle({ ok: false, error: new AckTimeoutError(messages[i].subject, timeoutMs) })
        }
      }, timeoutMs)
      for (let i = 0; i < messages.length; i++) {
        const m = messages[i]
        const token = String(this.#next++)
        tokens.push(token)
        this.#waiting.set(token, {
          settle: (o) => {
            if (!this.#waiting.delete(token)) return
            outcomes[i] = o
            if (--open === 0) {
              clearTimeout(timer)
              resolve(outcomes)
            }
          }
        })
        try {
          if (this.#stopped) throw new Error("closed: the publisher is stopped")
          const h = headers()
          h.set("Nats-Msg-Id", m.msgId)
          this.#nc.publish(m.subject, m.payload, { reply: this.#prefix + token, headers: h })
        } catch (error) {
          this.#waiting.get(token)?.settle({ ok: false, error: error as Error })
        }
      }
    })
  }

  /** Stop listening; whatever still waits fails (transient: a retry on a new connection may work). */
  stop(): void {
    this.#stopped = true
    this.#status.stop?.()
    this.#sub.unsubscribe()
    this.#failAll("closed: the connection is closing")
  }

  #onAck(m: Msg): void {
    const w = this.#waiting.get(m.subject.slice(this.#prefix.length))
    if (w === undefined) return // late: its bulk already timed out and was retried
    if (m.headers?.hasError && m.headers.code === 503) {
      w.settle({ ok: false, error: new JetStreamApiError({ code: 503, err_code: 503, description: "no responders: no stream took the message" }) })
      return
    }
    let body: { stream?: string; seq?: number; duplicate?: boolean; domain?: string; error?: { code: number; err_code?: number; description?: string } }
    try {
      body = JSON.parse(this.#decoder.decode(m.data))
    } catch {
      w.settle({ ok: false, error: new Error("invalid JetStream acknowledgement (not JSON)") })
      return
    }
    if (body.error) {
      w.settle({ ok: false, error: new JetStreamApiError({ code: body.error.code, err_code: body.error.err_code ?? body.error.code, description: body.error.description ?? "error" }) })
      return
    }
    if (typeof body.stream !== "string" || body.stream === "" || typeof body.seq !== "number") {
      w.settle({ ok: false, error: new Error("invalid JetStream acknowledgement") })
      return
    }
    w.settle({ ok: true, ack: { stream: body.stream, seq: body.seq, duplicate: body.duplicate === true, domain: body.domain ?? "" } as PubAck })
  }

  async #watchReconnects(): Promise<void> {
    for await (const s of this.#status) {
      if (this.#stopped) return
      if (s.type === "reconnect") this.#failAll("reconnect: the acknowledgement may have been lost with the old connection")
    }
  }

  #failAll(why: string): void {
    for (const w of [...this.#waiting.values()]) w.settle({ ok: false, error: new Error(why) })
  }
}
