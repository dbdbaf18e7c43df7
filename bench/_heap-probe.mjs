/**
 * Preloaded into the memory benchmark's executor (NODE_OPTIONS="--expose-gc --import <this>"):
 * on SIGUSR2 it runs a full garbage collection and writes process.memoryUsage() (and the heap
 * figures from just before the collection) to the file
 * named by TICKFLOW_HEAP_PROBE. Heap used after a full GC tells a leak (it grows) from the
 * allocator and V8 keeping freed memory (RSS grows, the heap after GC does not).
 * Benchmark-only: nothing in src/ loads it.
 */
import { writeFileSync } from "node:fs"

const out = process.env.TICKFLOW_HEAP_PROBE
if (out && typeof globalThis.gc === "function") {
  let n = 0
  process.on("SIGUSR2", () => {
    const before = process.memoryUsage()
    globalThis.gc()
    writeFileSync(out, JSON.stringify({ n: ++n, ...process.memoryUsage(), heapTotalBefore: before.heapTotal, heapUsedBefore: before.heapUsed }))
  })
}
