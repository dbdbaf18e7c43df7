/** Test support: user strategies travel as published modules (name@hash), never as paths. */
import { resolve } from "node:path"
import { Effect } from "effect"
import { publishStrategyFile, StrategyStore } from "../../src/strategies-store.js"

/** Publish test/fixtures/<name> to the strategy store; its name@hash. */
export const publishFixture = (name: string) =>
  publishStrategyFile(resolve(__dirname, "..", "fixtures", name)).pipe(
    Effect.map((p) => p.key),
    Effect.provide(StrategyStore.Default)
  )
