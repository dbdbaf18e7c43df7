/**
 * Scanner formulas: a small, safe expression language over candles, for example
 *   close > sma(close, 50) and rsi(close, 14) < 30
 * Hand-written tokenizer and Pratt parser (no eval, no Function); the parsed tree is type-checked
 * (numbers vs conditions) at parse time and evaluated column-wise: every node becomes one
 * Float64Array over the whole series.
 *
 * Language:
 *   numbers       12, 0.5, .5, 1e3
 *   columns       open high low close volume (open/high/low fall back to close when absent)
 *   arithmetic    + - * /   unary -
 *   comparisons   < <= > >= == !=   (non-associative: `a < b < c` is an error)
 *   logic         and or not   (case-insensitive)
 *   functions     sma(x, n) ema(x, n) rsi(x, n) highest(x, n) lowest(x, n) atr(n) abs(x)
 *                 prev(x, n)          x as of n rows earlier
 *                 crossover(a, b)     a crosses above b on this row; crossunder(a, b) below
 *   Windows (n) are positive integer literals.
 * Conditions are 1 (true) or 0 (false); a number is NaN where an indicator is not yet defined,
 * and any comparison with NaN is false.
 */
import { Atr, Ema, RollingExtreme, Rsi, Sma } from "./indicators.js"
import type { PriceSeries } from "./types.js"

export class FormulaParseError extends Error {
  override readonly name = "FormulaParseError"
  constructor(
    message: string,
    /** 1-based column in the formula source */
    readonly column: number
  ) {
    super(message)
  }
}

// ------------------------------------------------------------------------------------ tokens

type TokenKind = "number" | "identifier" | "operator" | "(" | ")" | "," | "end"

interface Token {
  readonly kind: TokenKind
  readonly text: string
  readonly value: number
  /** 1-based */
  readonly column: number
}

const OPERATORS = ["<=", ">=", "==", "!=", "<", ">", "+", "-", "*", "/"] as const

const describeToken = (t: Token): string => (t.kind === "end" ? "end of formula" : `'${t.text}'`)

export const tokenize = (source: string): Token[] => {
  const tokens: Token[] = []
  let i = 0
  while (i < source.length) {
    const ch = source[i]
    if (ch === " " || ch === "\t" || ch === "\n" || ch === "\r") {
      i++
      continue
    }
    const column = i + 1
    if ((ch >= "0" && ch <= "9") || (ch === "." && source[i + 1] >= "0" && source[i + 1] <= "9")) {
      const match = /^(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?/.exec(source.slice(i))
      const text = match === null ? ch : match[0]
      if (/[A-Za-z_]/.test(source[i + text.length] ?? "")) {
        throw new FormulaParseError(`malformed number '${text}${source[i + text.length]}' at column ${column}`, column)
      }
      tokens.push({ kind: "number", text, value: Number(text), column })
      i += text.length
      continue
    }
    if (/[A-Za-z_]/.test(ch)) {
      let j = i + 1
      while (j < source.length && /[A-Za-z0-9_]/.test(source[j])) j++
      tokens.push({ kind: "identifier", text: source.slice(i, j), value: Number.NaN, column })
      i = j
      continue
    }
    if (ch === "(" || ch === ")" || ch === ",") {
      tokens.push({ kind: ch, text: ch, value: Number.NaN, column })
      i++
      continue
    }
    const op = OPERATORS.find((o) => source.startsWith(o, i))
    if (op !== undefined) {
      tokens.push({ kind: "operator", text: op, value: Number.NaN, column })
      i += op.length
      continue
    }
    const hint = ch === "=" ? "; use == to compare" : ch === "&" || ch === "|" || ch === "!" ? "; use and / or / not" : ""
    throw new FormulaParseError(`unexpected character '${ch}' at column ${column}${hint}`, column)
  }
  tokens.push({ kind: "end", text: "", value: Number.NaN, column: source.length + 1 })
  return tokens
}

// -------------------------------------------------------------------------------------- tree

export type ValueType = "number" | "condition"

export type FormulaNode =
  | { readonly kind: "number"; readonly value: number; readonly column: number }
  | { readonly kind: "column"; readonly name: ColumnName; readonly column: number }
  | { readonly kind: "negate" | "not"; readonly operand: FormulaNode; readonly column: number }
  | {
      readonly kind: "binary"
      readonly op: BinaryOp
      readonly left: FormulaNode
      readonly right: FormulaNode
      readonly column: number
    }
  | {
      readonly kind: "call"
      readonly fn: FunctionName
      readonly args: ReadonlyArray<FormulaNode>
      /** the window argument, for functions that take one */
      readonly window: number
      readonly column: number
    }

const COLUMNS = ["open", "high", "low", "close", "volume"] as const
type ColumnName = (typeof COLUMNS)[number]
type BinaryOp = "+" | "-" | "*" | "/" | "<" | "<=" | ">" | ">=" | "==" | "!=" | "and" | "or"

interface FunctionSignature {
  /** types of the leading series arguments; "any" = number or condition */
  readonly series: ReadonlyArray<ValueType | "any">
  /** true when a window integer follows the series arguments */
  readonly window: boolean
  readonly result: ValueType | "same"
}

const FUNCTIONS = {
  sma: { series: ["number"], window: true, result: "number" },
  ema: { series: ["number"], window: true, result: "number" },
  rsi: { series: ["number"], window: true, result: "number" },
  highest: { series: ["number"], window: true, result: "number" },
  lowest: { series: ["number"], window: true, result: "number" },
  atr: { series: [], window: true, result: "number" },
  abs: { series: ["number"], window: false, result: "number" },
  prev: { series: ["any"], window: true, result: "same" },
  crossover: { series: ["number", "number"], window: false, result: "condition" },
  crossunder: { series: ["number", "number"], window: false, result: "condition" }
} as const satisfies Record<string, FunctionSignature>
type FunctionName = keyof typeof FUNCTIONS

const MAX_WINDOW = 1_000_000

/** Binding powers: higher binds tighter. Comparisons are non-associative. */
const INFIX_POWER: Record<string, number> = {
  or: 1,
  and: 2,
  "<": 4,
  "<=": 4,
  ">": 4,
  ">=": 4,
  "==": 4,
  "!=": 4,
  "+": 5,
  "-": 5,
  "*": 6,
  "/": 6
}
const NOT_POWER = 3
const NEGATE_POWER = 7
const isComparison = (op: string): boolean => INFIX_POWER[op] === 4

export interface Formula {
  readonly source: string
  readonly root: FormulaNode
  /** columns the formula reads, for provisioning and for early errors */
  readonly columns: ReadonlyArray<ColumnName>
  /** rows of history needed before the first meaningful value */
  readonly lookback: number
}

/** Bounds that keep the recursive parser and tree walks far from the stack's limit. */
const MAX_FORMULA_LENGTH = 4_000
const MAX_NESTING = 100

class Parser {
  private pos = 0
  private depth = 0
  constructor(private readonly tokens: Token[]) {}

  private peek(): Token {
    return this.tokens[this.pos]
  }
  private next(): Token {
    return this.tokens[this.pos++]
  }
  private fail(token: Token, expected?: string): never {
    const what = `unexpected ${describeToken(token)} at column ${token.column}`
    throw new FormulaParseError(expected === undefined ? what : `${what}; expected ${expected}`, token.column)
  }
  private expect(kind: TokenKind, expected: string): Token {
    const token = this.next()
    if (token.kind !== kind) this.fail(token, expected)
    return token
  }
  /** the infix operator at the cursor (keywords and/or included), or null */
  private infixOperator(): string | null {
    const t = this.peek()
    if (t.kind === "operator") return t.text
    if (t.kind === "identifier") {
      const word = t.text.toLowerCase()
      if (word === "and" || word === "or") return word
    }
    return null
  }

  parseFormula(): FormulaNode {
    const root = this.parseExpression(0)
    const rest = this.peek()
    if (rest.kind !== "end") this.fail(rest, "an operator or the end of the formula")
    return root
  }

  private parseExpression(minPower: number): FormulaNode {
    let left = this.parsePrefix()
    for (;;) {
      const op = this.infixOperator()
      if (op === null) return left
      const power = INFIX_POWER[op]
      if (power <= minPower) return left
      const token = this.next()
      // comparisons are non-associative: parse the right side one level tighter and refuse a chain
      const right = this.parseExpression(power)
      left = { kind: "binary", op: op as BinaryOp, left, right, column: token.column }
      if (isComparison(op)) {
        const again = this.infixOperator()
        if (again !== null && isComparison(again)) {
          const t = this.peek()
          throw new FormulaParseError(
            `comparisons cannot be chained at column ${t.column}; combine them with and`,
            t.column
          )
        }
      }
    }
  }

  private parsePrefix(): FormulaNode {
    if (++this.depth > MAX_NESTING) {
      const at = this.peek()?.column ?? 1
      throw new FormulaParseError(`the formula nests deeper than ${MAX_NESTING} levels at column ${at}; simplify it`, at)
    }
    try {
      return this.parsePrefixAt()
    } finally {
      this.depth--
    }
  }

  private parsePrefixAt(): FormulaNode {
    const token = this.next()
    switch (token.kind) {
      case "number":
        return { kind: "number", value: token.value, column: token.column }
      case "(": {
        const inner = this.parseExpression(0)
        this.expect(")", "')'")
        return inner
      }
      case "operator":
        if (token.text === "-") {
          return { kind: "negate", operand: this.parseExpression(NEGATE_POWER), column: token.column }
        }
        if (token.text === "+") return this.parseExpression(NEGATE_POWER)
        return this.fail(token, "a number, a column, a function or '('")
      case "identifier":
        return this.parseIdentifier(token)
      default:
        return this.fail(token, "a number, a column, a function or '('")
    }
  }

  private parseIdentifier(token: Token): FormulaNode {
    const word = token.text.toLowerCase()
    if (word === "not") return { kind: "not", operand: this.parseExpression(NOT_POWER), column: token.column }
    if (word === "and" || word === "or") this.fail(token, "a number, a column, a function or '('")
    if (this.peek().kind === "(") return this.parseCall(token, word)
    if ((COLUMNS as ReadonlyArray<string>).includes(word)) {
      return { kind: "column", name: word as ColumnName, column: token.column }
    }
    if (Object.hasOwn(FUNCTIONS, word)) {
      throw new FormulaParseError(`function ${word} needs arguments: ${word}(...) at column ${token.column}`, token.column)
    }
    throw new FormulaParseError(
      `unknown name '${token.text}' at column ${token.column}; columns are ${COLUMNS.join(", ")}; functions are ${Object.keys(FUNCTIONS).join(", ")}`,
      token.column
    )
  }

  private parseCall(nameToken: Token, fn: string): FormulaNode {
    if (!Object.hasOwn(FUNCTIONS, fn)) {
      throw new FormulaParseError(
        `unknown function '${nameToken.text}' at column ${nameToken.column}; functions are ${Object.keys(FUNCTIONS).join(", ")}`,
        nameToken.column
      )
    }
    const signature: FunctionSignature = FUNCTIONS[fn as FunctionName]
    const open = this.expect("(", "'('")
    const args: FormulaNode[] = []
    const argTokens: Token[] = []
    if (this.peek().kind !== ")") {
      for (;;) {
        argTokens.push(this.peek())
        args.push(this.parseExpression(0))
        if (this.peek().kind === ",") {
          this.next()
          continue
        }
        break
      }
    }
    const close = this.peek()
    if (close.kind !== ")") this.fail(close, "',' or ')'")
    this.next()
    const arity = signature.series.length + (signature.window ? 1 : 0)
    const usage = `${fn}(${[...signature.series.map((_, j) => (j === 0 ? "x" : "y")), ...(signature.window ? ["n"] : [])].join(", ")})`
    if (args.length !== arity) {
      throw new FormulaParseError(
        `${fn} takes ${arity} argument${arity === 1 ? "" : "s"} (${usage}), got ${args.length} at column ${open.column}`,
        open.column
      )
    }
    let window = 0
    if (signature.window) {
      const windowArg = args[arity - 1]
      const at = argTokens[arity - 1].column
      if (windowArg.kind !== "number" || !Number.isInteger(windowArg.value) || windowArg.value < 1) {
        throw new FormulaParseError(
          `${fn}: the window must be a positive whole number (${usage}) at column ${at}`,
          at
        )
      }
      if (windowArg.value > MAX_WINDOW) {
        throw new FormulaParseError(`${fn}: window ${windowArg.value} is above the maximum ${MAX_WINDOW} at column ${at}`, at)
      }
      window = windowArg.value
    }
    return {
      kind: "call",
      fn: fn as FunctionName,
      args: args.slice(0, signature.series.length),
      window,
      column: nameToken.column
    }
  }
}

const typeOf = (node: FormulaNode): ValueType => {
  switch (node.kind) {
    case "number":
    case "column":
      return "number"
    case "negate":
      requireType(node.operand, "number", "'-' applies to numbers")
      return "number"
    case "not":
      requireType(node.operand, "condition", "'not' applies to conditions")
      return "condition"
    case "binary":
      if (node.op === "and" || node.op === "or") {
        requireType(node.left, "condition", `'${node.op}' combines conditions`)
        requireType(node.right, "condition", `'${node.op}' combines conditions`)
        return "condition"
      }
      requireType(node.left, "number", `'${node.op}' applies to numbers`)
      requireType(node.right, "number", `'${node.op}' applies to numbers`)
      return isComparison(node.op) ? "condition" : "number"
    case "call": {
      const signature: FunctionSignature = FUNCTIONS[node.fn]
      node.args.forEach((arg, j) => {
        const wanted = signature.series[j]
        if (wanted === "any") typeOf(arg)
        else requireType(arg, wanted, `${node.fn} takes a number here`)
      })
      return signature.result === "same" ? typeOf(node.args[0]) : signature.result
    }
  }
}

const requireType = (node: FormulaNode, wanted: ValueType, why: string): void => {
  const actual = typeOf(node)
  if (actual !== wanted) {
    throw new FormulaParseError(
      `${why}, but the expression at column ${node.column} is a ${actual}`,
      node.column
    )
  }
}

const collect = (node: FormulaNode, columns: Set<ColumnName>): number => {
  switch (node.kind) {
    case "number":
      return 0
    case "column":
      columns.add(node.name)
      return 0
    case "negate":
    case "not":
      return collect(node.operand, columns)
    case "binary":
      return Math.max(collect(node.left, columns), collect(node.right, columns))
    case "call": {
      if (node.fn === "atr") {
        columns.add("high")
        columns.add("low")
        columns.add("close")
      }
      const inner = node.args.reduce((m, a) => Math.max(m, collect(a, columns)), 0)
      const own = node.fn === "crossover" || node.fn === "crossunder" ? 1 : node.fn === "abs" ? 0 : node.window
      return inner + own
    }
  }
}

/** Parses and type-checks a formula; throws FormulaParseError with the 1-based column. */
export const parseFormula = (source: string): Formula => {
  if (source.trim() === "") throw new FormulaParseError("empty formula at column 1", 1)
  if (source.length > MAX_FORMULA_LENGTH)
    throw new FormulaParseError(`the formula is ${source.length} characters long, above the maximum ${MAX_FORMULA_LENGTH} (column ${MAX_FORMULA_LENGTH + 1})`, MAX_FORMULA_LENGTH + 1)
  const root = new Parser(tokenize(source)).parseFormula()
  if (typeOf(root) !== "condition") {
    throw new FormulaParseError(
      `the formula must be a condition such as close > sma(close, 50), but it is a number (column 1)`,
      1
    )
  }
  const columns = new Set<ColumnName>()
  const lookback = collect(root, columns)
  return { source, root, columns: COLUMNS.filter((c) => columns.has(c)), lookback }
}

// -------------------------------------------------------------------------------- evaluation

/** Applies a one-input indicator from the first defined value on (nested indicators lead with NaN). */
const rolling = (input: Float64Array, update: (x: number) => number): Float64Array => {
  const out = new Float64Array(input.length).fill(Number.NaN)
  let start = 0
  while (start < input.length && Number.isNaN(input[start])) start++
  for (let i = start; i < input.length; i++) out[i] = update(input[i])
  return out
}

const columnOf = (series: PriceSeries, name: ColumnName): Float64Array => {
  switch (name) {
    case "close":
      return series.close
    case "open":
      return series.open ?? series.close
    case "high":
      return series.high ?? series.close
    case "low":
      return series.low ?? series.close
    case "volume":
      if (series.volume === undefined) throw new Error(`${series.symbol}: the formula uses volume but the series has no volume column`)
      return series.volume
  }
}

const evaluateNode = (node: FormulaNode, series: PriceSeries): Float64Array => {
  const n = series.close.length
  switch (node.kind) {
    case "number":
      return new Float64Array(n).fill(node.value)
    case "column":
      return columnOf(series, node.name)
    case "negate": {
      const x = evaluateNode(node.operand, series)
      const out = new Float64Array(n)
      for (let i = 0; i < n; i++) out[i] = -x[i]
      return out
    }
    case "not": {
      const x = evaluateNode(node.operand, series)
      const out = new Float64Array(n)
      for (let i = 0; i < n; i++) out[i] = x[i] === 0 ? 1 : 0
      return out
    }
    case "binary": {
      const a = evaluateNode(node.left, series)
      const b = evaluateNode(node.right, series)
      const out = new Float64Array(n)
      switch (node.op) {
        case "+":
          for (let i = 0; i < n; i++) out[i] = a[i] + b[i]
          break
        case "-":
          for (let i = 0; i < n; i++) out[i] = a[i] - b[i]
          break
        case "*":
          for (let i = 0; i < n; i++) out[i] = a[i] * b[i]
          break
        case "/":
          // division by zero is undefined, not infinite
          for (let i = 0; i < n; i++) out[i] = b[i] === 0 ? Number.NaN : a[i] / b[i]
          break
        case "<":
          for (let i = 0; i < n; i++) out[i] = a[i] < b[i] ? 1 : 0
          break
        case "<=":
          for (let i = 0; i < n; i++) out[i] = a[i] <= b[i] ? 1 : 0
          break
        case ">":
          for (let i = 0; i < n; i++) out[i] = a[i] > b[i] ? 1 : 0
          break
        case ">=":
          for (let i = 0; i < n; i++) out[i] = a[i] >= b[i] ? 1 : 0
          break
        case "==":
          for (let i = 0; i < n; i++) out[i] = a[i] === b[i] ? 1 : 0
          break
        case "!=":
          // NaN is unknown: neither equal nor different
          for (let i = 0; i < n; i++) out[i] = a[i] === a[i] && b[i] === b[i] && a[i] !== b[i] ? 1 : 0
          break
        case "and":
          for (let i = 0; i < n; i++) out[i] = a[i] === 1 && b[i] === 1 ? 1 : 0
          break
        case "or":
          for (let i = 0; i < n; i++) out[i] = a[i] === 1 || b[i] === 1 ? 1 : 0
          break
      }
      return out
    }
    case "call":
      return evaluateCall(node, series)
  }
}

const evaluateCall = (node: Extract<FormulaNode, { kind: "call" }>, series: PriceSeries): Float64Array => {
  const n = series.close.length
  const w = node.window
  switch (node.fn) {
    case "sma": {
      const ind = new Sma(w)
      return rolling(evaluateNode(node.args[0], series), (x) => ind.update(x))
    }
    case "ema": {
      const ind = new Ema(w)
      return rolling(evaluateNode(node.args[0], series), (x) => ind.update(x))
    }
    case "rsi": {
      const ind = new Rsi(w)
      return rolling(evaluateNode(node.args[0], series), (x) => ind.update(x))
    }
    case "highest": {
      const ind = new RollingExtreme(w, "max")
      return rolling(evaluateNode(node.args[0], series), (x) => ind.update(x))
    }
    case "lowest": {
      const ind = new RollingExtreme(w, "min")
      return rolling(evaluateNode(node.args[0], series), (x) => ind.update(x))
    }
    case "atr": {
      const ind = new Atr(w)
      const high = columnOf(series, "high")
      const low = columnOf(series, "low")
      const out = new Float64Array(n)
      for (let i = 0; i < n; i++) out[i] = ind.update(high[i], low[i], series.close[i])
      return out
    }
    case "abs": {
      const x = evaluateNode(node.args[0], series)
      const out = new Float64Array(n)
      for (let i = 0; i < n; i++) out[i] = Math.abs(x[i])
      return out
    }
    case "prev": {
      const x = evaluateNode(node.args[0], series)
      const out = new Float64Array(n).fill(Number.NaN)
      for (let i = w; i < n; i++) out[i] = x[i - w]
      return out
    }
    case "crossover":
    case "crossunder": {
      const a = evaluateNode(node.args[0], series)
      const b = evaluateNode(node.args[1], series)
      const out = new Float64Array(n)
      const above = node.fn === "crossover"
      for (let i = 1; i < n; i++) {
        out[i] = above
          ? a[i] > b[i] && a[i - 1] <= b[i - 1]
            ? 1
            : 0
          : a[i] < b[i] && a[i - 1] >= b[i - 1]
            ? 1
            : 0
      }
      return out
    }
  }
}

/** The formula's value on every row (conditions: 1 or 0). */
export const evaluateFormula = (formula: Formula | string, series: PriceSeries): Float64Array => {
  const parsed = typeof formula === "string" ? parseFormula(formula) : formula
  const out = evaluateNode(parsed.root, series)
  // a bare column would alias the series' own array: never hand that out
  return out === series.close || out === series.open || out === series.high || out === series.low || out === series.volume
    ? Float64Array.from(out)
    : out
}

export interface ScanMatch {
  readonly ts: number
  readonly close: number
}

/** Rows (from series.startIndex on) where the condition holds. */
export const scanSeries = (formula: Formula | string, series: PriceSeries): ScanMatch[] => {
  const values = evaluateFormula(formula, series)
  const matches: ScanMatch[] = []
  for (let i = Math.max(0, series.startIndex); i < values.length; i++) {
    if (values[i] === 1) matches.push({ ts: series.ts[i], close: series.close[i] })
  }
  return matches
}

// ------------------------------------------------------------------------ matches with values

/** A node written back as formula text (normalised spacing), to label the values a match used. */
export const formulaText = (node: FormulaNode): string => {
  switch (node.kind) {
    case "number":
      return String(node.value)
    case "column":
      return node.name
    case "negate":
      return `-${wrap(node.operand)}`
    case "not":
      return `not ${wrap(node.operand)}`
    case "binary":
      return `${wrap(node.left)} ${node.op} ${wrap(node.right)}`
    case "call":
      return `${node.fn}(${[...node.args.map(formulaText), ...(FUNCTIONS[node.fn].window ? [String(node.window)] : [])].join(", ")})`
  }
}
const wrap = (node: FormulaNode): string => (node.kind === "binary" ? `(${formulaText(node)})` : formulaText(node))

/**
 * The numbers the formula compares: both sides of every comparison and the arguments of
 * crossover/crossunder (literals left out), distinct by text, `close` first. These are "the
 * values the formula used" that a match reports.
 */
export const formulaTerms = (formula: Formula): ReadonlyArray<{ readonly label: string; readonly node: FormulaNode }> => {
  const out = new Map<string, FormulaNode>([["close", { kind: "column", name: "close", column: 0 }]])
  const operand = (n: FormulaNode) => {
    if (n.kind !== "number") out.set(formulaText(n), n)
  }
  const walk = (n: FormulaNode): void => {
    if (n.kind === "not") walk(n.operand)
    else if (n.kind === "binary") {
      if (n.op === "and" || n.op === "or") {
        walk(n.left)
        walk(n.right)
      } else if (isComparison(n.op)) {
        operand(n.left)
        operand(n.right)
      }
    } else if (n.kind === "call" && (n.fn === "crossover" || n.fn === "crossunder")) n.args.forEach(operand)
    else if (n.kind === "call" && n.fn === "prev") walk(n.args[0])
  }
  walk(formula.root)
  return [...out].map(([label, node]) => ({ label, node }))
}

export interface ScanValueMatch {
  readonly ts: number
  /** each term of formulaTerms by its text; null where it is not defined (NaN) */
  readonly values: Record<string, number | null>
}

export interface ScanValues {
  /** the first `maxMatches` matching rows, in time order */
  readonly matches: ScanValueMatch[]
  /** every matching row, also those beyond maxMatches */
  readonly matchCount: number
  readonly truncated: boolean
}

/**
 * Rows from series.startIndex on where the condition holds, each with the values the formula
 * compared on that row. At most `maxMatches` are returned (matchCount counts them all), so a
 * result stays small whatever the formula.
 */
export const scanWithValues = (formula: Formula, series: PriceSeries, maxMatches: number): ScanValues => {
  const condition = evaluateNode(formula.root, series)
  const rows: number[] = []
  let matchCount = 0
  for (let i = Math.max(0, series.startIndex); i < condition.length; i++) {
    if (condition[i] !== 1) continue
    if (matchCount < maxMatches) rows.push(i)
    matchCount++
  }
  const terms = rows.length === 0 ? [] : formulaTerms(formula).map((t) => ({ label: t.label, values: evaluateNode(t.node, series) }))
  const matches = rows.map((i) => {
    const values: Record<string, number | null> = {}
    for (const t of terms) values[t.label] = Number.isFinite(t.values[i]) ? t.values[i] : null
    return { ts: series.ts[i], values }
  })
  return { matches, matchCount, truncated: matchCount > maxMatches }
}

// ------------------------------------------------------------------------------------ batches

export interface ScanJob {
  readonly formula: string
  readonly symbols: ReadonlyArray<string>
  readonly load: (symbol: string) => PriceSeries | Promise<PriceSeries>
}

export interface SymbolScanResult {
  readonly symbol: string
  readonly matches: ScanMatch[]
  readonly error: string | null
  readonly processing_time_ms: number
}

export interface ScanSummary {
  readonly total: number
  readonly succeeded: number
  readonly failed: number
  readonly matches: number
}

export interface ScanBatchResult {
  readonly results: SymbolScanResult[]
  readonly summary: ScanSummary
}

/**
 * Runs a formula over each symbol in turn. The formula is parsed once (a parse error rejects the
 * whole job with FormulaParseError); a failure loading or evaluating one symbol is recorded on
 * that symbol and the batch goes on. `onProgress(completed, total)` after every symbol.
 */
export const processBatch = async (
  job: ScanJob,
  onProgress?: (completed: number, total: number) => void
): Promise<ScanBatchResult> => {
  const formula = parseFormula(job.formula)
  const results: SymbolScanResult[] = []
  let succeeded = 0
  let matchCount = 0
  for (const symbol of job.symbols) {
    const started = performance.now()
    let matches: ScanMatch[] = []
    let error: string | null = null
    try {
      const series = await job.load(symbol)
      matches = scanSeries(formula, series)
      succeeded++
      matchCount += matches.length
    } catch (cause) {
      error = cause instanceof Error ? cause.message : String(cause)
    }
    const processing_time_ms = Math.round((performance.now() - started) * 1000) / 1000
    results.push({ symbol, matches, error, processing_time_ms })
    onProgress?.(results.length, job.symbols.length)
  }
  return {
    results,
    summary: { total: job.symbols.length, succeeded, failed: job.symbols.length - succeeded, matches: matchCount }
  }
}
