/**
 * A bound on JSON nesting, checked before any schema or JSON.stringify sees a value: zod, the
 * error formatter and JSON.stringify all recurse, and a 100,000-deep parameter blew the stack
 * inside them — a defect, retried five times and dead-lettered with no answer to the sender.
 * No tickflow message or config nests anywhere near the limit.
 */
export const MAX_JSON_DEPTH = 64

/**
 * The path (a.b[0]...) of the first value nested deeper than `max` levels, or undefined.
 * Iterative (an explicit stack), so it never overflows itself.
 */
export const tooDeepAt = (value: unknown, max = MAX_JSON_DEPTH): string | undefined => {
  const stack: Array<{ v: unknown; depth: number; path: string }> = [{ v: value, depth: 0, path: "" }]
  while (stack.length > 0) {
    const { v, depth, path } = stack.pop()!
    if (v === null || typeof v !== "object") continue
    if (depth >= max) return path === "" ? "(root)" : path
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], depth: depth + 1, path: `${path}[${i}]` })
    } else {
      for (const [k, x] of Object.entries(v)) stack.push({ v: x, depth: depth + 1, path: path === "" ? k : `${path}.${k}` })
    }
  }
  return undefined
}

/** The problem text for a too-deep value: names the field, the limit and the fix. */
export const tooDeepProblem = (path: string, max = MAX_JSON_DEPTH) =>
  `${path.length > 120 ? `${path.slice(0, 120)}…` : path}: nested deeper than ${max} levels; flatten this value`
