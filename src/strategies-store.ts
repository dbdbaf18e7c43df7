/**
 * User strategies travel as content, never as paths. `tickflow strategy publish ./s.ts` bundles
 * the module (TypeScript transpiled and its imports inlined by esbuild — the one tsx ships
 * with — into one ESM file that needs neither tsx nor node_modules), and stores it in the
 * object store `tf_strategies` under `<name>@<hash>`, the hash being the first 32 hex digits of
 * the bundle's sha256. Scenarios name it `name@hash`.
 *
 * Requirements and executors fetch the object by that key, check that its content hashes to
 * the key's hash, write it into this process's private cache directory (mkdtemp, mode 0700,
 * removed when the scope closes) and import only that file. Trust model: publishing a strategy
 * is publishing code that executors run, so only `researcher` and `admin` may write the bucket;
 * a `submitter` can only name what was published.
 */
import { createHash } from "node:crypto"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { createRequire } from "node:module"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { Data, Effect, Ref } from "effect"
import { StorageType } from "@nats-io/jetstream"
import type { ObjectStore } from "@nats-io/obj"
import { StrategyNotFoundError } from "./engine/errors.js"
import {
  importStrategyModule,
  loadStrategy,
  STRATEGY_NAME_RE,
  type StrategyRef
} from "./engine/strategies/index.js"
import type { StrategyDefinition } from "./engine/types.js"
import { readObjectAsync } from "./streams/objects.js"
import { Nats } from "./streams/connection.js"
import { DEFAULT_TOPOLOGY, ReplicaConfig } from "./streams/topology.js"

export const STRATEGY_BUCKET = "tf_strategies"

export class StrategyPublishError extends Data.TaggedError("StrategyPublishError")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

/** 128-bit content hash of a bundled module, as it appears in `name@hash`. */
export const strategyHash = (code: Uint8Array | string): string => createHash("sha256").update(code).digest("hex").slice(0, 32)

/** esbuild as tsx depends on it (tsx is a runtime dependency), loaded only when publishing. */
const tsxPackageJson = () => createRequire(import.meta.url).resolve("tsx/package.json")
const loadEsbuild = async (): Promise<typeof import("esbuild")> => {
  const fromTsx = createRequire(tsxPackageJson())
  return (await import(pathToFileURL(fromTsx.resolve("esbuild")).href)) as typeof import("esbuild")
}

/** A strategy file bundled into one self-contained ES module: TS transpiled, imports inlined. */
export const bundleStrategyFile = (file: string) =>
  Effect.tryPromise({
    try: async () => {
      const esbuild = await loadEsbuild()
      const out = await esbuild.build({
        entryPoints: [resolve(file)],
        bundle: true,
        write: false,
        format: "esm",
        platform: "node",
        target: "node20",
        // a strategy file anywhere may import what tickflow has (zod, ...): found in its node_modules
        nodePaths: [resolve(dirname(tsxPackageJson()), "..")],
        logLevel: "silent",
        // node: built-ins stay imports (platform node); everything else (zod, helpers) is inlined
        legalComments: "none",
        // zod inlined is ~750 KB unminified, ~470 KB minified: every process's first import (fetch +
        // parse) is quicker. Names kept for readable stack traces of strategy errors.
        minify: true,
        keepNames: true
      })
      return out.outputFiles[0].text
    },
    catch: (cause) => {
      const errors = (cause as { errors?: Array<{ text: string; location?: { file: string; line: number } | null }> }).errors
      const why = errors?.length
        ? errors.slice(0, 3).map((e) => (e.location ? `${e.location.file}:${e.location.line}: ${e.text}` : e.text)).join("; ")
        : String((cause as Error)?.message ?? cause)
      return new StrategyPublishError({ reason: `cannot bundle ${file}: ${why.slice(0, 800)}` })
    }
  })

/**
 * The definition a bundle exports, imported from a private temp dir of this (the publishing)
 * process: a module that exports no strategy is refused at publish time, not on executors.
 */
export const inspectBundle = (code: string) =>
  Effect.acquireUseRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), "tickflow-publish-"))),
    (dir) =>
      Effect.tryPromise({
        try: async () => {
          const file = join(dir, `${strategyHash(code)}.mjs`)
          await writeFile(file, code, { mode: 0o600 })
          return await importStrategyModule("the bundle", file)
        },
        catch: (e) => new StrategyPublishError({ reason: (e as Error).message })
      }),
    (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
  )

export interface PublishedStrategy {
  readonly key: string
  readonly name: string
  readonly hash: string
  readonly bytes: number
  /** false when the same content was already there (publishing is idempotent) */
  readonly created: boolean
}

type PublishedRef = Extract<StrategyRef, { kind: "published" }>

/** Open the bucket (the topology creates it); create it when missing and this role may. */
const openBucket = Effect.gen(function* () {
  const { objm } = yield* Nats
  // created here only when no actors process made it yet: with the replicas the topology uses
  const { replicas } = yield* ReplicaConfig.pipe(Effect.orElseSucceed(() => ({ replicas: DEFAULT_TOPOLOGY.replicas })))
  return yield* Effect.tryPromise(() => objm.open(STRATEGY_BUCKET)).pipe(
    Effect.orElse(() =>
      Effect.tryPromise({
        try: () => objm.create(STRATEGY_BUCKET, { storage: StorageType.File, replicas }),
        catch: (cause) => new Error(`${String((cause as Error)?.message ?? cause)} (is a tickflow server or actors process running?)`)
      })
    )
  )
})

export class StrategyStore extends Effect.Service<StrategyStore>()("tickflow/StrategyStore", {
  scoped: Effect.gen(function* () {
    const nats = yield* Nats
    // Private to this process: only modules this process fetched and verified are written here.
    const cacheDir = yield* Effect.acquireRelease(
      Effect.promise(() => mkdtemp(join(tmpdir(), "tickflow-strategies-"))),
      (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
    )
    // Opened on first use: an executor may start before any actor created the bucket.
    const bucketRef = yield* Ref.make<ObjectStore | undefined>(undefined)
    const bucket = Effect.gen(function* () {
      const have = yield* Ref.get(bucketRef)
      if (have) return have
      const b = yield* openBucket.pipe(Effect.provideService(Nats, nats))
      yield* Ref.set(bucketRef, b)
      return b
    })
    const runPromise = <A, E>(e: Effect.Effect<A, E>) => Effect.runPromise(e)
    // One import per key and process; a failed fetch is not kept (it may be published later).
    const loading = new Map<string, Promise<StrategyDefinition>>()

    const fetchVerified = async (ref: PublishedRef): Promise<StrategyDefinition> => {
      const b = await runPromise(bucket).catch((e) => {
        throw new StrategyNotFoundError(ref.key, `strategy ${ref.key}: the strategy store is not reachable (${String((e as Error)?.message ?? e).slice(0, 200)})`)
      })
      const bytes = await readObjectAsync(nats.jsm, b, STRATEGY_BUCKET, ref.key)
      if (bytes === null)
        throw new StrategyNotFoundError(ref.key, `strategy ${ref.key} is not in the strategy store ${STRATEGY_BUCKET}; publish it with \`tickflow strategy publish <file>\``)
      const actual = strategyHash(bytes)
      if (actual !== ref.hash)
        throw new StrategyNotFoundError(ref.key, `strategy ${ref.key}: stored content hashes to ${actual}, not ${ref.hash}; refusing to run it (publish it again)`)
      const file = join(cacheDir, `${ref.name}-${ref.hash}.mjs`)
      await writeFile(file, bytes, { mode: 0o600 })
      return importStrategyModule(ref.key, file)
    }

    const fetchPublished = (ref: PublishedRef): Promise<StrategyDefinition> => {
      let p = loading.get(ref.key)
      if (p === undefined) {
        p = fetchVerified(ref)
        loading.set(ref.key, p)
        p.catch(() => loading.delete(ref.key))
      }
      return p
    }

    return {
      cacheDir,
      /** A built-in by name or a published module by name@hash; never a path. */
      load: (value: string): Effect.Effect<StrategyDefinition, StrategyNotFoundError> =>
        Effect.tryPromise({
          try: () => loadStrategy(value, fetchPublished),
          catch: (e) => (e instanceof StrategyNotFoundError ? e : new StrategyNotFoundError(value, `strategy ${value.slice(0, 120)}: ${String((e as Error)?.message ?? e).slice(0, 500)}`))
        }),
      /** Store a bundled module under name@hash (idempotent: the same content is stored once). */
      publishCode: (name: string, code: string): Effect.Effect<PublishedStrategy, StrategyPublishError> =>
        Effect.gen(function* () {
          if (!STRATEGY_NAME_RE.test(name))
            return yield* new StrategyPublishError({ reason: `strategy name ${JSON.stringify(name.slice(0, 80))} is not valid: a letter, then letters, digits, '_' or '-' (max 64)` })
          const b = yield* bucket.pipe(Effect.mapError((e) => new StrategyPublishError({ reason: `cannot open the strategy store ${STRATEGY_BUCKET}: ${String((e as Error)?.message ?? e).slice(0, 300)}` })))
          const bytes = new TextEncoder().encode(code)
          const hash = strategyHash(bytes)
          const key = `${name}@${hash}`
          const existing = yield* Effect.tryPromise(() => b.info(key)).pipe(Effect.orElseSucceed(() => null))
          if (existing && !existing.deleted) return { key, name, hash, bytes: bytes.byteLength, created: false }
          yield* Effect.tryPromise({
            try: () => b.putBlob({ name: key, description: JSON.stringify({ name, hash, bytes: bytes.byteLength }) }, bytes),
            catch: (cause) =>
              new StrategyPublishError({
                reason: `cannot store ${key} in ${STRATEGY_BUCKET}: ${String((cause as Error)?.message ?? cause).slice(0, 300)} (publishing needs the researcher or admin role)`
              })
          })
          return { key, name, hash, bytes: bytes.byteLength, created: true }
        })
    }
  })
}) {}

/** Bundle a strategy file, check it exports a strategy, store it; returns its name@hash. */
export const publishStrategyFile = (file: string, name?: string) =>
  Effect.gen(function* () {
    const store = yield* StrategyStore
    const code = yield* bundleStrategyFile(file)
    const def = yield* inspectBundle(code)
    return yield* store.publishCode(name ?? def.name, code)
  })
