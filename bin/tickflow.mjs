#!/usr/bin/env node
// The `tickflow` command. Runs the built JavaScript (dist/, `npm run build`) in this very process,
// so signals such as `docker stop`'s SIGTERM reach the code that finishes the work in hand.
//
// In a source checkout (src/ next to dist/), dist/ is used only when it is at least as new as
// every file under src/; otherwise, or with TICKFLOW_SOURCE=1, the TypeScript runs through
// tsx's loader (a dev dependency), so an edit is never shadowed by a stale build. The installed
// package has no src/ and always runs dist/.
import { existsSync, readdirSync, statSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const stamp = join(root, "dist", "BUILD")
const source = join(root, "src")

/** Newest modification time of any file under `dir` (milliseconds). */
const newest = (dir) => {
  let t = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs)
  }
  return t
}

const useDist =
  existsSync(stamp) && (!existsSync(source) || (process.env.TICKFLOW_SOURCE !== "1" && statSync(stamp).mtimeMs >= newest(source)))

if (useDist) {
  await import("../dist/cli/main.js")
} else {
  const { register } = await import("tsx/esm/api")
  register()
  await import("../src/cli/main.ts")
}
