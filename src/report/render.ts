/**
 * Drawing: chart.js configurations to PNG without a browser (chart.js on an @napi-rs/canvas
 * context, whose Skia binary ships in its npm package), and to a self-contained HTML page that
 * embeds chart.js's UMD bundle, so the report opens offline.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createCanvas } from '@napi-rs/canvas';
import { Chart, registerables } from 'chart.js';
import type { ChartSpec } from './charts.ts';
import type { ReportData } from './data.ts';
import { fmt } from './card.ts';
import { ReportFailure } from './errors.ts';

Chart.register(...registerables);

export const CHART_WIDTH = 1000;
export const CHART_HEIGHT = 520;

/** chart.js draws on a transparent canvas; a PNG gets a white background (a plugin that paints it first). */
const whiteBackground = {
  id: 'evomergeWhiteBackground',
  beforeDraw(chart: { ctx: { save(): void; fillStyle: string; fillRect(x: number, y: number, w: number, h: number): void; restore(): void }; width: number; height: number }) {
    chart.ctx.save();
    chart.ctx.fillStyle = '#ffffff';
    chart.ctx.fillRect(0, 0, chart.width, chart.height);
    chart.ctx.restore();
  },
};

/** One chart as PNG bytes. */
export function renderChartPng(spec: ChartSpec, width = CHART_WIDTH, height = CHART_HEIGHT): Buffer {
  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext('2d');
  // structuredClone: chart.js writes into the configuration it is given
  const config = structuredClone(spec.config) as { plugins?: unknown[]; options?: Record<string, unknown> };
  config.plugins = [whiteBackground];
  config.options = { ...config.options, devicePixelRatio: 1 };
  let chart: Chart | null = null;
  try {
    chart = new Chart(ctx as never, config as never);
    return canvas.toBuffer('image/png');
  } catch (err) {
    throw new ReportFailure('E_REPORT_RENDER', `chart '${spec.id}' could not be drawn: ${(err as Error).message}`, { cause: err });
  } finally {
    chart?.destroy();
  }
}

/** chart.js's UMD bundle (not in its package's exports map: found next to its main file). */
export function chartJsBundle(): string {
  const require = createRequire(import.meta.url);
  const main = require.resolve('chart.js');
  return readFileSync(join(dirname(main), 'chart.umd.min.js'), 'utf8');
}

/** JSON safe inside a <script> element: no `</script`, no `<!--`, no U+2028/9 line breaks. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function htmlTable(head: string[], rows: string[][]): string {
  return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

/** The self-contained HTML report: every chart on a canvas, the top candidates and the baselines. */
export function reportHtml(data: ReportData, charts: readonly ChartSpec[]): string {
  const metricCols = [...new Set(data.top.flatMap((t) => Object.keys(t.metrics)))];
  const withSel = data.top.some((t) => t.selection !== null);
  const top = htmlTable(['candidate', 'stage', 'generation', 'operator', 'fitness', ...(withSel ? ['selection split'] : []), ...metricCols], data.top.map((t) => [`${t.id}${data.selection?.candidate === t.id ? ' (chosen)' : ''}`, String(t.stage), String(t.generation), t.operator, fmt(t.fitness), ...(withSel ? [fmt(t.selection)] : []), ...metricCols.map((c) => fmt(t.metrics[c]))]));
  const sel = data.selection;
  const selection = !sel ? '' : sel.selectionFitness === null
    ? `<p>Chosen candidate: ${sel.candidate}, by the rule ${esc(sel.rule)} over the top ${sel.pool} on the search's fitness (its fitness ${fmt(sel.searchFitness)}; the search's maximum is candidate ${sel.searchBest.id}, ${fmt(sel.searchBest.fitness)}).</p>`
    : `<h2>Selection on a second split</h2>\n<p>The top ${sel.pool} candidates on the search's fitness were scored on the selection split; the chosen one (rule ${esc(sel.rule)}) is candidate ${sel.candidate}: search fitness ${fmt(sel.searchFitness)}, selection split ${fmt(sel.selectionFitness)}, optimism of the search ${fmt(sel.optimism)}${sel.reference ? ` (gains over the best fixed recipe, candidate ${sel.reference.id}: ${fmt(sel.searchFitness - sel.reference.searchFitness)} on the search's split, ${fmt(sel.selectionFitness - sel.reference.selectionFitness)} on the selection split)` : ' (search fitness minus selection score)'}. The search's maximum is candidate ${sel.searchBest.id} (${fmt(sel.searchBest.fitness)}).</p>`;
  const evalIds = data.run.evaluators.map((e) => e.id);
  const baselines = data.baselines.length
    ? htmlTable(['source model', 'fitness', ...evalIds.map((e) => `${e} fitness`)], data.baselines.map((b) => [b.label, b.error ? `failed: ${b.error}` : fmt(b.fitness), ...evalIds.map((e) => fmt(b.metrics[e]?.fitness))]))
    : '<p>Baselines were not scored for this report (evomerge report scores the source models unless --no-baselines).</p>';
  // the warm start's fixed recipes (space init: baselines), best first: the bar the search had to beat
  const fixed = data.fitness.fixedRecipes.length
    ? `<h2>Fixed recipes the search started from (the bar to beat)</h2>\n${htmlTable(['fixed recipe', 'candidate', 'stage', 'fitness'], data.fitness.fixedRecipes.map((f, i) => [`${f.label}${i === 0 ? ' (best)' : ''}`, String(f.id), String(f.stage), fmt(f.fitness)]))}`
    : '';
  const counts = Object.entries(data.run.counts).map(([k, v]) => `${v} ${k}`).join(', ');
  const rungs = data.run.items.byFidelity.map((r) => (r.fidelity >= 1 ? `${r.candidates} scored on every item` : `${r.candidates} stopped at ${r.fidelity} of the items`));
  const items = `${data.run.items.items} item-evaluations${rungs.length ? ` (multi-fidelity: ${rungs.join(', ')}; only full scores rank as best)` : ''}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>evomerge report: ${esc(data.run.name)}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: ${CHART_WIDTH + 40}px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 1.5em 0; }
canvas { border: 1px solid #eee; }
</style>
<script>${chartJsBundle().replace(/<\/script/gi, '<\\/script')}</script>
</head>
<body>
<h1>evomerge run <code>${esc(data.run.name)}</code></h1>
<p>Mode ${esc(data.run.mode)}, objective ${esc(data.run.objective)}, status ${esc(data.run.status)}; candidates: ${esc(counts)}; ${esc(items)}.</p>
<h2>Top candidates</h2>
${top}
${selection}
<h2>Baselines: the source models scored by the run's evaluators</h2>
${baselines}
${fixed}
<h2>Charts</h2>
${charts.map((c) => `<figure><canvas id="chart-${esc(c.id)}" width="${CHART_WIDTH}" height="${CHART_HEIGHT}" aria-label="${esc(c.title)}"></canvas></figure>`).join('\n')}
<script id="chart-data" type="application/json">${scriptJson(charts.map((c) => ({ id: c.id, config: c.config })))}</script>
<script>
(function () {
  var specs = JSON.parse(document.getElementById('chart-data').textContent);
  var drawn = 0;
  specs.forEach(function (s) {
    var canvas = document.getElementById('chart-' + s.id);
    try {
      new Chart(canvas.getContext('2d'), s.config);
      var px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      var ink = 0;
      for (var i = 3; i < px.length; i += 4) if (px[i] !== 0) ink++;
      canvas.dataset.inkPixels = String(ink);
      if (ink > 0) drawn++;
    } catch (e) {
      canvas.dataset.error = String(e && e.message || e);
    }
  });
  document.documentElement.dataset.chartsDrawn = String(drawn);
  document.documentElement.dataset.chartsTotal = String(specs.length);
})();
</script>
</body>
</html>
`;
}
