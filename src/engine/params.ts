/**
 * Strategy parameter validation. Field types, bounds and defaults are read from the strategy's
 * zod object schema through zod 4's public JSON Schema export (`z.toJSONSchema`), so user
 * strategies get the same messages as built-ins without any extra declaration. Whatever the
 * JSON Schema cannot express (refinements, transforms) is still enforced by a final `safeParse`.
 */
import { z } from "zod"
import type { ParamValidation, StrategyDefinition } from "./types.js"

interface FieldSchema {
  readonly type?: string | ReadonlyArray<string>
  readonly enum?: ReadonlyArray<unknown>
  readonly const?: unknown
  readonly minimum?: number
  readonly maximum?: number
  readonly exclusiveMinimum?: number
  readonly exclusiveMaximum?: number
  readonly default?: unknown
}

interface ObjectSchema {
  readonly properties: Readonly<Record<string, FieldSchema>>
  readonly required: ReadonlyArray<string>
}

const schemaCache = new WeakMap<object, ObjectSchema | null>()

/** The object-level JSON Schema of a strategy's params, or null when zod cannot express it. */
const describeParams = (schema: z.ZodType): ObjectSchema | null => {
  const cached = schemaCache.get(schema)
  if (cached !== undefined) return cached
  let described: ObjectSchema | null = null
  try {
    const json = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as {
      type?: unknown
      properties?: Record<string, FieldSchema>
      required?: string[]
    }
    if (json.type === "object" && json.properties !== undefined) {
      described = { properties: json.properties, required: json.required ?? [] }
    }
  } catch {
    described = null
  }
  schemaCache.set(schema, described)
  return described
}

const show = (value: unknown): string => {
  if (typeof value === "string") return JSON.stringify(value)
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value)
  if (value === undefined) return "undefined"
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

const typesOf = (field: FieldSchema): ReadonlyArray<string> =>
  field.type === undefined ? [] : typeof field.type === "string" ? [field.type] : field.type

/** "an integer between 2 and 200", "a number >= 0", "true or false", "one of "a", "b"" */
const describeAllowed = (field: FieldSchema): string => {
  if (field.enum !== undefined) return `one of ${field.enum.map(show).join(", ")}`
  const types = typesOf(field)
  if (types.includes("boolean")) return "true or false"
  if (types.includes("integer") || types.includes("number")) {
    const noun = types.includes("integer") ? "an integer" : "a number"
    const lo = field.minimum ?? field.exclusiveMinimum
    const hi = field.maximum ?? field.exclusiveMaximum
    if (field.minimum !== undefined && field.maximum !== undefined) return `${noun} between ${lo} and ${hi}`
    const parts: string[] = []
    if (field.minimum !== undefined) parts.push(`>= ${field.minimum}`)
    if (field.exclusiveMinimum !== undefined) parts.push(`> ${field.exclusiveMinimum}`)
    if (field.maximum !== undefined) parts.push(`<= ${field.maximum}`)
    if (field.exclusiveMaximum !== undefined) parts.push(`< ${field.exclusiveMaximum}`)
    return parts.length > 0 ? `${noun} ${parts.join(" and ")}` : noun
  }
  if (types.includes("string")) return "a string"
  return types.length > 0 ? types.join(" or ") : "a valid value"
}

/** A type error message, or null when `value` has the field's type. */
const typeError = (name: string, field: FieldSchema, value: unknown): string | null => {
  if (field.enum !== undefined) {
    return field.enum.some((allowed) => allowed === value)
      ? null
      : `params.${name}: ${show(value)} is not allowed; expected ${describeAllowed(field)}`
  }
  const types = typesOf(field)
  if (types.length === 0) return null
  if (types.includes("integer") && !types.includes("number")) {
    if (typeof value === "number" && Number.isInteger(value)) return null
    return `params.${name}: ${show(value)} is not an integer; expected ${describeAllowed(field)}`
  }
  if (types.includes("number")) {
    if (typeof value === "number" && Number.isFinite(value)) return null
    return `params.${name}: ${show(value)} is not a number; expected ${describeAllowed(field)}`
  }
  if (types.includes("boolean")) {
    return typeof value === "boolean" ? null : `params.${name}: ${show(value)} is not a boolean; expected true or false`
  }
  if (types.includes("string")) {
    return typeof value === "string" ? null : `params.${name}: ${show(value)} is not a string`
  }
  return null
}

interface BoundViolation {
  readonly message: string
  /** the nearest allowed value, or null when the bound is exclusive and cannot be clamped to */
  readonly clampedTo: number | null
}

const boundViolation = (name: string, field: FieldSchema, value: number): BoundViolation | null => {
  const isInteger = typesOf(field).includes("integer")
  if (field.minimum !== undefined && value < field.minimum) {
    return { message: `params.${name}: ${value} is below the minimum ${field.minimum}`, clampedTo: field.minimum }
  }
  if (field.maximum !== undefined && value > field.maximum) {
    return { message: `params.${name}: ${value} is above the maximum ${field.maximum}`, clampedTo: field.maximum }
  }
  if (field.exclusiveMinimum !== undefined && value <= field.exclusiveMinimum) {
    return {
      message: `params.${name}: ${value} must be greater than ${field.exclusiveMinimum}`,
      clampedTo: isInteger ? Math.floor(field.exclusiveMinimum) + 1 : null
    }
  }
  if (field.exclusiveMaximum !== undefined && value >= field.exclusiveMaximum) {
    return {
      message: `params.${name}: ${value} must be smaller than ${field.exclusiveMaximum}`,
      clampedTo: isInteger ? Math.ceil(field.exclusiveMaximum) - 1 : null
    }
  }
  return null
}

const zodIssueMessage = (issue: z.core.$ZodIssue, candidate: Record<string, unknown>): string => {
  const path = issue.path.map(String)
  const name = path.length > 0 ? path.join(".") : "(params)"
  const value = path.length > 0 ? candidate[path[0]] : candidate
  return `params.${name}: ${show(value)}: ${issue.message}`
}

/**
 * Validates raw scenario parameters against a strategy: defaults are applied; a type error always
 * fails; a bound violation fails in strict mode and is clamped with a warning otherwise; unknown
 * parameters fail in strict mode and are dropped with a warning otherwise; then the strategy's
 * own `validateConfig` runs on the result (only when every field is valid).
 */
export const validateParams = (
  def: StrategyDefinition<any>,
  raw: unknown,
  opts: { readonly strict: boolean }
): ParamValidation => {
  const errors: string[] = []
  const warnings: string[] = []
  if (raw !== undefined && raw !== null && (typeof raw !== "object" || Array.isArray(raw))) {
    return { ok: false, params: {}, errors: [`params: ${show(raw)} is not an object of named parameters`], warnings }
  }
  const given = (raw ?? {}) as Record<string, unknown>
  const described = describeParams(def.params)
  const candidate: Record<string, unknown> = {}

  if (described === null) {
    // schema zod cannot describe: pass everything through and let safeParse speak
    Object.assign(candidate, given)
  } else {
    const known = Object.keys(described.properties)
    for (const name of Object.keys(given)) {
      if (Object.hasOwn(described.properties, name)) continue
      const message = `params.${name}: unknown parameter (value ${show(given[name])}); ${def.name} accepts ${known.length > 0 ? known.join(", ") : "no parameters"}`
      if (opts.strict) errors.push(message)
      else warnings.push(`${message}; ignored`)
    }
    for (const name of known) {
      const field = described.properties[name]
      let value = given[name]
      if (value === undefined) {
        if (field.default !== undefined) candidate[name] = field.default
        else if (described.required.includes(name)) errors.push(`params.${name}: missing; expected ${describeAllowed(field)}`)
        continue
      }
      const typeProblem = typeError(name, field, value)
      if (typeProblem !== null) {
        errors.push(typeProblem)
        continue
      }
      if (typeof value === "number") {
        const violation = boundViolation(name, field, value)
        if (violation !== null) {
          if (opts.strict || violation.clampedTo === null) {
            errors.push(violation.message)
            continue
          }
          warnings.push(`${violation.message}; clamped to ${violation.clampedTo}`)
          value = violation.clampedTo
        }
      }
      candidate[name] = value
    }
  }
  if (errors.length > 0) return { ok: false, params: candidate, errors, warnings }

  const parsed = def.params.safeParse(candidate)
  if (!parsed.success) {
    return { ok: false, params: candidate, errors: parsed.error.issues.map((i) => zodIssueMessage(i, candidate)), warnings }
  }
  const params = parsed.data as Record<string, unknown>
  const configErrors = def.validateConfig(params)
  return { ok: configErrors.length === 0, params, errors: [...configErrors], warnings }
}
