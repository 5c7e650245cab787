/**
 * An independent float64 forward of the residual MLP classifier format (README, "Residual MLP
 * classifier format"), with plain loops, for the tests only. It reads config.json's fields itself
 * (defaults as the README states them) and shares no code with src/models/:
 *   h = input(x * input_scale + input_offset)
 *   h = h * scale_i + fc2(act(fc1(norm_i(h * scale_i))))   for each block i (scale 1 but in a layer path)
 *   logits[name] = heads.name(norm(h))
 * with every linear layer y = x W^T + b, W stored [out, in], and LayerNorm with the biased variance.
 */

/** The config.json fields the forward reads. */
export interface MlpReferenceConfig {
  input_size: number;
  hidden_size: number;
  intermediate_size?: number;
  num_blocks: number;
  activation?: string;
  norm?: string;
  layer_norm_eps?: number;
  input_scale?: number;
  input_offset?: number;
  heads: ReadonlyArray<{ name: string; num_classes: number }>;
}

/** erf by its Maclaurin series (Abramowitz and Stegun 7.1.5); A&S 7.1.26 is too coarse for 1e-5. */
function erf(z: number): number {
  let sum = 0;
  let term = z;
  for (let n = 0; n < 60; n++) {
    sum += term / (2 * n + 1);
    term *= (-z * z) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

function activation(name: string): (v: number) => number {
  switch (name) {
    case 'relu':
      return (v) => Math.max(0, v);
    case 'tanh':
      return Math.tanh;
    case 'silu':
      return (v) => v / (1 + Math.exp(-v));
    case 'gelu':
      // exact gelu: x * Phi(x) (Hendrycks and Gimpel 2016)
      return (v) => 0.5 * v * (1 + erf(v / Math.SQRT2));
    default:
      throw new Error(`mlp reference: no activation '${name}'`);
  }
}

/**
 * Logits of every head for one input row `x` (raw features), from tensors under their checkpoint
 * names. `scales[i]` multiplies the hidden state entering block i (a data-flow layer path; default 1).
 */
export function mlpReferenceLogits(w: ReadonlyMap<string, Float32Array>, c: MlpReferenceConfig, x: readonly number[], scales?: readonly number[]): Record<string, number[]> {
  const hidden = c.hidden_size;
  const inner = c.intermediate_size ?? hidden;
  const eps = c.layer_norm_eps ?? 1e-5;
  const act = activation(c.activation ?? 'relu');
  const lin = (name: string, v: number[], out: number) => {
    const W = w.get(`${name}.weight`)!;
    const b = w.get(`${name}.bias`)!;
    return Array.from({ length: out }, (_, r) => v.reduce((s, vi, k) => s + W[r * v.length + k]! * vi, b[r]!));
  };
  const norm = (name: string, v: number[]) => {
    if ((c.norm ?? 'layernorm') === 'none') return v;
    const m = v.reduce((a, b) => a + b, 0) / v.length;
    const va = v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length;
    return v.map((t, i) => ((t - m) / Math.sqrt(va + eps)) * w.get(`${name}.weight`)![i]! + w.get(`${name}.bias`)![i]!);
  };
  let h = lin('input', x.map((v) => v * (c.input_scale ?? 1) + (c.input_offset ?? 0)), hidden);
  for (let b = 0; b < c.num_blocks; b++) {
    const s = scales?.[b] ?? 1;
    if (s !== 1) h = h.map((v) => v * s);
    const o = lin(`blocks.${b}.fc2`, lin(`blocks.${b}.fc1`, norm(`blocks.${b}.norm`, h), inner).map(act), hidden);
    h = h.map((v, i) => v + o[i]!);
  }
  const out = norm('norm', h);
  return Object.fromEntries(c.heads.map((head) => [head.name, lin(`heads.${head.name}`, out, head.num_classes)]));
}
