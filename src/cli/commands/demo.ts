import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { InputError } from '../../errors.ts';
import { runDemo } from '../demo.ts';
import { SEARCH_RUNTIME } from '../runtime.ts';
import { formatBaselines } from '../../zoo/baselines.ts';
import { progressReporter } from './search.ts';
import { dirname, join } from 'node:path';
import { writeRunReport } from '../../report/index.ts';
import { describeStop } from '../../search/loop.ts';
import { outputClosed } from '../pipes.ts';

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
          runtime: SEARCH_RUNTIME,
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
        if (progress.interrupted()) process.exitCode = 130;
        // nobody reads the rest (`evomerge demo | head`): the run is stopped and resumable
        if (outputClosed('stdout') || outputClosed('stderr')) return;
        const search = report.search;
        const stageBudget = search.run.settings?.budget ?? {};
        if (search.alreadyFinished) say(`run '${search.run.name}' is finished (${search.reason}); showing its best (delete ${dirname(search.dbPath)} for a fresh search)`);
        for (const st of search.stages) say(`search stage ${st.stage} ended: ${describeStop(st.reason, stageBudget)} (${st.evaluated} evaluated, ${st.reused} reused, ${st.failed} failed)`);
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
          // points of mean normalised accuracy, as README quotes them
          process.stdout.write(`evolved merge: mean normalised ${e.toFixed(4)} on the test split; best fixed recipe '${report.bestBaseline.label}': ${b.toFixed(4)} (${e >= b ? '+' : ''}${((e - b) * 100).toFixed(2)} points)\n`);
        }
        const name = search.run.name;
        process.stdout.write(`report: ${charts.html}\nrun database: ${search.dbPath}\nnext: evomerge best ${name}${search.best ? ` | evomerge lineage ${name} ${search.best.id}` : ''} | evomerge export ${name} --best\n`);
      } finally {
        progress.stop();
        if (barOn) bar.stop();
      }
    });
}
