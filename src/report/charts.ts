/**
 * chart.js configurations of the report, built from `ReportData`. Plain JSON (no callbacks), so
 * the same configuration is drawn to PNG in Node and embedded in the HTML page. Each chart's
 * title says what it shows and its axes say in what units, readable at a glance.
 */
import type { ReportData } from './data.ts';

export interface ChartSpec {
  id: string;
  title: string;
  /** A chart.js configuration (type, data, options), JSON only. */
  config: Record<string, unknown>;
}

/** The category10 palette (d3's schemeCategory10, also Tableau 10's former default). */
export const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'] as const;

/** HSL (degrees, percent, percent) as #rrggbb. */
function hslHex(h: number, s: number, l: number): string {
  const a = (s / 100) * Math.min(l / 100, 1 - l / 100);
  const f = (n: number) => {
    const k = (n + h / 30) % 12;
    const v = l / 100 - a * Math.max(-1, Math.min(k - 3, 9 - k, 1));
    return Math.round(v * 255).toString(16).padStart(2, '0');
  };
  return `#${f(0)}${f(8)}${f(4)}`;
}

/**
 * The colours of one chart's series. Each call of `next` returns a colour that no earlier call
 * for the same chart returned, so two series of a chart cannot share one: a series may name the
 * colour it customarily has (best so far in red), and gets the first free palette colour when
 * that one is taken. Past the palette, hues step round the circle by the golden angle
 * (360 (1 - 1/phi), about 137.5 degrees) at three lightnesses, skipping any colour already given.
 */
export function seriesColours(): { next(prefer?: string): string } {
  const used = new Set<string>();
  let generated = 0;
  const take = (c: string) => {
    used.add(c.toLowerCase());
    return c;
  };
  return {
    next(prefer) {
      if (prefer && !used.has(prefer.toLowerCase())) return take(prefer);
      const free = PALETTE.find((c) => !used.has(c));
      if (free) return take(free);
      for (;;) {
        const k = generated++;
        const c = hslHex((k * 137.50776405) % 360, 65, [42, 58, 30][k % 3]!);
        if (!used.has(c)) return take(c);
      }
    },
  };
}

/** A #rrggbb colour with transparency, for points drawn over one another. */
export function withAlpha(hex: string, alpha: number): string {
  const v = Number.parseInt(hex.slice(1), 16);
  return `rgba(${(v >> 16) & 255},${(v >> 8) & 255},${v & 255},${alpha})`;
}

function options(title: string, x: string, y: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const { scales: extraScales, ...rest } = extra as { scales?: Record<string, unknown> };
  return {
    animation: false,
    responsive: false,
    plugins: { title: { display: true, text: title, font: { size: 16 } }, legend: { position: 'bottom' } },
    scales: {
      x: { type: 'linear', title: { display: true, text: x } },
      y: { title: { display: true, text: y } },
      ...(extraScales ?? {}),
    },
    ...rest,
  };
}

export function fitnessChart(d: ReportData): ChartSpec {
  const lastN = Math.max(1, ...d.timing.points.map((p) => p.n));
  const fixed = d.fitness.fixedRecipes[0];
  const title = `Fitness of every candidate, with the best so far${fixed ? ', the best fixed recipe' : ''} and the source models`;
  const colours = seriesColours();
  const candidate = colours.next('#1f77b4');
  const best = colours.next('#d62728');
  const fixedColour = fixed ? colours.next('#2ca02c') : null;
  const level = (y: number) => [{ x: 1, y }, { x: lastN, y }];
  return {
    id: 'fitness', title,
    config: {
      type: 'scatter',
      data: {
        datasets: [
          { label: 'candidate', data: d.fitness.points.map((p) => ({ x: p.n, y: p.fitness })), borderColor: withAlpha(candidate, 0.45), backgroundColor: withAlpha(candidate, 0.45), pointRadius: 3, pointStyle: 'circle' },
          { label: 'best so far', type: 'line', data: d.fitness.bestSoFar.map((p) => ({ x: p.n, y: p.fitness })), borderColor: best, backgroundColor: best, stepped: 'after', pointRadius: 0, pointStyle: 'line', borderWidth: 2 },
          // the bar to beat: the fixed recipe of `evomerge baselines` that scored best as a warm start
          ...(fixed ? [{
            label: `best fixed recipe: ${fixed.label} (candidate ${fixed.id})`, type: 'line', data: level(fixed.fitness),
            borderColor: fixedColour, backgroundColor: fixedColour, borderDash: [12, 4, 2, 4], pointRadius: 0, pointStyle: 'line', borderWidth: 2,
          }] : []),
          ...d.fitness.baselines.map((b) => {
            const c = colours.next();
            return { label: `${b.label} (source)`, type: 'line', data: level(b.fitness), borderColor: c, backgroundColor: c, borderDash: [6, 4], pointRadius: 0, pointStyle: 'line', borderWidth: 1.5 };
          }),
        ],
      },
      options: options(title, 'evaluation number', `fitness (${d.run.evaluators.map((e) => (e.weight === 1 ? e.id : `${e.weight} x ${e.id}`)).join(' + ') || 'weighted sum'})`, {
        plugins: { title: { display: true, text: title, font: { size: 16 } }, legend: { position: 'bottom', labels: { usePointStyle: true, pointStyleWidth: 32 } } },
      }),
    },
  };
}

/** A series with one colour for its line and its points. */
const inColour = (c: string) => ({ borderColor: c, backgroundColor: c });

export function evaluatorChart(d: ReportData): ChartSpec {
  const title = "Each evaluator's score for the best candidate so far";
  const colours = seriesColours();
  return {
    id: 'evaluators', title,
    config: {
      type: 'line',
      data: { datasets: d.evaluatorTrend.map((s) => ({ label: `${s.evaluator} (${s.metric})`, data: s.points.map((p) => ({ x: p.n, y: p.value })), ...inColour(colours.next()), stepped: 'after', pointRadius: 2 })) },
      options: options(title, 'evaluation number', 'metric of the best-so-far candidate'),
    },
  };
}

export function parameterChart(d: ReportData): ChartSpec | null {
  if (!d.parameters) return null;
  const title = `Best recipe (candidate ${d.parameters.candidate}): parameters by layer group`;
  const colours = seriesColours();
  return {
    id: 'parameters', title,
    config: {
      type: 'bar',
      data: { labels: d.parameters.groups, datasets: d.parameters.series.map((s) => ({ label: s.label, data: s.values, ...inColour(colours.next()) })) },
      options: options(title, 'layer group', 'parameter value', { scales: { x: { type: 'category', title: { display: true, text: 'layer group' } } } }),
    },
  };
}

export function dfsPathChart(d: ReportData): ChartSpec | null {
  if (!d.dfsPath) return null;
  const p = d.dfsPath;
  const title = `Best layer path (candidate ${p.candidate}): the layer run at each step, by source, and its input scale`;
  const colours = seriesColours();
  const scale = colours.next('#333333');
  return {
    id: 'dfs-path', title,
    config: {
      type: 'scatter',
      data: {
        datasets: [
          ...p.sources.map((name, i) => ({ label: `layer of ${name}`, data: p.steps.filter((s) => s.source === i).map((s) => ({ x: s.step, y: s.layer })), ...inColour(colours.next()), pointRadius: 6, pointStyle: 'rectRot' })),
          { label: 'input scale', type: 'line', yAxisID: 'y1', data: p.steps.map((s) => ({ x: s.step, y: s.scale })), ...inColour(scale), pointRadius: 2, borderDash: [4, 3] },
        ],
      },
      options: options(title, 'step on the path', 'layer index in its source', {
        scales: { x: { type: 'linear', offset: true, ticks: { stepSize: 1 }, title: { display: true, text: 'step on the path' } }, y: { ticks: { precision: 0 }, grace: 0.5, title: { display: true, text: 'layer index in its source' } }, y1: { position: 'right', grid: { drawOnChartArea: false }, title: { display: true, text: 'scale of the hidden state entering the step' } } },
      }),
    },
  };
}

export function lineageChart(d: ReportData): ChartSpec | null {
  if (!d.lineage) return null;
  const l = d.lineage;
  const operators = [...new Set(l.chain.map((c) => c.operator))];
  const title = `Lineage of the best candidate ${l.candidate}: its chain of fittest parents by operator, among all its ancestors`;
  const colours = seriesColours();
  const chain = colours.next('#444444');
  const others = withAlpha(colours.next('#7f7f7f'), 0.35);
  return {
    id: 'lineage', title,
    config: {
      type: 'scatter',
      data: {
        datasets: [
          { label: 'chain of fittest parents', type: 'line', data: l.chain.filter((c) => c.fitness !== null).map((c) => ({ x: c.generation + c.stage * 1000, y: c.fitness })), ...inColour(chain), pointRadius: 0, borderWidth: 1.5 },
          ...operators.map((op) => ({ label: `made by ${op}`, data: l.chain.filter((c) => c.operator === op && c.fitness !== null).map((c) => ({ x: c.generation + c.stage * 1000, y: c.fitness })), ...inColour(colours.next()), pointRadius: 6 })),
          { label: 'other ancestors', data: l.ancestors.filter((c) => c.fitness !== null).map((c) => ({ x: c.generation + c.stage * 1000, y: c.fitness })), ...inColour(others), pointRadius: 3 },
        ],
      },
      options: options(title, l.chain.some((c) => c.stage > 0) ? 'generation (+1000 per stage)' : 'generation', 'fitness'),
    },
  };
}

export function paretoChart(d: ReportData): ChartSpec | null {
  if (!d.pareto) return null;
  const p = d.pareto;
  const front = p.points.filter((x) => x.front).sort((a, b) => a.x - b.x);
  const title = `Pareto front: ${p.objectives[0]} against ${p.objectives[1]} (both maximised)`;
  const colours = seriesColours();
  const onFront = colours.next('#d62728');
  const dominated = withAlpha(colours.next('#7f7f7f'), 0.45);
  return {
    id: 'pareto', title,
    config: {
      type: 'scatter',
      data: {
        datasets: [
          { label: 'Pareto front', type: 'line', data: front.map((x) => ({ x: x.x, y: x.y })), ...inColour(onFront), pointRadius: 5 },
          { label: 'dominated candidate', data: p.points.filter((x) => !x.front).map((x) => ({ x: x.x, y: x.y })), ...inColour(dominated), pointRadius: 3 },
        ],
      },
      options: options(title, `${p.objectives[0]} (fitness)`, `${p.objectives[1]} (fitness)`),
    },
  };
}

export function timingChart(d: ReportData): ChartSpec {
  const t = d.timing;
  const title = 'Evaluation time per candidate (scored, reused, failed) and failures so far';
  const colours = seriesColours();
  // one series per kind of bar, each with its own colour and legend entry; a bar stands at its
  // evaluation number in its own series and is null in the others (grouped: false overlays them)
  const kinds = [
    { label: 'evaluation time (s)', colour: colours.next('#1f77b4'), is: (p: (typeof t.points)[number]) => !p.failed && !p.reused },
    { label: 'reused an identical recipe\'s score (s)', colour: colours.next('#bbbbbb'), is: (p: (typeof t.points)[number]) => !p.failed && p.reused },
    { label: 'failed candidate (s)', colour: colours.next('#d62728'), is: (p: (typeof t.points)[number]) => p.failed },
  ].filter((k) => k.label === 'evaluation time (s)' || t.points.some(k.is));
  const failures = colours.next('#8c564b');
  return {
    id: 'timing', title,
    config: {
      type: 'bar',
      data: {
        labels: t.points.map((p) => p.n),
        datasets: [
          ...kinds.map((k) => ({ label: k.label, data: t.points.map((p) => (k.is(p) ? p.seconds ?? 0 : null)), ...inColour(k.colour), grouped: false })),
          { label: 'failures so far', type: 'line', yAxisID: 'y1', data: t.failures.map((f) => f.count), ...inColour(failures), pointRadius: 0, stepped: 'after' },
        ],
      },
      options: options(title, 'evaluation number', 'seconds', {
        scales: { x: { type: 'category', title: { display: true, text: 'evaluation number' } }, y1: { position: 'right', beginAtZero: true, ticks: { precision: 0 }, grid: { drawOnChartArea: false }, title: { display: true, text: 'failed candidates so far' } } },
      }),
    },
  };
}

/** The charts that apply to a run, in the report's order. */
export function reportCharts(d: ReportData): ChartSpec[] {
  return [fitnessChart(d), evaluatorChart(d), parameterChart(d), dfsPathChart(d), lineageChart(d), paretoChart(d), timingChart(d)].filter((c): c is ChartSpec => c !== null);
}
