/**
 * Prints one plain closing line, `tests: N passed, N failed, N skipped`, after vitest's own
 * report, so tools that read a run's last line (CI) get the counts without parsing vitest.
 */
import type { Reporter } from "vitest/reporters"
import type { RunnerTask, RunnerTestFile } from "vitest"

const count = (tasks: ReadonlyArray<RunnerTask>, acc = { passed: 0, failed: 0, skipped: 0 }) => {
  for (const t of tasks) {
    if (t.type === "suite") count(t.tasks, acc)
    else if (t.mode === "skip" || t.mode === "todo" || t.result?.state === "skip") acc.skipped++
    else if (t.result?.state === "pass") acc.passed++
    else if (t.result?.state === "fail") acc.failed++
  }
  return acc
}

export default class SummaryReporter implements Reporter {
  onFinished(files: RunnerTestFile[] = [], errors: unknown[] = []): void {
    const c = count(files)
    // A file that failed to load has no tests: count it as a failure.
    const brokenFiles = files.filter((f) => f.result?.state === "fail" && f.tasks.length === 0).length
    process.stdout.write(`\ntests: ${c.passed} passed, ${c.failed + brokenFiles + errors.length} failed, ${c.skipped} skipped\n`)
  }
}
