/**
 * Injected faults, a testing aid for `evomerge bench faults` (src/bench/faults.ts) and the fault
 * tests, never set in normal use: EVOMERGE_FAULTS makes chosen candidates fail in each of the ways
 * a real evaluation can, so the search's handling of every failure is exercised end to end.
 */
import { InputError } from '../errors.ts';
import type { CandidateScore } from './types.ts';

export type InjectedFault = 'throw' | 'hang' | 'nan' | 'exit' | 'kill';

/**
 * EVOMERGE_FAULTS lists `fault@candidateId` pairs (e.g. `throw@3,hang@5,nan@7,exit@9,kill@11`).
 * That candidate's evaluation (after its merge is planned, for a PS recipe) throws, hangs (until
 * the pool's timeout terminates the thread), returns NaN, ends its worker thread, or SIGKILLs the
 * whole process. Read once per worker thread.
 */
export function parseInjectedFaults(text: string | undefined): Map<number, InjectedFault> {
  const out = new Map<number, InjectedFault>();
  for (const part of (text ?? '').split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^(throw|hang|nan|exit|kill)@(\d+)$/.exec(part);
    if (!m) throw new InputError('E_FAULTS_SPEC', `EVOMERGE_FAULTS: '${part}' is not fault@candidateId with fault one of throw, hang, nan, exit, kill`);
    out.set(Number(m[2]), m[1] as InjectedFault);
  }
  return out;
}

/** Play a fault in place of candidate `id`'s evaluation. */
export async function injectFault(fault: InjectedFault, id: number): Promise<CandidateScore> {
  if (fault === 'throw') throw new Error(`injected fault: the evaluator of candidate ${id} threw`);
  if (fault === 'nan') return { fitness: NaN, metrics: [{ evaluator: 'injected', metric: 'fitness', value: NaN }] };
  if (fault === 'exit') process.exit(70); // in a worker thread this ends the thread only
  if (fault === 'kill') process.kill(process.pid, 'SIGKILL');
  return new Promise<never>(() => {}); // hang: only the pool's timeout ends it
}
