/** `evomerge report <run>`: chart.js PNGs and a self-contained HTML report of a search. */
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { parseReportFormats, writeRunReport } from '../../report/index.ts';
import { openRun } from '../../search/inspect.ts';

export function register(program: Command): void {
  program
    .command('report')
    .description('chart a run: fitness over time, evaluators, the best recipe, layer path, lineage, Pareto front, failures and timing (PNG files and a self-contained HTML page)')
    .argument('<run>', 'run name')
    .option('-o, --output <dir>', 'output folder (default: report/ beside the run database, runs/<run>/report for a run in runs/)')
    .option('--format <list>', 'comma-separated: png, html', 'png,html')
    .option('--no-baselines', 'do not score the source models with the run\'s evaluators (the reference lines and table)')
    .option('--db <path>', 'run database (default runs/<run>/run.sqlite)')
    .option('--json', 'print one JSON object')
    .action(async (runName: string, o: { output?: string; format: string; baselines: boolean; db?: string; json?: boolean }) => {
      const formats = parseReportFormats(o.format);
      const { store, run, dbPath } = openRun(runName, o.db);
      store.close();
      if (o.baselines && !o.json) process.stderr.write(`scoring the source models of '${run.name}' with its evaluators ...\n`);
      const r = await writeRunReport(run.name, dbPath, o.output ?? join(dirname(dbPath), 'report'), { formats, baselines: o.baselines });
      if (o.json) process.stdout.write(`${JSON.stringify(r)}\n`);
      else process.stdout.write(`report of '${run.name}': ${r.html ?? r.dir} (${r.charts.length} charts${r.pngs.length ? `, PNGs in ${r.dir}/charts` : ''})\n`);
    });
}
