/** `evomerge worker`: evaluate candidates of live runs from a BullMQ queue on Redis (src/queue). */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { InputError } from '../../errors.ts';
import { BACKEND_CHOICES, type BackendChoice } from '../../models/index.ts';
import { parseQueueUrl, runQueueWorker } from '../../queue/index.ts';
import { gpusFlag } from './search.ts';

export function register(program: Command): void {
  program.command('worker')
    .description('take candidates of running searches from a Redis queue (evomerge search --queue) and evaluate them on this machine')
    .requiredOption('--queue <url>', 'the Redis the owners use: redis://host[:port][/db]')
    .option('--concurrency <n>', 'candidates evaluated at once (one per thread; native tfjs backends use one); with command evaluators only, the merge threads', '1')
    .option('--gpus <ids>', 'command evaluators: one evaluation slot per GPU of this machine (e.g. 0,1), given to the program as CUDA_VISIBLE_DEVICES and {gpu}')
    .option('--candidate-dir <dir>', 'where merged candidates are written for command evaluators (default: /dev/shm when they fit, else the temporary folder)')
    .option('--log-dir <dir>', 'where the command evaluators\' stderr is logged', 'evomerge-worker-logs')
    .option('--backend <name>', `tfjs backend on this machine, overriding the run's: ${BACKEND_CHOICES.join(', ')}`)
    .option('--run <name>', 'serve only this run')
    .option('--lock-seconds <s>', 'a candidate whose worker is silent this long (killed, cut off) goes to another worker', '30')
    .option('--json', 'print one JSON object when stopped')
    .action(async (o: { queue: string; concurrency: string; backend?: string; run?: string; lockSeconds: string; json?: boolean; gpus?: string; candidateDir?: string; logDir: string }) => {
      const url = parseQueueUrl(o.queue);
      const concurrency = Number(o.concurrency);
      if (!Number.isInteger(concurrency) || concurrency < 1) throw new InputError('E_BAD_FLAG', `--concurrency must be a positive integer, got '${o.concurrency}'`);
      const lockSeconds = Number(o.lockSeconds);
      if (!(lockSeconds >= 1)) throw new InputError('E_BAD_FLAG', `--lock-seconds must be a number of at least 1, got '${o.lockSeconds}'`);
      if (o.backend !== undefined && !(BACKEND_CHOICES as readonly string[]).includes(o.backend)) throw new InputError('E_BAD_FLAG', `--backend must be one of ${BACKEND_CHOICES.join(', ')}, got '${o.backend}'`);
      const controller = new AbortController();
      let stops = 0;
      const stop = () => {
        if (++stops > 1) process.exit(130);
        process.stderr.write('stopping after the candidates in flight (again to quit at once) ...\n');
        controller.abort();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      const r = await runQueueWorker({
        url, concurrency, backend: o.backend as BackendChoice | undefined, run: o.run, lockSeconds, signal: controller.signal,
        gpus: gpusFlag(o.gpus) ?? null, candidateDir: o.candidateDir === undefined ? null : resolve(o.candidateDir), logDir: resolve(o.logDir),
        onLog: (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`),
      });
      if (o.json) process.stdout.write(`${JSON.stringify(r)}\n`);
      else process.stdout.write(`worker stopped: ${r.completed} candidate${r.completed === 1 ? '' : 's'} evaluated${r.refused.length ? `; refused ${r.refused.join(', ')}` : ''}\n`);
    });
}
