/**
 * Test support: child processes without blocking the test worker. spawnSync/execSync freeze
 * the worker's event loop (vitest's RPC to the main process times out on a loaded machine:
 * `Timeout calling "onTaskUpdate"`), so every child runs asynchronously with a bounded time.
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process"
import { CLI_MAIN, TSX_LOADER } from "../../src/cli/system.js"

export interface ChildOutcome {
  readonly status: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * Run a command to its end and collect its output. After `timeoutMs` it is sent SIGTERM, and
 * SIGKILL 5 s later: a hung child fails its test instead of hanging the suite.
 */
export const runChild = (command: string, args: ReadonlyArray<string>, opts: SpawnOptions & { timeoutMs?: number } = {}) =>
  new Promise<ChildOutcome>((resolve, reject) => {
    const { timeoutMs = 120_000, ...spawnOpts } = opts
    const child = spawn(command, [...args], { ...spawnOpts, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout!.setEncoding("utf8").on("data", (b: string) => (stdout += b))
    child.stderr!.setEncoding("utf8").on("data", (b: string) => (stderr += b))
    let killer: NodeJS.Timeout | undefined
    const term = setTimeout(() => {
      child.kill("SIGTERM")
      killer = setTimeout(() => child.kill("SIGKILL"), 5_000)
    }, timeoutMs)
    child.on("error", (e) => {
      clearTimeout(term)
      clearTimeout(killer)
      reject(e)
    })
    child.on("close", (status, signal) => {
      clearTimeout(term)
      clearTimeout(killer)
      resolve({ status, signal, stdout, stderr })
    })
  })

/** Resolves when the child has exited (at once if it already has). */
export const exited = (c: ChildProcess) =>
  new Promise<void>((res) => (c.exitCode !== null || c.signalCode !== null ? res() : c.once("exit", () => res())))

/** SIGTERM, then SIGKILL if the child is still there after `graceMs`; resolves once it is gone. */
export const stopChild = async (c: ChildProcess, graceMs = 10_000) => {
  if (c.exitCode !== null || c.signalCode !== null) return
  c.kill("SIGTERM")
  const t = setTimeout(() => c.kill("SIGKILL"), graceMs)
  await exited(c)
  clearTimeout(t)
}

/** Poll `check` every 100 ms until it holds; the test's own timeout bounds the wait. */
export const until = async (check: () => boolean | Promise<boolean>, what: string, ms = 480_000) => {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/**
 * `tickflow <args>` as a child process from the sources (tsx), stdout ignored; its stderr is
 * piped to the test with `pipeStderr`, else shown (and its log level raised to info) when
 * TICKFLOW_TEST_CHILD_LOGS is set.
 */
export const startTickflow = (args: ReadonlyArray<string>, env: Record<string, string>, opts: { pipeStderr?: boolean } = {}): ChildProcess =>
  spawn(process.execPath, ["--import", TSX_LOADER, CLI_MAIN, ...args], {
    stdio: ["ignore", "ignore", opts.pipeStderr ? "pipe" : process.env.TICKFLOW_TEST_CHILD_LOGS ? "inherit" : "ignore"],
    env: { ...process.env, TICKFLOW_LOG_LEVEL: process.env.TICKFLOW_TEST_CHILD_LOGS ? "info" : "warn", ...env }
  })

/**
 * Each JSON log line a child writes to its piped stderr (`startTickflow` with `pipeStderr` and
 * TICKFLOW_LOG_FORMAT=json), parsed, in order; lines that are not JSON are passed over.
 */
export const onJsonLogLines = (child: ChildProcess, onLine: (entry: Record<string, unknown>) => void): void => {
  let rest = ""
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    const parts = (rest + chunk).split("\n")
    rest = parts.pop() ?? ""
    for (const line of parts) {
      let entry: unknown
      try {
        entry = JSON.parse(line)
      } catch {
        continue // not a log line
      }
      if (entry !== null && typeof entry === "object") onLine(entry as Record<string, unknown>)
    }
  })
}
