/**
 * Two-point step-size adaptation (TPA) for CMA-ES: N. Hansen, "CMA-ES with Two-Point Step-Size
 * Adaptation", INRIA research report RR-6527 (2008), as pycma 4.x implements it in
 * `sigma_adaptation.CMAAdaptSigmaTPA` (github.com/CMA-ES/pycma). The replacement of CSA (tutorial
 * eq. 43-44) that pycma uses for the separable variant above 299 dimensions: two points of each
 * generation are the mirrored last mean shift, m +/- sigma (m - m_old) rescaled, and sigma grows
 * when the one along the shift ranks better than the one against it.
 */

/** TPA damping, pycma `CMAAdaptSigmaTPA.initialize_settings`: 0.7 + 2 ln n + 2 ln max(1, lambda - n). */
export function tpaDamping(n: number, lambda: number): number {
  return 0.7 + 2 * Math.log(n) + 2 * Math.log(Math.max(1, lambda - n));
}

/**
 * TPA's two test points (pycma `ask_geno` with `mean_shift_samples`, which injects
 * `_prepare_injection_directions` = [m - m_old, m_old - m]): rows 0 and 1 of the lambda x n
 * standard normals Z become +/- `w`, the last mean shift whitened (D^-1 B^T (m - m_old)),
 * rescaled to the Mahalanobis length of a standard normal sample. The lengths come from the
 * rows' own fresh draws (each |z| is a chi_n sample, which is what pycma's
 * `_random_rescaling_factor_to_mahalanobis_size` draws). On a run's second iteration
 * (`independent`) pycma rescales the two directions independently; from the third on the second
 * is the exact mirror of the first. Returns the number of rows replaced: 2, or 0 when there is
 * no shift to mirror (the generation is sampled as usual).
 */
export function mirrorMeanShift(Z: Float64Array, w: Float64Array, n: number, independent: boolean): number {
  let ww = 0;
  for (let i = 0; i < n; i++) ww += w[i]! * w[i]!;
  if (!(ww > 0) || !Number.isFinite(ww)) return 0;
  let r0 = 0;
  let r1 = 0;
  for (let i = 0; i < n; i++) {
    r0 += Z[i]! * Z[i]!;
    r1 += Z[n + i]! * Z[n + i]!;
  }
  const a0 = Math.sqrt(r0 / ww);
  const a1 = independent ? Math.sqrt(r1 / ww) : a0;
  for (let i = 0; i < n; i++) {
    Z[i] = a0 * w[i]!;
    Z[n + i] = -a1 * w[i]!;
  }
  return 2;
}

/**
 * The TPA step (pycma `CMAAdaptSigmaTPA.update2`), from the f-values of the generation (minimised,
 * in asked order): z = (#{f < f_1} - #{f < f_0}) / (lambda - 1) in [-1, 1], positive when the
 * point along the last mean shift (slot 0) won; s <- (1 - c) s + c sign(z) |z|^(1/2) with
 * c = 0.3; sigma <- sigma exp(s / d). pycma applies it from a run's first iteration on, when the
 * first two points are not yet mirrors. Returns the new smoothed s and sigma.
 */
export function tpaStep(f: readonly number[], lambda: number, n: number, s: number, sigma: number): { s: number; sigma: number } {
  let below0 = 0;
  let below1 = 0;
  for (let k = 0; k < lambda; k++) {
    if (f[k]! < f[0]!) below0++;
    if (f[k]! < f[1]!) below1++;
  }
  const zr = (below1 - below0) / (lambda - 1);
  const ts = 0.7 * s + 0.3 * Math.sign(zr) * Math.sqrt(Math.abs(zr));
  return { s: ts, sigma: sigma * Math.exp(ts / tpaDamping(n, lambda)) };
}
