/**
 * A bound on JSON nesting, checked before any schema or JSON.stringify sees a value: zod, the
 * error formatter and JSON.stringify all recurse, and a 100,000-deep parameter blew the stack
 * inside them — a defect, retried five times and dead-lettered with no answer to the sender.
 * No tickflow message or config nests anywhere near the limit.
 */
export const MAX_JSON_DEPTH = 64

/**
 * The path (a.b[0]...) of the first value nested deeper than `max` levels, or undefined.
 * Recursive but bounded: it never descends more than `max` levels, so it cannot overflow the
 * stack itself. The path is built only for the value found (every message passes through here:
 * building a path string per node cost more than parsing the message).
 */
export const tooDeepAt = (value: unknown, max = MAX_JSON_DEPTH): string | undefined => {
  const trail: Array<string | number> = []
  const found = deeper(value, 0, max, trail)
  if (!found) return undefined
  let path = ""
  for (let i = trail.length - 1; i >= 0; i--) {
    const k = trail[i]
    path += typeof k === "number" ? `[${k}]` : path === "" ? k : `.${k}`
  }
  return path === "" ? "(root)" : path
}

/** True when `v` holds a value deeper than `max`; `trail` gets the keys, innermost first. */
const deeper = (v: unknown, depth: number, max: number, trail: Array<string | number>): boolean => {
  if (v === null || typeof v !== "object") return false
  if (depth >= max) return true
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x = v[i]
      if (x !== null && typeof x === "object" && deeper(x, depth + 1, max, trail)) {
        trail.push(i)
        return true
      }
    }
    return false
  }
  for (const k in v) {
    if (!Object.hasOwn(v, k)) continue
    const x = (v as Record<string, unknown>)[k]
    if (x !== null && typeof x === "object" && deeper(x, depth + 1, max, trail)) {
      trail.push(k)
      return true
    }
  }
  return false
}

/** The problem text for a too-deep value: names the field, the limit and the fix. */
export const tooDeepProblem = (path: string, max = MAX_JSON_DEPTH) =>
  `${path.length > 120 ? `${path.slice(0, 120)}…` : path}: nested deeper than ${max} levels; flatten this value`
