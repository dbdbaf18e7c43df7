/**
 * `tickflow data import FILE…`: CSV or Parquet, told apart by content (a Parquet file starts
 * with the magic bytes PAR1), never by the file name. Both sources feed the same sink, which
 * checks the rows, infers the frequency and writes the catalog atomically (see import-sink.ts).
 */
import { promises as fs } from "node:fs"
import { DataRequestError, ImportCheckError } from "./errors.js"
import { readCsvInto, type CsvColumns, type ImportCsvOptions, type ImportProgress } from "./csv.js"
import { readParquetInto } from "./import-parquet.js"
import { ImportSink, type SymbolImportSummary } from "./import-sink.js"
import type { ColumnMapping } from "./parquet-schema.js"

export type ImportFormat = "csv" | "parquet"

/**
 * What an import takes: the CSV options (`dateFormat` and `delimiter`, and `date`/`time` split
 * columns, apply to CSV only), where `freq` is also compared with the timestamps when given and
 * `timezone` also applies to Parquet TIMESTAMP columns without UTC; plus the row-group size of
 * the catalog files written.
 */
export interface ImportFileOptions extends ImportCsvOptions {
  /** rows per row group of the catalog files written */
  readonly rowGroupSize?: number
}

export interface ImportReport {
  readonly file: string
  readonly format: ImportFormat
  /** rows read from the file (including rows dropped by checks or of other symbols) */
  readonly rowsRead: number
  readonly symbols: ReadonlyArray<SymbolImportSummary>
}

export const PARQUET_MAGIC = "PAR1"

/** Parquet when the file starts with PAR1, CSV otherwise; an empty file is refused. */
export const detectFormat = async (file: string): Promise<ImportFormat> => {
  let handle: fs.FileHandle
  try {
    handle = await fs.open(file, "r")
  } catch (e) {
    throw new DataRequestError({ field: "file", value: file, reason: `cannot be opened (${(e as Error).message}); check the path` })
  }
  try {
    const head = new Uint8Array(4)
    const { bytesRead } = await handle.read(head, 0, 4, 0)
    if (bytesRead === 0) throw new DataRequestError({ field: "file", value: file, reason: "is empty (0 bytes); nothing to import" })
    return bytesRead === 4 && new TextDecoder().decode(head) === PARQUET_MAGIC ? "parquet" : "csv"
  } finally {
    await handle.close()
  }
}

const parquetMapping = (file: string, columns: CsvColumns | undefined): ColumnMapping => {
  if (!columns) return {}
  if (columns.date !== undefined || columns.time !== undefined) {
    throw new DataRequestError({
      field: "--columns",
      value: columns.date !== undefined ? `date=${columns.date}` : `time=${columns.time}`,
      reason: `split date and time columns are for CSV; ${file} is Parquet: name its one time column with ts=<column>`
    })
  }
  const { date: _d, time: _t, ...rest } = columns
  return rest
}

/** Imports one file (async core of importFile); nothing is written unless the whole file passes. */
export const importFileAsync = async (opts: ImportFileOptions, onProgress?: ImportProgress): Promise<ImportReport> => {
  const format = await detectFormat(opts.file)
  const symbol = opts.symbol?.toUpperCase()
  const makeSink = (columns: ConstructorParameters<typeof ImportSink>[1]) =>
    new ImportSink({ file: opts.file, root: opts.root, freq: opts.freq, symbol, rowGroupSize: opts.rowGroupSize }, columns)
  const { sink, rows } =
    format === "parquet"
      ? await readParquetInto(
          {
            file: opts.file,
            mapping: parquetMapping(opts.file, opts.columns),
            timezone: opts.timezone ?? "UTC",
            dailyBars: opts.freq === "1d",
            symbol,
            onProgress
          },
          makeSink
        )
      : await readCsvInto({ ...opts, symbol }, makeSink, onProgress)
  let symbols: SymbolImportSummary[]
  try {
    symbols = await sink.commit()
  } catch (e) {
    await sink.abort()
    throw e
  }
  if (symbols.every((s) => s.rows === 0)) {
    const reason =
      symbol !== undefined && symbols.length === 0 && sink.otherSymbols.size > 0
        ? `no row of ${symbol} among ${rows} rows; the file's symbol column holds ${[...sink.otherSymbols].join(", ")}: pick one with --symbol, or leave --symbol out to import them all`
        : symbol !== undefined && rows > 0
        ? `no usable row of ${symbol} among ${rows} rows; the problems: ${JSON.stringify(symbols[0]?.problems ?? {})}`
        : `no usable row among ${rows} rows${symbols[0] ? `: ${JSON.stringify(symbols[0].problems)}` : ""}`
    throw new ImportCheckError({ file: opts.file, symbol: symbol ?? "-", reason })
  }
  return { file: opts.file, format, rowsRead: rows, symbols }
}

