/**
 * Composition of LoRA adapters of one base model (LoRA: Hu et al. 2021, https://arxiv.org/abs/2106.09685,
 * delta W = (alpha / r) B A, eq. 3).
 *
 * `lora_linear` (PSEC: Liu et al., "Skill Expansion and Composition in Parameter Space", ICLR 2025,
 * https://arxiv.org/abs/2502.05932, sec. 4): out = base + sum_i w_i (alpha_i / r_i) B_i A_i.
 * `lorahub` (Huang et al., "LoraHub", COLM 2024, https://arxiv.org/abs/2307.13269, sec. 3.1, eq. 1):
 * A = sum_i w_i A_i, B = sum_i w_i B_i, out = base + (alpha / r) B A; the adapters must share rank
 * and scale (LoraHub composes adapters of one configuration).
 * Tensors no adapter touches are the base's.
 */
import { MethodInputError } from './errors.ts';
import type { LoraFactorsInput, MergeMethod } from './types.ts';

const weightParam = { name: 'weight', scope: 'per-model', type: 'number', range: [-Infinity, Infinity], search: [-1.5, 1.5], default: 1, doc: 'coefficient of this adapter' } as const;

/** out += c * B A for B [o, r] and A [r, in]. */
function addBA(out: Float32Array, b: Float32Array, a: Float32Array, o: number, r: number, inF: number, c: number): void {
  const row = new Float64Array(inF);
  for (let i = 0; i < o; i++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const bik = b[i * r + k]!;
      if (bik === 0) continue;
      const off = k * inF;
      for (let j = 0; j < inF; j++) row[j] += bik * a[off + j]!;
    }
    const off = i * inF;
    for (let j = 0; j < inF; j++) out[off + j] = out[off + j]! + c * row[j]!;
  }
}

function checkShape(name: string, f: LoraFactorsInput, n: number): void {
  if (f.outFeatures * f.inFeatures !== n) {
    throw new MethodInputError('E_LORA_SHAPE', `tensor ${name}: adapter delta is [${f.outFeatures}, ${f.inFeatures}] but the base tensor has ${n} elements; the adapter was trained on another base`);
  }
}

export const loraLinear: MergeMethod = {
  id: 'lora_linear',
  title: 'LoRA linear composition (PSEC)',
  reference: 'https://arxiv.org/abs/2502.05932 (Liu et al., PSEC, ICLR 2025)',
  requiresBase: 'required',
  minModels: 1,
  maxModels: Infinity,
  mergekitId: null,
  random: false,
  lora: true,
  params: [weightParam],
  merge(input, _g, pm, _ctx, outArg) {
    const base = input.base!;
    const out = outArg ?? new Float32Array(base.length);
    out.set(base);
    const lora = input.lora ?? [];
    for (let j = 0; j < lora.length; j++) {
      const f = lora[j];
      if (!f) continue;
      checkShape(input.name, f, base.length);
      const w = pm[j]!.weight as number;
      if (f.delta) for (let i = 0; i < out.length; i++) out[i] = out[i]! + w * f.delta[i]!;
      else addBA(out, f.b, f.a, f.outFeatures, f.rank, f.inFeatures, w * f.scale);
    }
    return out;
  },
};

export const lorahub: MergeMethod = {
  id: 'lorahub',
  title: 'LoraHub composition',
  reference: 'https://arxiv.org/abs/2307.13269 (Huang et al., LoraHub, COLM 2024)',
  requiresBase: 'required',
  minModels: 1,
  maxModels: Infinity,
  mergekitId: null,
  random: false,
  lora: true,
  params: [weightParam],
  merge(input, _g, pm, _ctx, outArg) {
    const base = input.base!;
    const out = outArg ?? new Float32Array(base.length);
    out.set(base);
    const lora = input.lora ?? [];
    let ref: LoraFactorsInput | null = null;
    let A: Float32Array | null = null;
    let B: Float32Array | null = null;
    for (let j = 0; j < lora.length; j++) {
      const f = lora[j];
      if (!f) continue;
      checkShape(input.name, f, base.length);
      if (f.delta) {
        throw new MethodInputError('E_LORAHUB_TRANSPOSED', `tensor ${input.name}: this adapter stores its factors transposed (embedding or Conv1D); lorahub cannot sum them yet, use lora_linear`);
      }
      if (!ref) {
        ref = f;
        A = new Float32Array(f.a.length);
        B = new Float32Array(f.b.length);
      } else if (f.rank !== ref.rank || f.scale !== ref.scale) {
        throw new MethodInputError('E_LORAHUB_MISMATCH', `tensor ${input.name}: lorahub sums factors, so adapters need one rank and scale; got rank ${ref.rank} (scale ${ref.scale}) and rank ${f.rank} (scale ${f.scale}); use lora_linear instead`);
      }
      const w = pm[j]!.weight as number;
      for (let i = 0; i < f.a.length; i++) A![i] = A![i]! + w * f.a[i]!;
      for (let i = 0; i < f.b.length; i++) B![i] = B![i]! + w * f.b[i]!;
    }
    if (ref) addBA(out, B!, A!, ref.outFeatures, ref.rank, ref.inFeatures, ref.scale);
    return out;
  },
};

export const loraMethods: readonly MergeMethod[] = [loraLinear, lorahub];
