/**
 * The npm package as a user gets it: the repo's package files are copied to a temp directory,
 * built there (scripts/build.mjs, so a stale dist/ in the checkout cannot leak in), packed with
 * `npm pack`, and the tarball is installed from the local file into an empty directory with
 * npm's local cache (`--prefer-offline`). The installed `tickflow` runs the built JavaScript:
 * no src/, no TypeScript loader (tsx is a dev dependency and is not installed there).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { spawn } from "node:child_process"
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"

const ROOT = resolve(__dirname, "..")
/** What scripts/build.mjs and `npm pack` read (package.json "files" plus the build inputs). */
const PACKAGE_INPUTS = ["package.json", "README.md", "bin", "src", "scripts", "tsconfig.json", "tsconfig.build.json", "nats.conf", "examples", "docs/batch.schema.json"]

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}
/** An async child process (never spawnSync in a test worker). */
const run = (cmd: string, args: ReadonlyArray<string>, cwd: string, env: Record<string, string> = {}) =>
  new Promise<Run>((res, rej) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env } })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    child.once("error", rej)
    child.once("exit", (code) => res({ code, stdout, stderr }))
  })
const ok = (r: Run, what: string): Run => {
  if (r.code !== 0) throw new Error(`${what} exited with ${r.code}:\n${r.stderr}\n${r.stdout}`)
  return r
}

describe("npm package", () => {
  const work = mkdtempSync(join(tmpdir(), "tf-pack-"))
  const source = join(work, "source")
  const app = join(work, "app")
  let tickflow = ""

  beforeAll(async () => {
    for (const p of PACKAGE_INPUTS) cpSync(join(ROOT, p), join(source, p), { recursive: true })
    // the build's tools (esbuild, typescript) come from the checkout's dev dependencies
    symlinkSync(join(ROOT, "node_modules"), join(source, "node_modules"), "dir")
    ok(await run(process.execPath, ["scripts/build.mjs"], source), "build")
    const packed = ok(await run("npm", ["pack", "--ignore-scripts", "--silent", "--pack-destination", work], source), "npm pack")
    const tarball = join(work, packed.stdout.trim().split("\n").at(-1)!)
    cpSync(join(ROOT, "examples"), join(app, "examples"), { recursive: true })
    ok(
      await run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error", "--no-save", tarball], app, { npm_config_package_lock: "false" }),
      `npm install ${tarball}`
    )
    tickflow = join(app, "node_modules", ".bin", "tickflow")
  }, 180_000)

  afterAll(() => rmSync(work, { recursive: true, force: true }))

  it("holds the built CLI and client, and neither sources nor tests", () => {
    const installed = join(app, "node_modules", "tickflow")
    expect(existsSync(join(installed, "dist", "cli", "main.js"))).toBe(true)
    expect(existsSync(join(installed, "dist", "client", "index.js"))).toBe(true)
    expect(existsSync(join(installed, "dist", "types", "client", "index.d.ts"))).toBe(true)
    expect(existsSync(join(installed, "nats.conf"))).toBe(true)
    expect(readdirSync(installed).sort()).toEqual(["README.md", "bin", "dist", "docs", "examples", "nats.conf", "package.json"])
    // run-time dependencies only: the TypeScript loader is not there
    expect(existsSync(join(app, "node_modules", "tsx"))).toBe(false)
  })

  it("runs `tickflow --version` and `tickflow validate` on an example", async () => {
    const version = ok(await run(tickflow, ["--version"], app), "tickflow --version")
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }
    expect(version.stdout.trim()).toBe(pkg.version)
    // validate checks the runs against the catalog too: build the sample catalog first
    ok(await run(tickflow, ["data", "sample"], app), "tickflow data sample")
    const valid = ok(await run(tickflow, ["validate", "examples/sweep.yaml"], app), "tickflow validate")
    expect(valid.stdout + valid.stderr).toContain("examples/sweep.yaml: ok, 22 scenarios")
    // a broken copy is reported with the field, the value and what is allowed
    const bad = await run(tickflow, ["validate", "examples/scenario.json"], app)
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain("batch_name")
  }, 60_000)

  it("runs a copied example end to end: `tickflow data sample`, then `tickflow run` (private nats-server, executors from dist/)", async () => {
    ok(await run(tickflow, ["data", "sample"], app), "tickflow data sample")
    const out = ok(await run(tickflow, ["run", "examples/sweep.yaml", "-w", "2", "--top", "3"], app, { TICKFLOW_LOG_LEVEL: "warn" }), "tickflow run")
    expect(out.stdout).toMatch(/done — 22 success, 0 skipped, 0 failed of 22/)
    const outDir = out.stdout.match(/output: +(\S+)\//)?.[1]
    expect(outDir).toBeDefined()
    const lines = readFileSync(join(outDir!, "results.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { status: string; executor?: string })
    expect(lines).toHaveLength(22)
    expect(lines.every((r) => r.status === "success")).toBe(true)
  }, 120_000)

  it("types the client for TypeScript users: the README example checks against the installed declarations, a wrong value does not", async () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8")
    const example = /```ts\n([\s\S]*?)```/.exec(readme.slice(readme.indexOf("### From TypeScript: `tickflow/client`")))![1]
    const tsconfig = {
      compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", strict: true, noEmit: true, skipLibCheck: true, types: ["node"], typeRoots: [join(ROOT, "node_modules", "@types")] },
      files: ["example.mts"]
    }
    writeFileSync(join(app, "tsconfig.json"), JSON.stringify(tsconfig))
    const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc")
    // One tsc run: the example must check, and a wrong value must be an error (were the types
    // missing or `any`, the @ts-expect-error below would itself be the error).
    const probe = [
      'const freq: import("tickflow/client").ScenarioInput["freq"] = "1d"',
      "// @ts-expect-error: not one of tick, 1min, 5min, 1h, 1d",
      'const wrong: import("tickflow/client").ScenarioInput["freq"] = "2d"',
      "export { freq, wrong }"
    ].join("\n")
    writeFileSync(join(app, "example.mts"), `${example}\n${probe}\n`)
    ok(await run(process.execPath, [tsc, "-p", "tsconfig.json"], app), "tsc on the README example")
  }, 60_000)

  it("exports the typed client as tickflow/client", async () => {
    const probe = ok(
      await run(process.execPath, ["--input-type=module", "-e", 'const m = await import("tickflow/client"); console.log(typeof m.connect, typeof m.TickflowInvalidError)'], app),
      "import tickflow/client"
    )
    expect(probe.stdout.trim()).toBe("function function")
  }, 60_000)
})
