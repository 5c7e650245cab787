/** `evomerge report`: the run's charts as PNG files and a self-contained HTML page. */
import { mkdirSync } from 'node:fs';
import { writeFileAtomic } from '../checkpoint/atomic.ts';
import { join, resolve } from 'node:path';
import type { RunRow, RunStore } from '../store/index.ts';
import { reportCharts } from './charts.ts';
import { reportData } from './data.ts';
import { ExportError } from './errors.ts';
import { renderChartPng, reportHtml } from './render.ts';
import { openRun } from '../search/inspect.ts';
import { scoreRunSources, type SourceBaseline } from './scores.ts';

export const REPORT_FORMATS = ['png', 'html'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

export function parseReportFormats(text: string): ReportFormat[] {
  const names = text.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = names.filter((n) => !(REPORT_FORMATS as readonly string[]).includes(n));
  if (bad.length || names.length === 0) throw new ExportError('E_REPORT_FORMAT', `--format ${JSON.stringify(text)}: ${bad.length ? `unknown ${bad.join(', ')}; ` : ''}choose from ${REPORT_FORMATS.join(', ')} (comma-separated)`);
  return [...new Set(names)] as ReportFormat[];
}

export interface ReportResult {
  dir: string;
  html: string | null;
  pngs: string[];
  charts: string[];
}

/** Write the report of a run into `dir`: charts/<n>-<id>.png and index.html. */
export function writeReport(store: RunStore, run: RunRow, dir: string, options: { formats?: readonly ReportFormat[]; baselines?: readonly SourceBaseline[] } = {}): ReportResult {
  const formats = options.formats ?? REPORT_FORMATS;
  const root = resolve(dir);
  const data = reportData(store, run, options.baselines ?? []);
  const charts = reportCharts(data);
  mkdirSync(root, { recursive: true });
  const pngs: string[] = [];
  if (formats.includes('png')) {
    mkdirSync(join(root, 'charts'), { recursive: true });
    charts.forEach((c, i) => {
      const file = join(root, 'charts', `${i + 1}-${c.id}.png`);
      writeFileAtomic(file, renderChartPng(c));
      pngs.push(file);
    });
  }
  let html: string | null = null;
  if (formats.includes('html')) {
    html = join(root, 'index.html');
    writeFileAtomic(html, reportHtml(data, charts));
  }
  writeFileAtomic(join(root, 'report.json'), `${JSON.stringify(data, null, 1)}\n`);
  return { dir: root, html, pngs, charts: charts.map((c) => c.id) };
}

/**
 * The whole report of a stored run in one call (what `evomerge report` and the demo do): the
 * source models scored by the run's evaluators for the reference lines, then PNGs and HTML.
 */
export async function writeRunReport(runName: string, dbPath: string, dir: string, options: { formats?: readonly ReportFormat[]; baselines?: boolean } = {}): Promise<ReportResult> {
  const { store, run } = openRun(runName, dbPath);
  try {
    const baselines = options.baselines === false ? [] : await scoreRunSources(run);
    return writeReport(store, run, dir, { formats: options.formats, baselines });
  } finally {
    store.close();
  }
}
