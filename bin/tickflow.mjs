#!/usr/bin/env node
// Launches the TypeScript CLI through tsx's loader so `npx tickflow` works without a build step.
import { spawnSync } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const tsx = import.meta.resolve("tsx")
const result = spawnSync(process.execPath, ["--import", tsx, join(here, "..", "src", "cli", "main.ts"), ...process.argv.slice(2)], {
  stdio: "inherit"
})
process.exit(result.status ?? (result.signal ? 1 : 0))
