/**
 * `tickflow data ...`: import, generate, coverage, sample. Registered on the main program by
 * src/cli/main.ts through registerDataCommands(program).
 */
import type { Command } from "commander"
import { Effect } from "effect"
import cliProgress from "cli-progress"
import Table from "cli-table3"
import { FREQS, type Freq } from "../schemas/common.js"
import {
  buildCoverage,
  defaultDataRoot,
  ensureSampleCatalog,
  generateCatalog,
  importFile,
  ROW_PROBLEM_TEXT,
  type CsvColumns,
  type DataError
} from "../data/index.js"

const CSV_FIELDS = ["ts", "date", "time", "open", "high", "low", "close", "price", "volume", "size", "bid", "ask", "symbol"]

/** "ts=Date,close=Close" → { ts: "Date", close: "Close" }; names the bad part when it cannot. */
export const parseColumnsOption = (text: string): CsvColumns => {
  const out: Record<string, string> = {}
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf("=")
    const field = part.slice(0, eq).trim()
    if (eq <= 0 || !CSV_FIELDS.includes(field) || part.slice(eq + 1).trim() === "") {
      throw new Error(`--columns: "${part}" is not field=Header; fields are ${CSV_FIELDS.join(", ")} (e.g. --columns ts=Date,close=Close)`)
    }
    out[field] = part.slice(eq + 1).trim()
  }
  return out as CsvColumns
}

const parseFreq = (text: string): Freq => {
  if (!(FREQS as ReadonlyArray<string>).includes(text)) throw new Error(`--freq "${text}" is not one of ${FREQS.join(", ")}`)
  return text as Freq
}

const parseList = (text: string): string[] => text.split(",").map((s) => s.trim()).filter(Boolean)

/** Runs an Effect for a command: result printed by `show`, errors as their message and exit code 1. */
const run = async <A>(effect: Effect.Effect<A, DataError>, show: (a: A) => void): Promise<void> => {
  const exit = await Effect.runPromiseExit(effect)
  if (exit._tag === "Success") {
    show(exit.value)
    return
  }
  const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
  console.error(`error: ${failure ? failure.message : String(exit.cause)}`)
  process.exitCode = 1
}

const fail = (e: unknown) => {
  console.error(`error: ${e instanceof Error ? e.message : String(e)}`)
  process.exitCode = 1
}

export function registerDataCommands(program: Command): void {
  const data = program.command("data").description("the Parquet data catalog: import, check, generate, coverage, sample")

  data
    .command("import <files...>")
    .description("import CSV or Parquet files (told apart by content) into the catalog: checked, atomic, idempotent")
    .option("--symbol <symbol>", "symbol of a file without a symbol column; with a symbol column, the one symbol to keep")
    .option("--freq <freq>", `frequency of the rows (${FREQS.join(", ")}); inferred from the timestamps when absent, checked against them when given`)
    .option("--root <dir>", "catalog root", defaultDataRoot())
    .option("--tz <zone>", "IANA time zone of times without an offset or zone, e.g. America/New_York", "UTC")
    .option("--columns <map>", "field=Column pairs, e.g. ts=Date,close=Close (CSV also date=,time=)")
    .option("--date-format <format>", 'CSV: e.g. "MM/DD/YYYY HH:mm:ss.SSS" or epoch_ms')
    .option("--delimiter <char>", "CSV field delimiter", ",")
    .option("--json", "print the import reports as JSON")
    .action(async (files: string[], o: { symbol?: string; freq?: string; root: string; tz: string; columns?: string; dateFormat?: string; delimiter: string; json?: boolean }) => {
      let freq: Freq | undefined
      let columns: CsvColumns | undefined
      try {
        freq = o.freq === undefined ? undefined : parseFreq(o.freq)
        columns = o.columns ? parseColumnsOption(o.columns) : undefined
      } catch (e) {
        return fail(e)
      }
      const reports: unknown[] = []
      // one bad file does not stop the others; the exit code says whether all went in
      for (const file of files) {
        const bar = process.stderr.isTTY && !o.json
          ? new cliProgress.SingleBar({ format: `${file} [{bar}] {percentage}%`, stream: process.stderr }, cliProgress.Presets.shades_classic)
          : undefined
        let started = false
        const onProgress = (done: number, total: number) => {
          if (!bar) return
          if (!started) {
            bar.start(total, 0)
            started = true
          }
          bar.update(done)
        }
        const exit = await Effect.runPromiseExit(
          importFile(
            { file, root: o.root, symbol: o.symbol, freq, columns, timezone: o.tz, dateFormat: o.dateFormat, delimiter: o.delimiter },
            onProgress
          ).pipe(Effect.ensuring(Effect.sync(() => started && bar?.stop())))
        )
        if (exit._tag === "Failure") {
          const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
          const message = failure ? failure.message : String(exit.cause)
          if (o.json) reports.push({ file, error: message })
          else console.error(`error: ${message}`)
          process.exitCode = 1
          continue
        }
        const r = exit.value
        if (o.json) {
          reports.push(r)
          continue
        }
        // one summary line per symbol, then one line per kind of row problem with its first case
        for (const s of r.symbols) {
          console.log(
            `imported ${s.rows} rows of ${s.symbol} ${s.freq} (${s.first} → ${s.last}) from ${file} (${r.format}) into ${s.files} files under ${o.root} (${s.written} changed)`
          )
        }
        for (const s of r.symbols) {
          for (const [kind, p] of Object.entries(s.problems)) {
            console.log(`  ${s.symbol}: ${p!.count} × ${ROW_PROBLEM_TEXT[kind as keyof typeof ROW_PROBLEM_TEXT]}; first ${p!.firstRow >= 0 ? `at ${r.format === "csv" ? "line" : "row"} ${p!.firstRow}: ` : ""}${p!.example}`)
          }
        }
      }
      if (o.json) console.log(JSON.stringify(reports, null, 2))
    })

  data
    .command("generate")
    .description("write a deterministic synthetic catalog (same seed → same bytes)")
    .option("--root <dir>", "catalog root", defaultDataRoot())
    .option("--symbols <list>", "comma-separated symbols", "SYN1,SYN2,SYN3")
    .option("--freqs <list>", `comma-separated frequencies (${FREQS.join(", ")})`, "1d")
    .requiredOption("--start <date>", "first day, YYYY-MM-DD")
    .requiredOption("--end <date>", "last day, YYYY-MM-DD")
    .option("--seed <n>", "random seed", "1")
    .option("--ticks-per-minute <n>", "mean ticks per session minute", "10")
    .action(async (o: { root: string; symbols: string; freqs: string; start: string; end: string; seed: string; ticksPerMinute: string }) => {
      try {
        const freqs = parseList(o.freqs).map(parseFreq)
        const seed = Number(o.seed)
        if (!Number.isInteger(seed)) throw new Error(`--seed "${o.seed}" is not a whole number`)
        await run(
          generateCatalog({
            root: o.root,
            symbols: parseList(o.symbols).map((s) => s.toUpperCase()),
            freqs,
            start: o.start,
            end: o.end,
            seed,
            ticksPerMinute: Number(o.ticksPerMinute)
          }),
          (s) => console.log(`generated ${s.rows} rows for ${s.symbols.join(", ")} in ${s.files} files under ${o.root}`)
        )
      } catch (e) {
        fail(e)
      }
    })

  data
    .command("coverage")
    .description("what the catalog holds: first/last, rows, days, gaps per symbol and frequency")
    .option("--root <dir>", "catalog root", defaultDataRoot())
    .option("--json", "print the report as JSON")
    .option("--gap-days <n>", "report stretches without rows longer than this many days", "4")
    .action(async (o: { root: string; json?: boolean; gapDays: string }) => {
      await run(buildCoverage(o.root, { gapDays: Number(o.gapDays) }), (report) => {
        if (o.json) {
          console.log(JSON.stringify(report, null, 2))
          return
        }
        if (report.entries.length === 0) {
          console.log(`the catalog at ${o.root} is empty; try \`tickflow data sample --root ${o.root}\``)
          return
        }
        const table = new Table({
          head: ["symbol", "freq", "first", "last", "rows", "days", "gaps", "files", "source"],
          // no colour codes when the output goes to a file or a pipe
          ...(process.stdout.isTTY ? {} : { style: { head: [], border: [] } })
        })
        for (const e of report.entries) {
          const longest = e.gaps.reduce((m, g) => Math.max(m, g.days), 0)
          table.push([
            e.symbol,
            e.freq,
            e.first.slice(0, 19).replace("T", " "),
            e.last.slice(0, 19).replace("T", " "),
            e.derivedFromTicks ? `≤${e.rows}` : String(e.rows),
            String(e.days),
            e.gaps.length === 0 ? "-" : `${e.gaps.length} (longest ${longest.toFixed(1)} d)`,
            String(e.files),
            e.derivedFromTicks ? "from ticks" : "disk"
          ])
        }
        console.log(table.toString())
        if (report.problems.length > 0) {
          console.log(`${report.problems.length} file(s) cannot be used and count for nothing above; see \`tickflow data check --root ${o.root}\``)
        }
        console.log(`data version ${report.dataVersion.slice(0, 16)}`)
      })
    })

  data
    .command("check")
    .description("list every catalog file that cannot be used and why (unreadable, not prices, rows outside its name's dates); exit 1 when any")
    .option("--root <dir>", "catalog root", defaultDataRoot())
    .option("--json", "print the problems as JSON")
    .action(async (o: { root: string; json?: boolean }) => {
      await run(buildCoverage(o.root), (report) => {
        if (o.json) console.log(JSON.stringify(report.problems.map(({ file, symbol, freq, reason }) => ({ file, symbol, freq, reason })), null, 2))
        else if (report.problems.length === 0) {
          const files = report.entries.filter((e) => !e.derivedFromTicks).reduce((n, e) => n + e.files, 0)
          console.log(`all ${files} files under ${o.root} are usable`)
        } else {
          for (const p of report.problems) console.log(`${p.file} (${p.symbol} ${p.freq}): ${p.reason}`)
          console.log(`${report.problems.length} unusable file(s): scenarios that need them are skipped, naming the file; the rest of the catalog serves`)
        }
        if (report.problems.length > 0) process.exitCode = 1
      })
    })

  data
    .command("sample")
    .description("build the sample catalog: real SPX daily (vega-datasets) + synthetic SYN1..SYN4 + SYN1 ticks")
    .option("--root <dir>", "catalog root", defaultDataRoot())
    .action(async (o: { root: string }) => {
      await run(ensureSampleCatalog(o.root), (r) => console.log(`sample catalog ready under ${o.root}: ${r.symbols.join(", ")}`))
    })
}
