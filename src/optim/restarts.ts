/**
 * Restart strategies for CMA-ES, kept apart from the core (./cmaes.ts) as evosax and the
 * CyberAgent `cmaes` package keep theirs: when a run stops on a local test (pycma's termination
 * tests, ./cmaes-stop.ts), a new run starts with a larger population (IPOP) or alternates large
 * and small populations (BIPOP).
 *
 * - A. Auger and N. Hansen, "A Restart CMA Evolution Strategy With Increasing Population Size",
 *   CEC 2005 (IPOP): lambda grows by `incPopsize` at each restart.
 * - N. Hansen, "Benchmarking a BI-Population CMA-ES on the BBOB-2009 Function Testbed",
 *   GECCO 2009 (BIPOP): a large regime that grows as IPOP's and a small one with
 *   lambda_s = floor(lambda_def (lambda_l / (2 lambda_def))^(u^2)) and
 *   sigma0_s = sigma0 10^(-2 u'), u, u' ~ U(0, 1); the next run belongs to the regime that has
 *   used fewer evaluations.
 */
import type { Box } from './bounds.ts';
import type { Rng } from '../tensor/rng.ts';

/** BIPOP's bookkeeping (stored in the state; IPOP leaves it as init wrote it). */
export interface BipopState {
  largeEvals: number;
  smallEvals: number;
  largeLambda: number;
  regime: 'large' | 'small';
}

export interface RestartOptions {
  restarts: 'none' | 'ipop' | 'bipop';
  maxRestarts: number;
  incPopsize: number;
  restartFromRandom: boolean;
}

/** The run that has just stopped, as the restart rules see it. */
export interface StoppedRun {
  /** Why it stopped (a pycma termination name). */
  reason: string;
  /** Its index (0 = first run). */
  run: number;
  lambda: number;
  evaluations: number;
  /** The search's default population size and initial step size (those of the first run). */
  defaultLambda: number;
  sigma0: number;
  /** The first run's mean, in the box (where a restart starts unless restartFromRandom). */
  x0: number[];
  bipop: BipopState;
  bounds: Box | null;
}

/** Settings of the next run. */
export interface NextRun {
  lambda: number;
  sigma0: number;
  /** Initial mean in the box (genome coordinates). */
  x0: number[];
  bipop: BipopState;
}

/**
 * Whether the stopped run ends the search: a target or budget reached (global reasons), no
 * restarts asked for, or the restarts used up.
 */
export function endsSearch(o: RestartOptions, stopped: Pick<StoppedRun, 'reason' | 'run'>): boolean {
  const global = stopped.reason === 'ftarget' || stopped.reason === 'maxfevals';
  return global || o.restarts === 'none' || stopped.run >= o.maxRestarts;
}

/**
 * The next run after one that stopped (call only when `endsSearch` is false). Draws from `rng`
 * in a fixed order (BIPOP's small regime: u, then u'; then the random mean, one draw per gene).
 */
export function nextRun(o: RestartOptions, stopped: StoppedRun, rng: Rng): NextRun {
  let lambda: number;
  let sigma0 = stopped.sigma0;
  const bp = { ...stopped.bipop };
  if (o.restarts === 'ipop') {
    lambda = Math.round(stopped.lambda * o.incPopsize);
  } else {
    // BIPOP: count the finished run into its regime, then run the regime that has used fewer
    // evaluations; the small regime draws lambda and sigma0 log-uniformly.
    if (bp.regime === 'large') bp.largeEvals += stopped.evaluations;
    else bp.smallEvals += stopped.evaluations;
    if (stopped.run === 0 || bp.smallEvals >= bp.largeEvals) {
      bp.regime = 'large';
      bp.largeLambda = Math.round(bp.largeLambda * o.incPopsize);
      lambda = bp.largeLambda;
    } else {
      bp.regime = 'small';
      const u = rng.next();
      lambda = Math.max(2, Math.floor(stopped.defaultLambda * (0.5 * bp.largeLambda / stopped.defaultLambda) ** (u * u)));
      sigma0 = stopped.sigma0 * 10 ** (-2 * rng.next());
    }
  }
  let x0 = stopped.x0;
  const box = stopped.bounds;
  if (o.restartFromRandom && box) x0 = box.lo.map((l, i) => l + (box.hi[i]! - l) * rng.next());
  return { lambda, sigma0, x0, bipop: bp };
}
