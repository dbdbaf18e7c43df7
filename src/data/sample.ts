/**
 * The sample catalog the example batch runs on from a fresh clone:
 * - SPX: real daily S&P 500 bars 2000-01-03 → 2020-04-17, imported from vega-datasets'
 *   sp500-2000.csv (read from node_modules, never copied into the repo);
 * - SYN1..SYN4: deterministic synthetic daily bars over the same years;
 * - SYN1 ticks for one week (2020-03-02 → 2020-03-06); its 1min/5min/1h/1d bars are derivable.
 *
 * vega-datasets' stocks.csv (monthly MSFT/AMZN/IBM/GOOG/AAPL) is not imported: tickflow has no
 * monthly frequency, and storing monthly prices as 1d bars would make every daily indicator and
 * the "gap > 5 trading days" check wrong for them.
 *
 * Idempotent: a marker file records what was built; a second call only checks it.
 */
import { createRequire } from "node:module"
import { promises as fs } from "node:fs"
import { dirname, join } from "node:path"
import { CatalogError } from "./errors.js"
import { importFileAsync } from "./import.js"
import { generateCatalogAsync } from "./generate.js"
import { listCatalogFiles } from "./layout.js"

export const SAMPLE_VERSION = 1
const MARKER = ".sample-catalog.json"
export const SAMPLE_SYNTHETIC = ["SYN1", "SYN2", "SYN3", "SYN4"] as const
export const SAMPLE_SYMBOLS = ["SPX", ...SAMPLE_SYNTHETIC] as const
export const SAMPLE_SEED = 42

/** Path of a file in the installed vega-datasets package. */
export const vegaDataFile = (name: string): string => {
  const require = createRequire(import.meta.url)
  // the package exports only its JS entry (build/index.js); the data folder sits beside build/
  return join(dirname(require.resolve("vega-datasets")), "..", "data", name)
}

export const ensureSampleCatalogAsync = async (root: string): Promise<{ symbols: string[] }> => {
  const markerPath = join(root, MARKER)
  try {
    const marker = JSON.parse(await fs.readFile(markerPath, "utf8")) as { version: number; symbols: string[] }
    if (marker.version === SAMPLE_VERSION) {
      const present = await listCatalogFiles(root, { symbols: marker.symbols })
      const symbolsPresent = new Set(present.map((f) => f.symbol))
      if (marker.symbols.every((s) => symbolsPresent.has(s))) return { symbols: marker.symbols }
    }
  } catch {
    // no marker yet: build
  }
  let spx: string
  try {
    spx = vegaDataFile("sp500-2000.csv")
    await fs.access(spx)
  } catch {
    throw new CatalogError({ path: "node_modules/vega-datasets/data/sp500-2000.csv", reason: "not found; run `npm install` (vega-datasets is a dependency)" })
  }
  await importFileAsync({ file: spx, root, symbol: "SPX", freq: "1d", columns: { ts: "date", close: "close" } })
  await generateCatalogAsync({ root, symbols: [...SAMPLE_SYNTHETIC], freqs: ["1d"], start: "2000-01-03", end: "2020-12-31", seed: SAMPLE_SEED })
  await generateCatalogAsync({ root, symbols: ["SYN1"], freqs: ["tick"], start: "2020-03-02", end: "2020-03-06", seed: SAMPLE_SEED, ticksPerMinute: 5 })
  const symbols = [...SAMPLE_SYMBOLS]
  try {
    await fs.writeFile(markerPath, JSON.stringify({ version: SAMPLE_VERSION, symbols }, null, 2))
  } catch (e) {
    throw new CatalogError({ path: markerPath, reason: `cannot write (${(e as Error).message})` })
  }
  return { symbols }
}
