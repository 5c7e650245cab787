/**
 * CMA-ES strategy parameters: the tutorial's Table 1 (N. Hansen, "The CMA Evolution Strategy: A
 * Tutorial", arXiv:1604.00772, eq. 48-58) with pycma 4.x's values (github.com/CMA-ES/pycma:
 * `evolution_strategy._CMAParameters.set`, negative weights in
 * `recombination_weights.RecombinationWeights.finalize_negative_weights`, c_sigma and d_sigma in
 * `sigma_adaptation.CMAAdaptSigmaCSA.initialize`). They depend on n and lambda only, are
 * computed at the start of every run (./cmaes.ts) and stored in the state (pycma's names; see
 * CmaesParams for the tutorial's symbols).
 */
import type { CmaesParams } from './cmaes-state.ts';

/** Default population size, tutorial eq. (48). */
export function defaultPopsize(n: number): number {
  return 4 + Math.floor(3 * Math.log(n));
}

/**
 * Recombination weights before the negative ones are scaled: w'_i = ln((lambda+1)/2) - ln i,
 * i = 1..lambda (eq. 49); the positive ones normalised to sum 1 (eq. 53), mu = their number,
 * mu_eff = 1 / sum w_i^2 over them (eq. 8, as they sum to 1), mu_eff^- of the negative raw ones.
 */
function recombinationWeights(lambda: number) {
  const raw = Array.from({ length: lambda }, (_, i) => Math.log((lambda + 1) / 2) - Math.log(i + 1));
  let mu = 0;
  while (mu < lambda && raw[mu]! > 0) mu++;
  const sumPos = raw.slice(0, mu).reduce((a, b) => a + b, 0);
  const weights = raw.map((w) => (w > 0 ? w / sumPos : w));
  const mu_eff = 1 / weights.slice(0, mu).reduce((a, w) => a + w * w, 0);
  const neg = raw.slice(mu);
  const sumNegRaw = neg.reduce((a, b) => a + b, 0);
  const mu_eff_minus = sumNegRaw === 0 ? 0 : (sumNegRaw * sumNegRaw) / neg.reduce((a, w) => a + w * w, 0);
  return { raw, mu, weights, mu_eff, sumNegRaw, mu_eff_minus };
}

/** The covariance learning rates c1, cmu and the cumulation rate c_c, full or separable. */
function covarianceRates(n: number, lambda: number, mu_eff: number, separable: boolean): { c1: number; cmu: number; c_c: number } {
  let c1: number;
  let cmu: number;
  let c_c: number;
  if (!separable) {
    // pycma: c1 = min(1, lambda/6) * 2 / ((n+1.3)^2 + mu_eff)  (eq. 57, alpha_cov = 2)
    c1 = (Math.min(1, lambda / 6) * 2) / ((n + 1.3) ** 2 + mu_eff);
    // pycma: cmu = min(1 - c1, 2 (0.25 + mu_eff + 1/mu_eff - 2) / ((n+2)^2 + mu_eff))  (eq. 58 with offset 1/4)
    cmu = Math.min(1 - c1, (2 * (0.25 + mu_eff + 1 / mu_eff - 2)) / ((n + 2) ** 2 + mu_eff));
    // c_c = (4 + mu_eff/n) / (n + 4 + 2 mu_eff/n)  (eq. 56)
    c_c = (4 + mu_eff / n) / (n + 4 + (2 * mu_eff) / n);
  } else {
    // pycma: c1_sep = 1 / (n + 2 sqrt(n) + mu_eff/n)  (conedf with df = n)
    c1 = 1 / (n + 2 * Math.sqrt(n) + mu_eff / n);
    // pycma: cmu_sep = min(1 - c1_sep, (0.25 + mu_eff + 1/mu_eff - 2) / (n + 4 sqrt(n) + mu_eff/2))  (cmudf)
    cmu = Math.min(1 - c1, (0.25 + mu_eff + 1 / mu_eff - 2) / (n + 4 * Math.sqrt(n) + mu_eff / 2));
    // pycma: cc_sep = (1 + 1/n + mu_eff/n) / (sqrt(n) + 1/n + 2 mu_eff/n)
    c_c = (1 + 1 / n + mu_eff / n) / (Math.sqrt(n) + 1 / n + (2 * mu_eff) / n);
  }
  // Every learning rate capped so no decay factor can turn negative, also with the huge
  // populations of late IPOP restarts (CyberAgent cmaes 0.9.1 leaves the sep rates uncapped).
  c1 = Math.min(c1, 1);
  cmu = Math.max(0, Math.min(cmu, 1 - c1));
  c_c = Math.min(c_c, 1);
  return { c1, cmu, c_c };
}

/**
 * Active CMA's negative weights (eq. 50-53; pycma finalize_negative_weights), in place on
 * `weights[mu..]`: sum |w-| = alpha_mu^- = 1 + c1/cmu (eq. 50), then limited by
 * alpha_posdef^- = (1 - c1 - cmu)/(cmu n) (eq. 52, full CMA only) and
 * alpha_mueff^- = 1 + 2 mu_eff^-/(mu_eff + 2) (eq. 51). Without active CMA they are 0.
 */
function scaleNegativeWeights(
  weights: number[], raw: readonly number[], mu: number, sumNegRaw: number,
  rates: { n: number; lambda: number; mu_eff: number; mu_eff_minus: number; c1: number; cmu: number; separable: boolean; active: boolean },
): void {
  const { n, lambda, mu_eff, mu_eff_minus, c1, cmu, separable, active } = rates;
  if (active && lambda > mu && cmu > 0) {
    const setSum = 1 + c1 / cmu;
    let factor = setSum / Math.abs(sumNegRaw);
    let sumNeg = setSum;
    const limits = [1 + (2 * mu_eff_minus) / (mu_eff + 2)];
    if (!separable) limits.unshift((1 - c1 - cmu) / cmu / n);
    for (const lim of limits) {
      if (sumNeg > lim) {
        factor *= lim / sumNeg;
        sumNeg = lim;
      }
    }
    for (let i = mu; i < lambda; i++) weights[i] = raw[i]! * factor;
  } else {
    for (let i = mu; i < lambda; i++) weights[i] = 0;
  }
}

/**
 * Strategy parameters as pycma computes them (`_CMAParameters.set`, `CMAAdaptSigmaCSA.initialize`,
 * `RecombinationWeights`); the separable ones from the same file (c1_sep, cmu_sep, cc_sep).
 */
export function cmaesParams(n: number, lambda: number, separable: boolean, active = true): CmaesParams {
  const { raw, mu, weights, mu_eff, sumNegRaw, mu_eff_minus } = recombinationWeights(lambda);
  const { c1, cmu, c_c } = covarianceRates(n, lambda, mu_eff, separable);
  scaleNegativeWeights(weights, raw, mu, sumNegRaw, { n, lambda, mu_eff, mu_eff_minus, c1, cmu, separable, active });
  // CSA (pycma CMAAdaptSigmaCSA.initialize): c_sigma = (mu_eff + 2) / (n + mu_eff + 3),
  // d_sigma = 1 + 2 max(0, sqrt((mu_eff-1)/(n+1)) - 1) + c_sigma  (eq. 55 with pycma's +3)
  const c_sigma = Math.min(1, (mu_eff + 2) / (n + mu_eff + 3));
  const d_sigma = 1 + 2 * Math.max(0, Math.sqrt((mu_eff - 1) / (n + 1)) - 1) + c_sigma;
  // E||N(0,I)|| ~ sqrt(n)(1 - 1/(4n) + 1/(21 n^2))  (tutorial, after eq. 44)
  const chiN = Math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n));
  // pycma: lazy_update_gap = 1 / (c1 + cmu) / n / 10 iterations
  const lazyGap = 1 / (c1 + cmu + 1e-23) / n / 10;
  return { lambda, mu, weights, mueff: mu_eff, cc: c_c, cs: c_sigma, c1, cmu, damps: d_sigma, chiN, lazyGap };
}
