/** `evomerge export <run>`: the chosen candidates as recipe JSON, mergekit YAML, a merged folder and a model card. */
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { InputError } from '../../errors.ts';
import { exportCandidates, parseExportFormats, testScoresOnZoo } from '../../report/index.ts';
import { openRun } from '../../search/inspect.ts';

export function register(program: Command): void {
  program
    .command('export')
    .description('export the best candidates of a run: recipe JSON, mergekit YAML, the merged model folder and a model card')
    .argument('<run>', 'run name')
    .option('-o, --output <dir>', 'output folder, one candidate-<id> folder per candidate (default: export/ beside the run database, runs/<run>/export for a run in runs/)')
    .option('--candidate <id>', 'one candidate by id')
    .option('--best', 'the best candidate (the default)')
    .option('--top <k>', 'the K best (the Pareto front, at most K, for a multi-objective run)')
    .option('--format <list>', 'comma-separated: recipe, mergekit, model, card', 'recipe,mergekit,model,card')
    .option('--no-test-scores', 'do not score the candidate on the zoo\'s test split for the card')
    .option('--db <path>', 'run database (default runs/<run>/run.sqlite)')
    .option('--json', 'print one JSON object')
    .action(async (runName: string, o: { output?: string; candidate?: string; best?: boolean; top?: string; format: string; testScores: boolean; db?: string; json?: boolean }) => {
      const int = (flag: string, v: string | undefined) => {
        if (v === undefined) return undefined;
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1) throw new InputError('E_BAD_FLAG', `${flag} must be a positive integer, got '${v}'`);
        return n;
      };
      const formats = parseExportFormats(o.format);
      const { store, run, dbPath } = openRun(runName, o.db);
      try {
        const out = await exportCandidates(store, run, o.output ?? join(dirname(dbPath), 'export'), {
          candidate: int('--candidate', o.candidate), best: o.best, top: int('--top', o.top), formats,
          testScores: o.testScores && formats.includes('card') ? testScoresOnZoo(run) : undefined,
          onLog: o.json ? undefined : (l) => process.stderr.write(`${l}\n`),
        });
        if (o.json) {
          process.stdout.write(`${JSON.stringify({ run: run.name, candidates: out })}\n`);
          return;
        }
        for (const c of out) {
          process.stdout.write(`candidate ${c.id} (fitness ${c.fitness}): ${c.dir}\n`);
          for (const s of c.skipped) process.stdout.write(`  not exported as ${s.format}: ${s.reason}\n`);
        }
      } finally {
        store.close();
      }
    });
}
