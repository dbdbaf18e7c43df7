/**
 * Human validation messages: every problem names the path, the bad value and what is allowed,
 * and all problems are reported at once, e.g. `runs[3].freq: "5m" is not one of tick, 1min, ...`.
 */
import { z } from "zod"

const show = (v: unknown): string => {
  if (v === undefined) return "missing"
  if (typeof v === "string") return JSON.stringify(v)
  if (typeof v === "number" || typeof v === "boolean" || v === null) return String(v)
  if (typeof v === "bigint") return `${v}n`
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? "an invalid date" : v.toISOString()
  if (Array.isArray(v)) return `a list of ${v.length}`
  if (typeof v === "object") return "an object"
  return typeof v
}

const describeType = (v: unknown): string =>
  v === undefined ? "missing" : v === null ? "null" : Array.isArray(v) ? "a list" : `${show(v)} (${typeof v})`

/** Global zod error map: schemas that set their own message keep it. */
const explain = (iss: z.core.$ZodRawIssue): string | undefined => {
  const input = iss.input
  switch (iss.code) {
    case "invalid_type":
      if (input === undefined) return `is required (${iss.expected})`
      return `${describeType(input)} is not ${article(iss.expected)}`
    case "too_small": {
      const what = iss.origin === "string" ? "characters" : iss.origin === "array" ? "items" : ""
      if (iss.origin === "string" || iss.origin === "array")
        return `${show(input)} has fewer than ${iss.minimum} ${what}`
      return iss.inclusive
        ? `${show(input)} is below the minimum ${String(iss.minimum)}`
        : `${show(input)} must be greater than ${String(iss.minimum)}`
    }
    case "too_big": {
      const what = iss.origin === "string" ? "characters" : iss.origin === "array" ? "items" : ""
      if (iss.origin === "string" || iss.origin === "array") return `${show(input)} has more than ${iss.maximum} ${what}`
      return iss.inclusive
        ? `${show(input)} is above the maximum ${String(iss.maximum)}`
        : `${show(input)} must be less than ${String(iss.maximum)}`
    }
    case "invalid_value":
      return `${show(input)} is not one of ${iss.values.map((x) => String(x)).join(", ")}`
    case "invalid_format":
      return `${show(input)} is not a valid ${iss.format}`
    case "not_multiple_of":
      return `${show(input)} is not a multiple of ${String(iss.divisor)}`
    case "unrecognized_keys":
      return `unknown field${iss.keys.length > 1 ? "s" : ""} ${iss.keys.map((k) => JSON.stringify(k)).join(", ")}; remove ${iss.keys.length > 1 ? "them" : "it"} or check the spelling`
    case "invalid_union":
      return `${show(input)} matches none of the allowed forms`
    default:
      return undefined
  }
}

function article(t: string): string {
  return /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`
}

z.config({ customError: explain })

/** `runs[3].params.fast` from a zod path. */
export const formatPath = (path: ReadonlyArray<PropertyKey>): string => {
  let out = ""
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`
    else out += out === "" ? String(seg) : `.${String(seg)}`
  }
  return out === "" ? "(root)" : out
}

export const formatIssues = (error: z.ZodError, prefix = ""): string[] =>
  error.issues.map((iss) => {
    const path = formatPath([...(prefix ? [prefix] : []), ...iss.path])
    return `${path}: ${iss.message}`
  })
