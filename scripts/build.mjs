#!/usr/bin/env node
/**
 * `npm run build`: src/ → dist/, JavaScript that `bin/tickflow.mjs` runs without a TypeScript
 * loader.
 *
 * - dist/cli/main.js + dist/chunks/*.js: the CLI, bundled by esbuild with code splitting. Every
 *   `await import(...)` of a command module becomes its own chunk, so `tickflow --help` loads
 *   commander only. Pure-JS dependencies (effect, zod, @nats-io, apache-arrow, hyparquet, yaml,
 *   ...) are bundled and tree-shaken: `import { Effect } from "effect"` no longer loads every
 *   module of effect's barrel, which halves the CPU of a command's start-up (bench/startup.ts).
 *   Packages that find files next to themselves at run time stay external: parquet-wasm (its
 *   .wasm), vega-datasets (the sample CSV). pino and pino-pretty are bundled (10% less start-up
 *   CPU): src/logging.ts writes through synchronous streams; pino *transports* (worker threads
 *   started from a file path) would not work from the bundle.
 *   Both entry and chunks sit two levels below the package root, as src/<dir>/<file>.ts does,
 *   so paths computed from import.meta.url (nats.conf, package.json, bin/) hold in both.
 * - dist/client/index.js: the typed client (`tickflow/client`), dependencies external (a
 *   library should share its dependencies with the service that imports it).
 * - dist/types/: declarations of the client (tsc, tsconfig.build.json).
 * - dist/BUILD: written last; bin/tickflow.mjs runs dist only when it is newer than src/.
 */
import { spawn } from "node:child_process"
import { rm, writeFile } from "node:fs/promises"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import * as esbuild from "esbuild"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const dist = join(root, "dist")
const started = performance.now()

/** Kept out of the CLI bundle: they locate files relative to their own module at run time. */
const RUNTIME_FILE_PACKAGES = ["parquet-wasm", "vega-datasets", "@duckdb/*", "tsx", "esbuild"]

await rm(dist, { recursive: true, force: true })

const common = { bundle: true, minifyWhitespace: true, minifySyntax: true, format: "esm", platform: "node", target: "node20", logLevel: "warning", absWorkingDir: root, legalComments: "none" }

const declarations = new Promise((resolvePromise, reject) => {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc")
  const child = spawn(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: root, stdio: "inherit" })
  child.once("error", reject)
  child.once("exit", (code) => (code === 0 ? resolvePromise() : reject(new Error(`tsc -p tsconfig.build.json exited with ${code}`))))
})

await Promise.all([
  esbuild.build({
    ...common,
    entryPoints: { "cli/main": "src/cli/main.ts" },
    outdir: dist,
    splitting: true,
    chunkNames: "chunks/[name]-[hash]",
    external: RUNTIME_FILE_PACKAGES,
    // Bundled CommonJS packages (commander, cli-table3, ...) call require() for node built-ins.
    banner: { js: 'import { createRequire as __tickflowRequire } from "node:module"; const require = __tickflowRequire(import.meta.url);' }
  }),
  esbuild.build({
    ...common,
    entryPoints: { "client/index": "src/client/index.ts" },
    outdir: dist,
    packages: "external"
  }),
  declarations
])

await writeFile(join(dist, "BUILD"), `built ${new Date().toISOString()} from src/ by scripts/build.mjs\n`)
console.error(`build: dist/ in ${Math.round(performance.now() - started)} ms`)
