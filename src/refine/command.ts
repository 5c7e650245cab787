/**
 * The gradient stage through command evaluators (manifest `gradient: true`, src/eval/protocol.ts):
 * the candidate is written as a folder, as for scoring; its program is asked for its loss and
 * writes dLoss/dW for the merged tensors as a safetensors file; evomerge checks the file against
 * the candidate's tensors and chains it to the merge coefficients by the same chain rule as the
 * built-in evaluators' autodiff (./chain.ts, ./coefficients.ts). So the stage runs for any
 * architecture and framework whose evaluator can backpropagate. With several evaluators the loss
 * is the weighted sum of theirs, and so is its gradient.
 *
 * A malformed gradient file (not safetensors, a tensor missing, another name, shape or dtype,
 * a non-finite value) fails the step with an error that names the tensor; the stage (and the
 * run) then stops, the steps before it kept, and `evomerge resume` retries that step.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CandidateBuilder, planCandidate, type SourceModels } from '../candidate/index.ts';
import { SafetensorsFile } from '../checkpoint/safetensors.ts';
import { InputError, NotSupportedError } from '../errors.ts';
import { CommandEvaluator, CommandFailedError } from '../eval/command.ts';
import { createEvaluator } from '../eval/evaluator.ts';
import { loadManifest } from '../eval/manifest.ts';
import { PsCodec } from '../space/ps.ts';
import { chainToGenes, geneLinks, linearizeTasks } from './chain.ts';
import { checkRefinableEvaluator, checkRefinableMethod } from './setup.ts';

/** A command evaluator of the stage with its weight in the loss. */
export interface CommandGradientEvaluator {
  id: string;
  weight: number;
  ev: CommandEvaluator;
}

/** The stage's command evaluators, each opened once for the stage (a persistent program is started once); `logDir` keeps their stderr. */
export function openCommandGradientEvaluators(specs: ReadonlyArray<{ id: string; manifest: string; weight: number }>, o: { logDir?: string | null } = {}): CommandGradientEvaluator[] {
  return specs.map((s) => {
    const m = loadManifest(s.manifest);
    checkRefinableEvaluator(m, s.id);
    const ev = createEvaluator(m, { purpose: 'search', command: { log: o.logDir ? join(o.logDir, `${s.id}.refine.log`) : null } });
    if (!(ev instanceof CommandEvaluator)) throw new InputError('E_REFINE_EVALUATOR', `refine: evaluator '${s.id}' (${s.manifest}) is not a command evaluator`);
    return { id: s.id, weight: s.weight, ev };
  });
}

/**
 * The tensors of a gradient file, checked against the candidate's: every name in `expected`
 * present, float32, of its shape and finite; no name the candidate folder lacks. Errors name
 * the evaluator, the file and the tensor.
 */
export function readGradientFile(path: string, expected: ReadonlyMap<string, readonly number[]>, folderTensors: ReadonlySet<string>, who: string): Map<string, Float32Array> {
  let f: SafetensorsFile;
  try {
    f = SafetensorsFile.open(path);
  } catch (err) {
    throw new CommandFailedError('E_REFINE_GRADIENT_FILE', `${who} was to write the gradient to ${path}, but that is not a readable safetensors file: ${(err as Error).message}`);
  }
  try {
    for (const name of f.names()) {
      if (!folderTensors.has(name)) throw new CommandFailedError('E_REFINE_GRADIENT_FILE', `${who} wrote a gradient for tensor '${name}', which the candidate folder does not have; name each gradient as the tensor it is of`);
    }
    const out = new Map<string, Float32Array>();
    for (const [name, shape] of expected) {
      if (!f.has(name)) throw new CommandFailedError('E_REFINE_GRADIENT_FILE', `${who} wrote no gradient for tensor '${name}' in ${path}; write every float tensor of the candidate folder (zeros for one the loss does not read)`);
      const info = f.info(name);
      if (info.dtype !== 'F32') throw new CommandFailedError('E_REFINE_GRADIENT_FILE', `${who} wrote the gradient of tensor '${name}' as ${info.dtype}; write it as float32 (F32)`);
      if (info.shape.join(',') !== shape.join(',')) throw new CommandFailedError('E_REFINE_GRADIENT_FILE', `${who} wrote the gradient of tensor '${name}' with shape [${info.shape.join(', ')}], but the tensor is [${shape.join(', ')}]`);
      const g = f.readFloat32(name);
      const bad = g.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) throw new CommandFailedError('E_REFINE_GRADIENT_FILE', `${who} wrote a non-finite gradient (${g[bad]}) for tensor '${name}' at element ${bad}; check the loss for overflow, or lower refine.lr`);
      out.set(name, g);
    }
    return out;
  } finally {
    f.close();
  }
}

export interface CommandGradientInput {
  codec: PsCodec;
  genome: number[];
  sources: SourceModels;
  evaluators: readonly CommandGradientEvaluator[];
  loss: 'supervised' | 'entropy';
  /** Names the requests (`refine-<step>-gradient`). */
  step: number;
  /** Where the candidate folder and the gradient files are written (default: the system's temporary folder). */
  dir?: string;
  signal?: AbortSignal;
}

/** The weighted loss of the command evaluators at `genome` and its gradient with respect to the genome (dL/dgene). */
export async function commandCoefficientGradient(input: CommandGradientInput): Promise<{ loss: number; gradient: number[] }> {
  const { codec, genome, sources } = input;
  if (!(codec instanceof PsCodec)) throw new InputError('E_REFINE_SPACE', 'refine: gradient refinement needs a parameter-space (PS) stage with one method; data-flow and multi-method stages are not refinable');
  checkRefinableMethod(codec.layout.method.id);
  const recipe = codec.decode(genome);
  const plan = planCandidate(recipe, sources);
  const links = geneLinks(codec, genome, plan, sources);
  const driven = [...new Set(links.map((l) => l.task))];
  for (const ti of driven) {
    if (plan.tasks[ti]!.rows) throw new NotSupportedError('E_REFINE_VOCAB', `refine: the sources' ${plan.tasks[ti]!.name} have different vocabularies (rows laid out per token, src/merge/vocab.ts), which refinement does not follow yet; refine over sources of one vocabulary`);
  }
  const expected = new Map(driven.map((ti) => [plan.tasks[ti]!.name, plan.tasks[ti]!.shape]));
  const folderTensors = new Set(plan.tasks.map((t) => t.name));
  const root = mkdtempSync(join(input.dir ?? tmpdir(), 'evomerge-refine-'));
  const builder = new CandidateBuilder({ sources, evaluators: [], backend: 'cpu', objective: 'weighted-sum', allowTestSplit: false }, false);
  try {
    const built = builder.folder({ kind: 'ps', recipe }, plan, root);
    let loss = 0;
    const total = new Map<number, Float32Array>();
    for (const e of input.evaluators) {
      const path = join(root, `${e.id}.gradient.safetensors`);
      const r = await e.ev.gradient({ backend: null, modelDir: () => built.folder, requestId: `refine-${input.step}-gradient`, ...(input.signal ? { signal: input.signal } : {}) }, { path, loss: input.loss });
      const G = readGradientFile(path, expected, folderTensors, `evaluator '${e.id}' (${e.ev.persistent ? 'persistent' : 'one-shot'} command)`);
      rmSync(path, { force: true });
      loss += e.weight * r.loss;
      for (const ti of driven) {
        const g = G.get(plan.tasks[ti]!.name)!;
        const acc = total.get(ti);
        if (!acc) total.set(ti, e.weight === 1 ? g : g.map((v) => v * e.weight));
        else for (let i = 0; i < g.length; i++) acc[i]! += e.weight * g[i]!;
      }
    }
    const lin = linearizeTasks(plan, driven, sources, recipe.seed);
    return { loss, gradient: chainToGenes(links, lin, total, genome.length) };
  } finally {
    builder.close();
    rmSync(root, { recursive: true, force: true });
  }
}
