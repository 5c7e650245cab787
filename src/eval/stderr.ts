/**
 * The standard error of an evaluator's score: how far its score on these items may lie from the
 * score the same model would get on unseen items of the same kind. A search compares hundreds of
 * candidates on one split, so this is the noise its best candidate is picked out of (src/search/noise.ts).
 *
 * - A mean of 0/1 item scores (accuracy, acc, acc_norm, exact match): the binomial standard error
 *   sqrt(p (1 - p) / n) (the plug-in estimate of the variance of a sample proportion; e.g. Agresti,
 *   "Categorical Data Analysis", 3rd ed., section 1.3.3). No finite-population correction: the
 *   population of interest is unseen data, not the split (src/candidate/fidelity.ts applies one,
 *   since there the population is the split itself).
 * - A ratio of sums over items (perplexity's loss = total NLL / total tokens): the ratio
 *   estimator's linearised variance, var(R) ~ sum_i (y_i - R x_i)^2 / (n (n - 1) xbar^2)
 *   (Cochran 1977, "Sampling Techniques", 3rd ed., eq. 6.9 with s^2 from eq. 6.13, no fpc), and
 *   for a smooth function g of it the delta method, se(g(R)) ~ |g'(R)| se(R).
 */

/** sqrt(p (1 - p) / n) for a proportion p on n items; undefined for no items. */
export function binomialSE(p: number, n: number): number | undefined {
  if (!(n > 0) || !Number.isFinite(p)) return undefined;
  const q = Math.min(1, Math.max(0, p));
  return Math.sqrt((q * (1 - q)) / n);
}

/**
 * The standard error of R = sum y / sum x over n items (each item a pair y_i, x_i: a text's
 * negative log-likelihood and its tokens), linearised (Cochran 1977, eq. 6.9 and 6.13); undefined
 * below 2 items or with no x.
 */
export function ratioSE(y: readonly number[], x: readonly number[]): number | undefined {
  const n = y.length;
  if (n < 2 || x.length !== n) return undefined;
  const sx = x.reduce((a, b) => a + b, 0);
  if (!(sx > 0)) return undefined;
  const r = y.reduce((a, b) => a + b, 0) / sx;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (y[i]! - r * x[i]!) ** 2;
  const xbar = sx / n;
  return Math.sqrt(ss / (n * (n - 1) * xbar * xbar));
}
