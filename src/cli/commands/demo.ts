import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { InputError } from '../../errors.ts';
import { runDemo } from '../../search/demo.ts';
import { formatBaselines } from '../../zoo/baselines.ts';
import { progressReporter } from './search.ts';
import { dirname, join } from 'node:path';
import { writeRunReport } from '../../report/index.ts';

export function register(program: Command): void {
  program
    .command('demo')
    .description('the whole product in minutes: build the vision zoo (if absent), print the baselines, evolve a merge, and compare it with the baselines on the test split')
    .option('--budget <n>', 'candidates to evaluate (default: the budget of search-spaces/vision-ps.yaml)')
    .option('--workers <n>', 'worker threads (default 2)')
    .option('--small', 'use the reduced vision zoo (runs/zoo/vision-small): a quick look in a minute or so')
    .option('--json', 'print one JSON object at the end')
    .action(async (o: { budget?: string; workers?: string; small?: boolean; json?: boolean }) => {
      const budget = o.budget === undefined ? undefined : Number(o.budget);
      if (budget !== undefined && (!Number.isInteger(budget) || budget < 1)) throw new InputError('E_BAD_FLAG', `--budget must be a positive integer, got '${o.budget}'`);
      const workers = o.workers === undefined ? undefined : Number(o.workers);
      if (workers !== undefined && (!Number.isInteger(workers) || workers < 1)) throw new InputError('E_BAD_FLAG', `--workers must be a positive integer, got '${o.workers}'`);
      const say = (t: string) => process.stderr.write(`${t}\n`);
      const bar = new cliProgress.SingleBar({ format: '{what} [{bar}] {percentage}% | {eta_formatted} left', noTTYOutput: true, notTTYSchedule: 5000, stream: process.stderr }, cliProgress.Presets.shades_classic);
      let barOn = false;
      const step = (what: string, done: number, total: number) => {
        if (!barOn) { bar.start(total, 0, { what }); barOn = true; }
        bar.setTotal(total);
        bar.update(done, { what });
        if (done >= total) { bar.stop(); barOn = false; }
      };
      const progress = progressReporter(o.small ? 'demo-small' : 'demo');
      try {
        const report = await runDemo({
          ...progress.options,
          small: o.small,
          zooDir: o.small ? 'runs/zoo/vision-small' : undefined,
          runName: o.small ? 'demo-small' : 'demo',
          budget: budget === undefined ? undefined : { evaluations: budget },
          workers,
          print: say,
          onZooProgress: (p) => step(`zoo: ${p.stage}`, p.done, p.total),
          onBaselineProgress: (done, total) => step('baselines', done, total),
        });
        progress.stop();
        if (barOn) bar.stop();
        say('writing the report (charts of the search) ...');
        const charts = await writeRunReport(report.search.run.name, report.search.dbPath, join(dirname(report.search.dbPath), 'report'));
        if (o.json) {
          process.stdout.write(`${JSON.stringify({ baselines: report.baselines, evolved: report.evolved, bestBaseline: report.bestBaseline.label, run: report.search.run.name, db: report.search.dbPath, report: charts.html })}\n`);
          return;
        }
        const rows = report.evolved ? [...report.baselines.rows, report.evolved] : report.baselines.rows;
        process.stdout.write(`\n${formatBaselines({ ...report.baselines, rows })}\n\n`);
        if (report.evolved) {
          const e = report.evolved.meanNormalized;
          const b = report.bestBaseline.meanNormalized;
          process.stdout.write(`evolved merge: mean normalised ${e.toFixed(4)} on the test split; best fixed recipe '${report.bestBaseline.label}': ${b.toFixed(4)} (${e >= b ? '+' : ''}${((e / b - 1) * 100).toFixed(2)}%)\n`);
        }
        process.stdout.write(`report: ${charts.html}\nrun database: ${report.search.dbPath}\nnext: evomerge best ${report.search.run.name} | evomerge lineage ${report.search.run.name} <candidate>\n`);
      } finally {
        progress.stop();
        if (barOn) bar.stop();
      }
    });
}
