/**
 * Typed errors of the data plane. Every message names the file or field, the offending value
 * and what to do about it, because these messages end up in front of a researcher at a prompt.
 */
import { Data } from "effect"

/** The catalog root or a file in it could not be listed, created or written. */
export class CatalogError extends Data.TaggedError("CatalogError")<{
  readonly path: string
  readonly reason: string
}> {
  override get message(): string {
    return `data catalog ${this.path}: ${this.reason}`
  }
}

/** A Parquet file could not be read: truncated, corrupted, or an encoding we cannot decode. */
export class ParquetReadError extends Data.TaggedError("ParquetReadError")<{
  readonly file: string
  readonly reason: string
}> {
  override get message(): string {
    return (
      `cannot read Parquet file ${this.file}: ${this.reason}. ` +
      `Check that the file is complete (not truncated by an interrupted copy) and re-create or re-import it.`
    )
  }
}

/** A readable Parquet file that does not hold prices: no timestamp or no price column. */
export class NotTickDataError extends Data.TaggedError("NotTickDataError")<{
  readonly file: string
  readonly missing: ReadonlyArray<string>
  readonly found: ReadonlyArray<string>
}> {
  override get message(): string {
    const found = this.found.length > 20 ? [...this.found.slice(0, 20), "..."] : this.found
    return (
      `${this.file}: not tick/bar data: no column ${this.missing.join("/")}, found: ${found.join(", ")}. ` +
      `tickflow needs a time column (ts) and a price column (price for ticks, close for bars). ` +
      `If they are there under other names, import the file with their names mapped: ` +
      `\`tickflow data import ${this.file} --columns ts=<time column>,close=<price column>\` ` +
      `(files placed in the catalog by hand must use tickflow's names); if it is not price data, move it out of the catalog.`
    )
  }
}

/** A CSV row that cannot become a tick or bar. Line numbers are 1-based and count the header. */
export class CsvImportError extends Data.TaggedError("CsvImportError")<{
  readonly file: string
  readonly line: number
  readonly column: string
  readonly value: string
  readonly reason: string
}> {
  override get message(): string {
    return (
      `${this.file} line ${this.line}, column ${this.column}: ${JSON.stringify(this.value)} ${this.reason}. ` +
      `Fix the value in the file, or map another column with --columns (for example --columns ts=Date,close=Close).`
    )
  }
}

/** An import refused after reading: the rows do not fit what was asked (frequency, symbol). Nothing was written. */
export class ImportCheckError extends Data.TaggedError("ImportCheckError")<{
  readonly file: string
  readonly symbol: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.file} (${this.symbol}): ${this.reason}. Nothing was written.`
  }
}

/** A request that cannot be served: unknown symbol or frequency, bad date range, bad option. */
export class DataRequestError extends Data.TaggedError("DataRequestError")<{
  readonly field: string
  readonly value: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.field} ${JSON.stringify(this.value)}: ${this.reason}`
  }
}

export type DataError = CatalogError | ParquetReadError | NotTickDataError | CsvImportError | DataRequestError | ImportCheckError

export const isDataError = (e: unknown): e is DataError =>
  e instanceof CatalogError ||
  e instanceof ParquetReadError ||
  e instanceof NotTickDataError ||
  e instanceof CsvImportError ||
  e instanceof DataRequestError ||
  e instanceof ImportCheckError
