import { getStrategy, mulberry32, runBacktest, validateParams } from "../src/engine/index.js"
const n = 10_000_000
const random = mulberry32(42)
const ts = new Float64Array(n), close = new Float64Array(n)
let t = Date.UTC(2024, 0, 2), lp = Math.log(100)
for (let i = 0; i < n; i++) { t += random() * 100; lp += (random() - 0.5) * 2e-4; ts[i] = t; close[i] = Math.exp(lp) }
const trend = getStrategy("trend_baseline")!
const scn = { strategy: trend, params: validateParams(trend, { fast: 20, slow: 100 }, { strict: true }).params, startCapital: 1e6, costs: { commission_bps: 1, spread_w: 1, impact_w: 0, slippage_bps: 0.5 }, seed: 1, startMs: ts[0], endMs: ts[n - 1] + 1, progressEvery: 1_000_000 }
const times: number[] = []
for (let r = 0; r < 7; r++) { const s = performance.now(); const res = runBacktest(scn, [{ symbol: "X", freq: "tick", ts, close, startIndex: 0 }]); times.push(performance.now() - s); if (r === 0) console.log(res.fills, res.metrics.final_equity) }
console.log(times.map((x) => x.toFixed(0)).join(" "), "ns/tick", (times.sort((a, b) => a - b)[3] * 1e6 / n).toFixed(2))
