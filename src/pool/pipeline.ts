/**
 * The pipelined runner of a stage whose evaluators are all commands: merging (CPU and disk) and
 * scoring (the GPU) are separate resources, so they run side by side. Pool threads merge each
 * candidate into a folder of its own (the handler's `build` task, src/candidate/handler.ts);
 * the evaluation slots of this process score the folders (src/candidate/slots.ts), one
 * candidate per slot at a time, and the folder is removed once scored. The runner takes
 * `slots + ahead` candidates at once, so while a slot scores candidate k, candidate k+1 is merged,
 * and a slot waits for a merge only when merging is slower than scoring. `ahead` (at most that
 * many candidates merged or being merged beyond those being scored) is what the memory and disk
 * plan allowed (src/search/preflight.ts).
 *
 * Every task still gets one outcome: a failed merge is the pool's outcome; a failed score is an
 * 'error' outcome with the evaluator's reason; either way the phases known so far are kept.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { EvaluationSlots, sweepCandidateFolders, type BuiltFolder, type CandidateOutcome, type CandidateRunner, type CandidateScore, type CandidateTask, type EvaluationPlan, type WorkerData } from '../candidate/index.ts';
import { candidatePool } from './candidate-pool.ts';

export interface PipelinedRunner extends CandidateRunner {
  readonly slots: EvaluationSlots;
}

export function pipelinedRunner(o: { data: WorkerData; workers: number; timeoutMs?: number; evaluation: EvaluationPlan; graceMs?: number }): PipelinedRunner {
  const { evaluation } = o;
  mkdirSync(evaluation.candidateDir, { recursive: true });
  if (evaluation.logDir) mkdirSync(evaluation.logDir, { recursive: true });
  // folders of a killed session would otherwise fill a tmpfs (memory) until reboot
  sweepCandidateFolders(evaluation.candidateDir);
  const pool = candidatePool({ data: { ...o.data, candidateDir: evaluation.candidateDir }, workers: o.workers, timeoutMs: o.timeoutMs });
  const slots = new EvaluationSlots(o.data, evaluation.slots, { logDir: evaluation.logDir, graceMs: o.graceMs });
  return {
    threads: slots.count + evaluation.ahead,
    slots,
    async run(task: CandidateTask): Promise<CandidateOutcome> {
      const t0 = performance.now();
      const built = await pool.run({ ...task, build: { dir: evaluation.candidateDir } });
      if (!built.ok) return built;
      const value = built.value as CandidateScore | BuiltFolder;
      // an injected fault (src/candidate/faults.ts) returns its score in place of the folder
      if (!('folder' in value)) return { ...built, value };
      try {
        const s = await slots.score(value.folder, { candidateId: task.candidateId, fidelity: task.fidelity });
        return { ok: true, value: { ...s.score, phases: { ...value.phases, scoreStart: s.scoreStart, scoreEnd: s.scoreEnd, slot: s.slot } }, ms: performance.now() - t0, worker: built.worker };
      } catch (err) {
        const e = err as Error & { slot?: string; scoreStart?: number; scoreEnd?: number };
        return { ok: false, kind: 'error', error: e.message || String(err), ms: performance.now() - t0, worker: built.worker, phases: { ...value.phases, scoreStart: e.scoreStart, scoreEnd: e.scoreEnd, slot: e.slot } };
      } finally {
        rmSync(value.root, { recursive: true, force: true });
      }
    },
    utilisation: () => slots.utilisation(),
    async close() {
      await Promise.all([pool.close(), slots.close()]);
    },
  };
}
