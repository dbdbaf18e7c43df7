/**
 * `npm run bench [-- name ...]`: runs bench/<name>.ts for each name given (all when none), each
 * in its own process so one benchmark's heap and JIT state cannot colour the next.
 * Each benchmark ends with `RESULT <name> <value> goal <goal>` lines.
 */
import { spawnSync } from "node:child_process"
import { readdirSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { createRequire } from "node:module"

const here = dirname(fileURLToPath(import.meta.url))
const available = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && f !== "run.ts" && !f.startsWith("_"))
  .map((f) => f.slice(0, -3))
  .sort()
const asked = process.argv.slice(2).filter((a) => !a.startsWith("-"))
const names = asked.length > 0 ? asked : available
const tsxCli = createRequire(import.meta.url).resolve("tsx/cli")
let failed = 0
for (const name of names) {
  if (!available.includes(name)) {
    console.error(`bench: no benchmark named "${name}"; available: ${available.join(", ")}`)
    failed++
    continue
  }
  console.log(`\n=== bench/${name}.ts ===`)
  const r = spawnSync(process.execPath, ["--expose-gc", tsxCli, join(here, `${name}.ts`)], { stdio: "inherit" })
  if (r.status !== 0) failed++
}
process.exit(failed > 0 ? 1 : 0)
