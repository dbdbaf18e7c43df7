import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { DuckDBInstance, type DuckDBConnection } from "@duckdb/node-api"
import { Effect, Exit, Cause } from "effect"

/** A fresh temp directory per call; all removed by cleanupTempDirs(). */
const dirs: string[] = []
export const tempDir = async (prefix = "tickflow-data-test-"): Promise<string> => {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  dirs.push(dir)
  return dir
}
export const cleanupTempDirs = async (): Promise<void> => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })))
}

let connection: DuckDBConnection | undefined
export const duck = async (): Promise<DuckDBConnection> => {
  if (!connection) connection = await (await DuckDBInstance.create(":memory:")).connect()
  return connection
}

/** Rows of a DuckDB query as JS values (BIGINT → bigint). */
export const duckRows = async (sql: string): Promise<unknown[][]> => (await (await duck()).runAndReadAll(sql)).getRows() as unknown[][]

/** Runs an Effect expected to fail and returns its typed error. */
export const failureOf = async <E>(effect: Effect.Effect<unknown, E>): Promise<E> => {
  const exit = await Effect.runPromiseExit(effect)
  if (Exit.isSuccess(exit)) throw new Error("expected a failure, got success")
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "None") throw new Error(`expected a typed failure, got ${Cause.pretty(exit.cause)}`)
  return failure.value
}

export const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)
