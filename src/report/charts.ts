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

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
export const color = (i: number) => PALETTE[i % PALETTE.length]!;

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
  const title = 'Fitness of every candidate, with the best so far and the source models';
  return {
    id: 'fitness', title,
    config: {
      type: 'scatter',
      data: {
        datasets: [
          { label: 'candidate', data: d.fitness.points.map((p) => ({ x: p.n, y: p.fitness })), backgroundColor: 'rgba(31,119,180,0.45)', pointRadius: 3 },
          { label: 'best so far', type: 'line', data: d.fitness.bestSoFar.map((p) => ({ x: p.n, y: p.fitness })), borderColor: '#d62728', backgroundColor: '#d62728', stepped: 'after', pointRadius: 0, borderWidth: 2 },
          ...d.fitness.baselines.map((b, i) => ({
            label: `${b.label} (source)`, type: 'line', data: [{ x: 1, y: b.fitness }, { x: lastN, y: b.fitness }],
            borderColor: color(i + 2), backgroundColor: color(i + 2), borderDash: [6, 4], pointRadius: 0, borderWidth: 1.5,
          })),
        ],
      },
      options: options(title, 'evaluation number', `fitness (${d.run.evaluators.map((e) => (e.weight === 1 ? e.id : `${e.weight} x ${e.id}`)).join(' + ') || 'weighted sum'})`),
    },
  };
}

export function evaluatorChart(d: ReportData): ChartSpec {
  const title = "Each evaluator's score for the best candidate so far";
  return {
    id: 'evaluators', title,
    config: {
      type: 'line',
      data: { datasets: d.evaluatorTrend.map((s, i) => ({ label: `${s.evaluator} (${s.metric})`, data: s.points.map((p) => ({ x: p.n, y: p.value })), borderColor: color(i), backgroundColor: color(i), stepped: 'after', pointRadius: 2 })) },
      options: options(title, 'evaluation number', 'metric of the best-so-far candidate'),
    },
  };
}

export function parameterChart(d: ReportData): ChartSpec | null {
  if (!d.parameters) return null;
  const title = `Best recipe (candidate ${d.parameters.candidate}): parameters by layer group`;
  return {
    id: 'parameters', title,
    config: {
      type: 'bar',
      data: { labels: d.parameters.groups, datasets: d.parameters.series.map((s, i) => ({ label: s.label, data: s.values, backgroundColor: color(i) })) },
      options: options(title, 'layer group', 'parameter value', { scales: { x: { type: 'category', title: { display: true, text: 'layer group' } } } }),
    },
  };
}

export function dfsPathChart(d: ReportData): ChartSpec | null {
  if (!d.dfsPath) return null;
  const p = d.dfsPath;
  const title = `Best layer path (candidate ${p.candidate}): the layer run at each step, by source, and its input scale`;
  return {
    id: 'dfs-path', title,
    config: {
      type: 'scatter',
      data: {
        datasets: [
          ...p.sources.map((name, i) => ({ label: `layer of ${name}`, data: p.steps.filter((s) => s.source === i).map((s) => ({ x: s.step, y: s.layer })), backgroundColor: color(i), pointRadius: 6, pointStyle: 'rectRot' })),
          { label: 'input scale', type: 'line', yAxisID: 'y1', data: p.steps.map((s) => ({ x: s.step, y: s.scale })), borderColor: '#333333', backgroundColor: '#333333', pointRadius: 2, borderDash: [4, 3] },
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
  return {
    id: 'lineage', title,
    config: {
      type: 'scatter',
      data: {
        datasets: [
          { label: 'chain of fittest parents', type: 'line', data: l.chain.filter((c) => c.fitness !== null).map((c) => ({ x: c.generation + c.stage * 1000, y: c.fitness })), borderColor: '#444444', backgroundColor: '#444444', pointRadius: 0, borderWidth: 1.5 },
          ...operators.map((op, i) => ({ label: `made by ${op}`, data: l.chain.filter((c) => c.operator === op && c.fitness !== null).map((c) => ({ x: c.generation + c.stage * 1000, y: c.fitness })), backgroundColor: color(i + 1), pointRadius: 6 })),
          { label: 'other ancestors', data: l.ancestors.filter((c) => c.fitness !== null).map((c) => ({ x: c.generation + c.stage * 1000, y: c.fitness })), backgroundColor: 'rgba(127,127,127,0.35)', pointRadius: 3 },
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
  return {
    id: 'pareto', title,
    config: {
      type: 'scatter',
      data: {
        datasets: [
          { label: 'Pareto front', type: 'line', data: front.map((x) => ({ x: x.x, y: x.y })), borderColor: '#d62728', backgroundColor: '#d62728', pointRadius: 5 },
          { label: 'dominated candidate', data: p.points.filter((x) => !x.front).map((x) => ({ x: x.x, y: x.y })), backgroundColor: 'rgba(127,127,127,0.45)', pointRadius: 3 },
        ],
      },
      options: options(title, `${p.objectives[0]} (fitness)`, `${p.objectives[1]} (fitness)`),
    },
  };
}

export function timingChart(d: ReportData): ChartSpec {
  const t = d.timing;
  const title = 'Evaluation time per candidate (failures in red) and failures so far';
  return {
    id: 'timing', title,
    config: {
      type: 'bar',
      data: {
        labels: t.points.map((p) => p.n),
        datasets: [
          { label: 'evaluation time (s)', data: t.points.map((p) => p.seconds ?? 0), backgroundColor: t.points.map((p) => (p.failed ? '#d62728' : p.reused ? '#bbbbbb' : '#1f77b4')) },
          { label: 'failures so far', type: 'line', yAxisID: 'y1', data: t.failures.map((f) => f.count), borderColor: '#d62728', backgroundColor: '#d62728', pointRadius: 0, stepped: 'after' },
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
