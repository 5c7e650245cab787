/**
 * The one candidate handler: what a thread of the local pool (src/pool/thread.mjs loads this
 * module) and a queue worker's threads (src/queue/consumer.ts runs the same pool) do with one
 * candidate of a search, wherever it runs.
 *
 * `createHandler(data)` is called once per thread with the stage's WorkerData: the sources'
 * catalogues (headers and configs; tensors are read from the files on demand, a hybrid run's
 * merged PS best is viewed in shared memory), the evaluators with their weights, the backend,
 * the objective and whether a test split may be scored. It sets the thread up once: opens the
 * evaluators, loads the TensorFlow.js backend only if some evaluator runs the model itself, and
 * makes the thread's CandidateBuilder (pooled reader, tokenizers, uploaded DFS sources).
 *
 * It returns the function that turns one CandidateTask into a CandidateScore, in three phases:
 * 1. plan: a PS recipe is planned against the catalogues, so a bad recipe fails as itself; an
 *    injected fault (EVOMERGE_FAULTS, ./faults.ts) then takes the evaluation's place;
 * 2. build: the merged model (PS: merged tensor by tensor as the backend reads them; DFS: the
 *    layer path over the sources) and, for command evaluators, its folder (./build.ts);
 * 3. score: every evaluator, or a race on item subsets with multi-fidelity (./score.ts); the
 *    model and the folder are freed whatever happens.
 * An error thrown here is the pool's 'error' outcome: the candidate is recorded as failed.
 *
 * A task with `build` (the pipelined runner of a stage whose evaluators are all commands,
 * src/pool/pipeline.ts) stops after phase 2: the candidate is written to a folder of its own
 * under `build.dir`, kept, and returned (BuiltFolder); the evaluation slot that scores it lives
 * in the process that owns the run, not in this thread.
 */
import { useBackend, type BackendInfo } from '../models/index.ts';
import { CandidateBuilder, planCandidate } from './build.ts';
import { injectFault, parseInjectedFaults } from './faults.ts';
import { openEvaluators, scoreCandidate } from './score.ts';
import type { BuiltFolder, CandidateScore, CandidateTask, WorkerData } from './types.ts';

export async function createHandler(data: WorkerData): Promise<(task: CandidateTask) => Promise<CandidateScore | BuiltFolder>> {
  const faults = parseInjectedFaults(process.env.EVOMERGE_FAULTS);
  const evaluators = openEvaluators(data);
  // the backend (TensorFlow.js) is loaded only when some evaluator runs the model itself
  const needsModel = evaluators.some((e) => e.ev.needsModel);
  const backend: BackendInfo | null = needsModel ? await useBackend(data.backend) : null;
  const builder = new CandidateBuilder(data, needsModel);

  return async (task: CandidateTask): Promise<CandidateScore | BuiltFolder> => {
    const plan = task.kind === 'ps' ? planCandidate(task.recipe, data.sources) : null;
    const fault = task.candidateId === undefined ? undefined : faults.get(task.candidateId);
    if (fault) return injectFault(fault, task.candidateId!);
    if (task.build) return builder.folder(task, plan, task.build.dir);
    const candidate = task.kind === 'ps' ? builder.ps(task, plan!) : builder.dfs(task);
    try {
      return await scoreCandidate(evaluators, candidate, { backend, objective: data.objective, fidelity: task.fidelity, ...(task.candidateId !== undefined ? { requestId: String(task.candidateId) } : {}) });
    } finally {
      candidate.dispose();
    }
  };
}
