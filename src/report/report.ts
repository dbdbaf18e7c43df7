/**
 * report.html of a batch: one self-contained page (no network) with a sortable leaderboard,
 * the equity curves and drawdowns of the top runs, a parameter heat map for each
 * two-dimensional sweep, and LEAN-style summary statistics per run.
 *
 * Charts: uPlot (MIT, ~50 KB minified, no dependencies, fast on long series), inlined into the
 * page. Chosen over echarts (~1 MB) because a batch report should open instantly from disk
 * and the page needs only line charts; the heat map is a coloured HTML table, which needs no
 * chart library and stays readable and testable (one cell per grid point).
 */
import { readFile } from "node:fs/promises"
import { createRequire } from "node:module"
import { join } from "node:path"
import type { MetricsRecord } from "../schemas/results.js"
import type { BatchSummary, RunOnDisk } from "../cli/outputs.js"

const require = createRequire(import.meta.url)

/** uPlot's script and stylesheet, read from the installed package. */
const uplotAssets = async () => {
  const dist = join(require.resolve("uplot/package.json"), "..", "dist")
  const [js, css] = await Promise.all([readFile(join(dist, "uPlot.iife.min.js"), "utf8"), readFile(join(dist, "uPlot.min.css"), "utf8")])
  return { js, css }
}

export interface EquityCurve {
  readonly run_id: string
  readonly ts: ReadonlyArray<number>
  readonly nav: ReadonlyArray<number>
}

/** LEAN-style statistics of one run, from its metrics, equity and fills. */
export interface RunStats {
  readonly run_id: string
  readonly stats: ReadonlyArray<[string, string]>
}

export interface ReportInput {
  readonly summary: BatchSummary
  readonly runs: ReadonlyArray<RunOnDisk>
  /** the metric the leaderboard ranks by first */
  readonly sort: string
  /** equity curves of the top runs, best first */
  readonly curves: ReadonlyArray<EquityCurve>
  readonly stats: ReadonlyArray<RunStats>
}

/** At most `max` points, evenly spaced, always keeping the last. */
export const downsample = (c: EquityCurve, max: number): EquityCurve => {
  if (c.ts.length <= max) return c
  const step = (c.ts.length - 1) / (max - 1)
  const idx = Array.from({ length: max }, (_, i) => Math.round(i * step))
  return { run_id: c.run_id, ts: idx.map((i) => c.ts[i]), nav: idx.map((i) => c.nav[i]) }
}

/** uPlot wants one x axis: the union of timestamps (seconds), nulls where a run has no point. */
export const alignCurves = (curves: ReadonlyArray<EquityCurve>) => {
  const xs = [...new Set(curves.flatMap((c) => c.ts))].sort((a, b) => a - b)
  const at = new Map(xs.map((x, i) => [x, i]))
  const ys = curves.map((c) => {
    const y: Array<number | null> = new Array(xs.length).fill(null)
    c.ts.forEach((t, i) => (y[at.get(t)!] = c.nav[i]))
    return y
  })
  return { xs: xs.map((x) => x / 1000), ys }
}

export const drawdownPct = (nav: ReadonlyArray<number | null>): Array<number | null> => {
  let peak = -Infinity
  return nav.map((v) => {
    if (v === null) return null
    if (v > peak) peak = v
    return peak > 0 ? -((peak - v) / peak) * 100 : 0
  })
}

export interface HeatMap {
  readonly sweep: string
  readonly metric: string
  readonly xKey: string
  readonly yKey: string
  readonly xs: ReadonlyArray<unknown>
  readonly ys: ReadonlyArray<unknown>
  /** cells[y][x]: the run at that grid point */
  readonly cells: ReadonlyArray<ReadonlyArray<{ run_id: string; status: string; value: number | null } | null>>
}

const sortValues = (vs: unknown[]) => [...vs].sort((a, b) => (typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b))))

/**
 * A heat map per sweep block (runs whose id starts with `<sweep>__`) whose grid varies exactly
 * two keys — parameters or run fields, read from the run id's `key-value` parts.
 */
export const heatMaps = (runs: ReadonlyArray<RunOnDisk>, metric: keyof MetricsRecord): HeatMap[] => {
  const bySweep = new Map<string, RunOnDisk[]>()
  for (const r of runs) {
    const parts = r.manifest.run_id.split("__")
    if (parts.length < 2) continue
    const list = bySweep.get(parts[0]) ?? []
    list.push(r)
    bySweep.set(parts[0], list)
  }
  const maps: HeatMap[] = []
  for (const [sweep, list] of bySweep) {
    const coords = list.map((r) => {
      const axes = new Map<string, unknown>()
      for (const part of r.manifest.run_id.split("__").slice(1)) {
        const dash = part.indexOf("-")
        if (dash <= 0) continue
        const key = part.slice(0, dash)
        // the value itself, not its token: parameters keep their type
        axes.set(key, key in r.manifest.params ? r.manifest.params[key] : part.slice(dash + 1))
      }
      return { r, axes }
    })
    const keys = [...new Set(coords.flatMap((c) => [...c.axes.keys()]))]
    if (keys.length !== 2) continue
    const [xKey, yKey] = keys
    const xs = sortValues([...new Set(coords.map((c) => c.axes.get(xKey)))])
    const ys = sortValues([...new Set(coords.map((c) => c.axes.get(yKey)))])
    const cells = ys.map((y) =>
      xs.map((x) => {
        const c = coords.find((k) => k.axes.get(xKey) === x && k.axes.get(yKey) === y)
        if (!c) return null
        const v = c.r.metrics?.[metric]
        return { run_id: c.r.manifest.run_id, status: c.r.manifest.status, value: typeof v === "number" ? v : null }
      })
    )
    maps.push({ sweep, metric: String(metric), xKey, yKey, xs, ys, cells })
  }
  return maps
}

const esc = (s: unknown): string =>
  String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!)

const fmt = (v: unknown, kind: "pct" | "num" | "int" | "pctpts" = "num"): string => {
  if (typeof v !== "number" || !Number.isFinite(v)) return "—"
  if (kind === "pct") return `${(v * 100).toFixed(2)}%`
  if (kind === "pctpts") return `${v.toFixed(2)}%`
  if (kind === "int") return String(Math.round(v))
  return Math.abs(v) >= 1e5 ? v.toFixed(0) : v.toFixed(3)
}

const COLUMNS: ReadonlyArray<[keyof MetricsRecord, string, "pct" | "num" | "int" | "pctpts"]> = [
  ["total_return", "Return", "pct"],
  ["cagr", "CAGR", "pct"],
  ["sharpe", "Sharpe", "num"],
  ["sortino", "Sortino", "num"],
  ["max_drawdown_pct", "Max DD", "pctpts"],
  ["volatility", "Vol", "pct"],
  ["profit_factor", "PF", "num"],
  ["trades", "Trades", "int"],
  ["win_rate", "Win", "pct"],
  ["exposure", "Exposure", "pct"]
]

/** Red–white–green for a value between lo and hi (null: grey). */
const heatColour = (v: number | null, lo: number, hi: number): string => {
  if (v === null) return "#ddd"
  const t = hi > lo ? (v - lo) / (hi - lo) : 0.5
  const r = t < 0.5 ? 230 : Math.round(230 - (t - 0.5) * 2 * 150)
  const g = t < 0.5 ? Math.round(90 + t * 2 * 140) : 200
  const b = t < 0.5 ? Math.round(90 + t * 2 * 140) : Math.round(230 - (t - 0.5) * 2 * 130)
  return `rgb(${r},${g},${b})`
}

const heatMapHtml = (h: HeatMap): string => {
  const values = h.cells.flat().flatMap((c) => (c && c.value !== null ? [c.value] : []))
  const lo = Math.min(...values)
  const hi = Math.max(...values)
  const rows = h.cells
    .map(
      (row, yi) =>
        `<tr><th>${esc(h.ys[yi])}</th>${row
          .map((c) =>
            c
              ? `<td class="heat-cell" style="background:${heatColour(c.value, lo, hi)}" title="${esc(c.run_id)} (${esc(c.status)})">${c.value === null ? esc(c.status === "success" ? "—" : c.status) : c.value.toFixed(2)}</td>`
              : `<td class="heat-cell heat-empty" title="no run">·</td>`
          )
          .join("")}</tr>`
    )
    .join("")
  return `<div class="heat"><h3>${esc(h.sweep)}: ${esc(h.metric)} by ${esc(h.xKey)} (columns) × ${esc(h.yKey)} (rows)</h3>
<table class="heatmap" data-sweep="${esc(h.sweep)}"><thead><tr><th>${esc(h.yKey)} \\ ${esc(h.xKey)}</th>${h.xs.map((x) => `<th>${esc(x)}</th>`).join("")}</tr></thead><tbody>${rows}</tbody></table></div>`
}

export const renderReport = async (input: ReportInput): Promise<string> => {
  const { summary: s, runs } = input
  const assets = await uplotAssets()
  const metric = input.sort as keyof MetricsRecord
  const curves = input.curves.map((c) => downsample(c, 1500))
  const aligned = alignCurves(curves)
  const chartData = {
    names: curves.map((c) => c.run_id),
    xs: aligned.xs,
    equity: aligned.ys,
    drawdown: aligned.ys.map(drawdownPct)
  }
  const paramKeys = [...new Set(runs.flatMap((r) => Object.keys(r.manifest.params)))].sort()
  const rows = runs
    .map(({ manifest: m, metrics }) => {
      const cells = COLUMNS.map(([k, , kind]) => {
        const v = metrics?.[k]
        return `<td data-v="${typeof v === "number" ? v : ""}">${fmt(v, kind)}</td>`
      }).join("")
      const params = paramKeys.map((k) => `<td data-v="${esc(typeof m.params[k] === "number" ? m.params[k] : "")}">${esc(m.params[k] ?? "")}</td>`).join("")
      return `<tr class="run ${esc(m.status)}"><td>${esc(m.run_id)}</td><td>${esc(m.status)}</td><td>${esc(m.scenario?.strategy ?? "")}</td><td>${esc(m.scenario?.universe.join(" ") ?? "")}</td>${params}${cells}<td class="reason">${esc(m.reason ?? "")}</td></tr>`
    })
    .join("\n")
  const head = ["run", "status", "strategy", "universe", ...paramKeys, ...COLUMNS.map(([, label]) => label), "reason"]
  const defaultCol = 4 + paramKeys.length + Math.max(0, COLUMNS.findIndex(([k]) => k === metric))
  const maps = heatMaps(runs, metric)
  const stats = input.stats
    .map(
      (st, i) =>
        `<details class="stats"${i === 0 ? " open" : ""}><summary>${esc(st.run_id)}</summary><table class="lean">${st.stats
          .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`)
          .join("")}</table></details>`
    )
    .join("\n")
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tickflow report: ${esc(s.batch_id)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>${assets.css}
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.15em;margin:1.4em 0 .5em}h3{font-size:1em;margin:.8em 0 .4em}
table{border-collapse:collapse}th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
#leaderboard th{cursor:pointer;background:#f6f6f6;position:sticky;top:0}#leaderboard td:first-child,#leaderboard td.reason{text-align:left}
#leaderboard th.sorted-asc::after{content:" ▲"}#leaderboard th.sorted-desc::after{content:" ▼"}
tr.skipped td,tr.failed td{color:#999}.counts span{margin-right:1.2em}.heatmap td{min-width:3.5em;text-align:center}
.lean th{text-align:left;font-weight:normal;color:#555}.stats{display:inline-block;vertical-align:top;margin:0 1em 1em 0}
.muted{color:#777}
</style></head><body>
<h1>${esc(s.batch_name)} <span class="muted">${esc(s.batch_id)}</span></h1>
<p class="counts"><span>status <b>${esc(s.status)}</b></span><span>${s.counts.success} success</span><span>${s.counts.skipped} skipped</span><span>${s.counts.failed} failed</span>${s.counts.missing ? `<span>${s.counts.missing} not run</span>` : ""}<span>of ${s.total}</span>${s.best ? `<span>best ${esc(s.best.run_id)} (${esc(s.best.metric)} ${fmt(s.best.value)})</span>` : ""}</p>
<h2>Equity of the top ${curves.length} runs by ${esc(metric)}</h2><div id="equity"></div>
<h2>Drawdowns</h2><div id="drawdown"></div>
${maps.length ? `<h2>Parameter heat maps</h2>${maps.map(heatMapHtml).join("\n")}` : ""}
<h2>Leaderboard</h2><p class="muted">click a column to sort</p>
<table id="leaderboard"><thead><tr>${head.map((h, i) => `<th data-col="${i}">${esc(h)}</th>`).join("")}</tr></thead><tbody>
${rows}
</tbody></table>
<h2>Summary statistics (LEAN style)</h2>
${stats}
${s.warnings.count ? `<h2>Warnings</h2><ul>${s.warnings.distinct.map((w) => `<li>${esc(w.message)} <span class="muted">(${w.runs} run${w.runs === 1 ? "" : "s"})</span></li>`).join("")}</ul>` : ""}
<script>${assets.js}</script>
<script type="application/json" id="chart-data">${JSON.stringify(chartData).replace(/</g, "\\u003c")}</script>
<script>
(function(){
  var data = JSON.parse(document.getElementById("chart-data").textContent);
  var palette = ["#1f77b4","#ff7f0e","#2ca02c","#d62728","#9467bd","#8c564b","#e377c2","#7f7f7f","#bcbd22","#17becf"];
  function chart(el, ys, label) {
    var series = [{}].concat(data.names.map(function(n, i){ return { label: n, stroke: palette[i % palette.length], width: 1.5, spanGaps: true }; }));
    var width = Math.max(400, Math.min(1200, document.body.clientWidth - 40));
    return new uPlot({ width: width, height: 320, series: series, axes: [{}, { label: label, size: 70 }], scales: { x: { time: true } } }, [data.xs].concat(ys), el);
  }
  window.tickflowCharts = data.names.length ? {
    equity: chart(document.getElementById("equity"), data.equity, "NAV"),
    drawdown: chart(document.getElementById("drawdown"), data.drawdown, "drawdown %")
  } : {};
  var table = document.getElementById("leaderboard");
  var state = { col: ${defaultCol}, dir: ${metric === "max_drawdown_pct" || metric === "volatility" ? 1 : -1} };
  function key(td) { var v = td.getAttribute("data-v"); return v !== null && v !== "" ? { n: Number(v) } : { s: td.textContent }; }
  function sortBy(col, dir) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function(a, b) {
      var ka = key(a.cells[col]), kb = key(b.cells[col]);
      if (ka.n === undefined && kb.n !== undefined) return 1;
      if (kb.n === undefined && ka.n !== undefined) return -1;
      var d = ka.n !== undefined ? ka.n - kb.n : String(ka.s).localeCompare(String(kb.s));
      return d * dir || a.cells[0].textContent.localeCompare(b.cells[0].textContent);
    });
    rows.forEach(function(r){ body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function(th, i){ th.className = i === col ? (dir > 0 ? "sorted-asc" : "sorted-desc") : ""; });
    state = { col: col, dir: dir };
  }
  table.tHead.addEventListener("click", function(e) {
    var th = e.target.closest("th"); if (!th) return;
    var col = Number(th.getAttribute("data-col"));
    sortBy(col, state.col === col ? -state.dir : (col < 4 ? 1 : -1));
  });
  sortBy(state.col, state.dir);
})();
</script>
</body></html>
`
}
