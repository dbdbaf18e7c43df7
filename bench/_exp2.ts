import { getStrategy, mulberry32, runBacktest, validateParams, computeMetrics } from "../src/engine/index.js"
const n = 5000
const random = mulberry32(7)
const ts = new Float64Array(n), close = new Float64Array(n), open = new Float64Array(n), high = new Float64Array(n), low = new Float64Array(n), volume = new Float64Array(n)
let p = 100
for (let i = 0; i < n; i++) { ts[i] = Date.UTC(2000, 0, 3) + i * 864e5; open[i] = p; p *= Math.exp((random() - 0.5) * 0.04); close[i] = p; high[i] = Math.max(open[i], p) * 1.005; low[i] = Math.min(open[i], p) * 0.995; volume[i] = 1e6 }
const series = { symbol: "D", freq: "1d" as const, ts, close, open, high, low, volume, startIndex: 300 }
const trend = getStrategy("trend_baseline")!
const scns = Array.from({ length: 2000 }, (_, j) => ({ strategy: trend, params: validateParams(trend, { fast: 2 + (j % 100), slow: 3 + (j % 100) + Math.floor(j / 100) * 2 }, { strict: true }).params, startCapital: 1e6, costs: { commission_bps: 1, spread_w: 1, impact_w: 0, slippage_bps: 0.5 }, seed: j, startMs: ts[300], endMs: ts[n - 1] + 1 }))
let fills = 0
for (let r = 0; r < 4; r++) {
  const s = performance.now(); fills = 0
  for (const scn of scns) fills += runBacktest(scn, [series]).fills
  console.log("sweep µs/scn", ((performance.now() - s) * 1000 / scns.length).toFixed(1), "fills/scn", fills / scns.length)
}
const keys = new Float64Array(4700).map((_, i) => i), closes = new Float64Array(4700).map((_, i) => 1e6 + Math.sin(i) * 1e4)
for (let r = 0; r < 3; r++) {
  const s = performance.now()
  for (let j = 0; j < 2000; j++) computeMetrics({ startCapital: 1e6, finalEquity: 1.1e6, firstTs: 0, lastTs: 1e11, periods: { keys, closes, length: 4700 }, baseline: null, maxDrawdown: 0.1, steps: 4700, exposedSteps: 100, trades: { closed: 10, wins: 3, grossProfit: 10, grossLoss: 5 } })
  console.log("metrics µs", ((performance.now() - s) * 1000 / 2000).toFixed(1))
}
