/**
 * Adam (Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization", Algorithm 1) over the
 * normalised genome, as a pure function of JSON state, so the engine stores it and resumes exactly.
 * The step is projected back onto the box [0,1]^n (projected gradient descent).
 */
import { InputError } from '../errors.ts';

export interface RefineState {
  kind: 'adam';
  step: number;
  genome: number[];
  m: number[];
  v: number[];
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  bestLoss: number | null;
}

export function initRefine(genome: number[], options: { lr?: number } = {}): RefineState {
  const lr = options.lr ?? 0.02;
  if (!(lr > 0) || !Number.isFinite(lr)) throw new InputError('E_REFINE_LR', `refine: lr must be a positive number, got ${lr}`);
  return {
    kind: 'adam', step: 0, genome: genome.map((g) => Math.min(1, Math.max(0, g))),
    m: genome.map(() => 0), v: genome.map(() => 0), lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, bestLoss: null,
  };
}

/** One Adam update of the genome by `gradient` (dL/dgene); minimises. Returns a new state. */
export function adamStep(state: RefineState, gradient: number[]): RefineState {
  if (gradient.length !== state.genome.length) throw new InputError('E_REFINE_GRADIENT', `refine: the gradient has ${gradient.length} entries but the genome ${state.genome.length}`);
  if (!gradient.every(Number.isFinite)) throw new InputError('E_REFINE_GRADIENT', 'refine: the gradient has a non-finite entry; lower the learning rate or check the loss');
  const { beta1: b1, beta2: b2, eps, lr } = state;
  const t = state.step + 1;
  const m = state.m.map((mi, i) => b1 * mi + (1 - b1) * gradient[i]!); // m_t = b1 m + (1 - b1) g
  const v = state.v.map((vi, i) => b2 * vi + (1 - b2) * gradient[i]! ** 2); // v_t = b2 v + (1 - b2) g^2
  const c1 = 1 - b1 ** t;
  const c2 = 1 - b2 ** t;
  // theta_t = theta - lr mhat / (sqrt(vhat) + eps), mhat = m / (1 - b1^t), vhat = v / (1 - b2^t)
  const genome = state.genome.map((g, i) => Math.min(1, Math.max(0, g - (lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + eps))));
  return { ...state, step: t, genome, m, v };
}
