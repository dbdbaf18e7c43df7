/**
 * Errors the engine throws. Plain Error subclasses (no Effect) so the executor can map them
 * to a `failed` scenario result with a readable reason.
 */

/** An engine-level failure of one scenario: bad data, too many missing marks, empty range. */
export class EngineRunError extends Error {
  override readonly name = "EngineRunError"
  /** the human-readable reason, the same text as `message` */
  readonly reason: string
  constructor(reason: string) {
    super(reason)
    this.reason = reason
  }
}

/** `loadStrategy` could not resolve a name or module path to a strategy definition. */
export class StrategyNotFoundError extends Error {
  override readonly name = "StrategyNotFoundError"
  /** the name or path that was asked for */
  readonly value: string
  constructor(value: string, message: string) {
    super(message)
    this.value = value
  }
}
