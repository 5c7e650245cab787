/**
 * The gradient stage (space `refine`) as the search runs it: the search's caller gives it
 * (`gradientStage`, src/search/runtime.ts GradientStage), and the search's one stage loop
 * (src/search/loop.ts runStage) runs it as it runs every stage. Its optimizer starts at the PS
 * stage's best candidate (with the space's `select`, the one chosen on the selection split); each ask computes the gradient of the validation loss at the current
 * point (./gradient.ts) and proposes the next Adam step's genome (./adam.ts), one candidate with
 * operator 'gradient' whose parent is the previous point; the loop scores it like any PS
 * candidate and tells it back. The state (Adam's, with the candidate it started from and the last
 * step's loss) is committed with each step's candidate, so a resume continues at the step it
 * stopped. The gradient runs in the owner's process on a JS backend (wasm, else cpu): a native
 * backend lives in the evaluation thread only.
 */
import { InputError } from '../errors.ts';
import { useBackend } from '../models/backend.ts';
import { PsCodec } from '../space/index.ts';
import type { CandidateRow } from '../store/index.ts';
import { adamStep, initRefine, type RefineState } from './adam.ts';
import { dirname, join } from 'node:path';
import { loadManifest } from '../eval/manifest.ts';
import { commandCoefficientGradient, openCommandGradientEvaluators } from './command.ts';
import { coefficientGradient, refineItemsFromSpecs } from './gradient.ts';
import { checkCommandRefine } from './setup.ts';
import { checkRefine } from './preflight.ts';
import type { GradientStageInput } from '../search/runtime.ts';

/** The stage's state: Adam's, the PS candidate it started from, the loss at the last step's start. */
export interface GradientStageState {
  adam: RefineState;
  from: number;
  loss: number | null;
}

/** What the stage is given when it opens: search's contract for a gradient stage (search/runtime.ts). */
export type GradientStageOptions = GradientStageInput;

/** The stage's optimizer over GradientStageState, and the search log's line on each step's result. */
export async function openGradientStage(o: GradientStageOptions) {
  const cfg = o.space.refine;
  if (!cfg) throw new InputError('E_REFINE_SPACE', 'refine: the space has no refine section');
  const codec = o.codec;
  if (!(codec instanceof PsCodec)) throw new InputError('E_REFINE_SPACE', 'refine: gradient refinement needs a PS stage with one method (not a method list)');
  const backend = o.space.backend === 'cpu' ? 'cpu' : 'wasm';
  await useBackend(backend);
  // command evaluators with gradient: true (./command.ts), else the built-in evaluators' items (./gradient.ts)
  const commands = checkCommandRefine(o.evaluators.map((e) => ({ id: e.id, m: loadManifest(e.manifest) })), cfg.batch)
    ? openCommandGradientEvaluators(o.evaluators, { logDir: join(dirname(o.store.path), 'evaluators') })
    : null;
  const items = commands ? null : refineItemsFromSpecs(o.evaluators, o.sources, o.configFrom);
  // the loss of the step whose candidate is scored next (a resumed stage: the stored step's)
  let loss = (o.store.latestGeneration(o.run.id, o.stage)?.state as GradientStageState | undefined)?.loss ?? null;
  return {
    init(): GradientStageState {
      const best = o.start ?? o.store.best(o.run.id, 1).find((c) => c.stage === 0);
      if (!best) throw new InputError('E_REFINE_START', 'refine: the PS stage has no successful candidate to refine');
      o.onLog(`refine: ${cfg.steps} Adam steps from candidate ${best.id} (fitness ${best.fitness}), loss ${cfg.loss}, lr ${cfg.lr}, backend ${backend}`);
      return { adam: initRefine(best.genome, { lr: cfg.lr }), from: best.id, loss: null };
    },
    async ask(state: unknown) {
      const s = state as GradientStageState;
      const g = commands
        ? await commandCoefficientGradient({ codec, genome: s.adam.genome, sources: o.sources, evaluators: commands, loss: cfg.loss, step: s.adam.step + 1 })
        : await coefficientGradient({ codec, genome: s.adam.genome, sources: { models: o.sources }, evaluators: items!, loss: cfg.loss, batch: cfg.batch, seed: s.adam.step });
      const adam = adamStep(s.adam, g.gradient);
      loss = g.loss;
      // the parent: the PS best for the first step, the step before for the others
      const parent = adam.step === 1 ? s.from : `refine-${adam.step - 1}`;
      const next: GradientStageState = { adam, from: s.from, loss: g.loss };
      return { proposals: [{ id: `refine-${adam.step}`, genome: adam.genome, parentIds: [parent], operator: 'gradient' }], state: next, generation: adam.step };
    },
    // Adam follows the loss, not the scores: a told step changes nothing
    tell: (state: unknown) => state,
    isDone: (state: unknown) => ((state as GradientStageState).adam.step >= cfg.steps ? `refine: ${cfg.steps} steps` : null),
    resultLine: (c: CandidateRow) => `refine step ${c.generation}: loss ${loss?.toFixed(5)}, fitness ${c.fitness ?? 'failed'}`,
    /** Stops the command evaluators' programs (a persistent one runs for the whole stage). */
    close: async () => {
      await Promise.all((commands ?? []).map((e) => e.ev.close()));
    },
  };
}

/** The gradient stage a search is given (SearchRuntime.gradient): its preflight and its optimizer. */
export const gradientStage = { check: checkRefine, open: openGradientStage };
