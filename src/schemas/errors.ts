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
  if (Array.isArray(v)) return v.length === 0 ? "an empty list" : `a list of ${v.length}`
  if (typeof v === "object") return "an object"
  return typeof v
}

const describeType = (v: unknown): string =>
  v === undefined
    ? "missing"
    : v === null
      ? "null"
      : Array.isArray(v)
        ? "a list"
        : typeof v === "object"
          ? show(v)
          : `${show(v)} (${typeof v})`

/** zod's type names in the words of a YAML author. */
const TYPE_WORDS: Record<string, string> = {
  int: "an integer",
  array: "a list",
  tuple: "a list",
  record: "a mapping of names to values",
  object: "an object",
  string: "a string",
  number: "a number",
  boolean: "true or false"
}
const typeWords = (t: string): string => TYPE_WORDS[t] ?? article(t)

/** Global zod error map: schemas that set their own message keep it. */
const explain = (iss: z.core.$ZodRawIssue): string | undefined => {
  const input = iss.input
  switch (iss.code) {
    case "invalid_type":
      if (input === undefined) return `is required (${iss.expected})`
      if (iss.expected === "number" && typeof input === "number") return `${show(input)} is not a finite number`
      return `${describeType(input)} is not ${typeWords(iss.expected)}`
    case "too_small": {
      const what = iss.origin === "string" ? "characters" : iss.origin === "array" ? "items" : ""
      if (iss.origin === "string" || iss.origin === "array") {
        const n = Number(iss.minimum)
        return `${show(input)} must have at least ${n} ${n === 1 ? what.slice(0, -1) : what}`
      }
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
    case "invalid_union": {
      const u = iss as typeof iss & { note?: string; discriminator?: string; options?: unknown[] }
      if (u.note === "No matching discriminator" && u.discriminator) {
        const got = input && typeof input === "object" ? (input as Record<string, unknown>)[u.discriminator] : undefined
        const allowed = (u.options ?? []).filter((x) => x !== undefined).map((x) => String(x)).join(", ")
        return got === undefined ? `is required; one of ${allowed}` : `${show(got)} is not one of ${allowed}`
      }
      // Every branch refused the type itself: say which types would do.
      const expected = iss.errors.map((b) => (b.length === 1 && b[0].code === "invalid_type" && b[0].path.length === 0 ? b[0].expected : undefined))
      if (expected.length > 0 && expected.every((e) => e !== undefined))
        return `${describeType(input)} is not ${[...new Set(expected.map((e) => typeWords(e!)))].join(" or ")}`
      return `${show(input)} matches none of the allowed forms`
    }
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

/** A type-only refusal of a union branch (`5` offered to a list-or-object union). */
const wrongType = (branch: ReadonlyArray<z.core.$ZodIssue>): boolean =>
  branch.length === 1 && branch[0].code === "invalid_type" && branch[0].path.length === 0

/**
 * A union whose input fits exactly one branch by type reports that branch's own problems
 * (`sweep.grid.fast.step: ...`) instead of "matches none of the allowed forms" at the union.
 */
const flatten = (iss: z.core.$ZodIssue, base: ReadonlyArray<PropertyKey>): Array<{ path: PropertyKey[]; message: string }> => {
  const path = [...base, ...iss.path]
  if (iss.code === "invalid_union" && iss.errors.length > 0) {
    const fitting = iss.errors.filter((b) => b.length > 0 && !wrongType(b))
    if (fitting.length === 1) return fitting[0].flatMap((sub) => flatten(sub, path))
  }
  return [{ path, message: iss.message }]
}

export const formatIssues = (error: z.ZodError, prefix = ""): string[] =>
  error.issues
    .flatMap((iss) => flatten(iss, prefix ? [prefix] : []))
    .map(({ path, message }) => `${formatPath(path)}: ${message}`)
