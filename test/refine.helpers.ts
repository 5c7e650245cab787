/** A tiny residual-MLP family on disk and an independent float64 forward of it, for the refine tests. */
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors } from '../src/checkpoint/index.ts';
import { parseResidualMlpConfig, residualMlpTensorShapes, type ResidualMlpConfigJson } from '../src/models/mlp.ts';
import { randomWeights } from '../src/models/weights.ts';
import { loadSourceModel, type SourceModels } from '../src/candidate/sources.ts';

export const mlpJson: ResidualMlpConfigJson = {
  architectures: ['EvomergeResidualMLP'], input_size: 6, hidden_size: 5, intermediate_size: 7, num_blocks: 2, activation: 'tanh',
  input_scale: 0.5, input_offset: -0.2, heads: [{ name: 'cls', num_classes: 3 }],
};

export function writeMlp(dir: string, w: Map<string, Float32Array>, json: ResidualMlpConfigJson = mlpJson): string {
  mkdirSync(dir, { recursive: true });
  const c = parseResidualMlpConfig(json);
  writeSafetensors(join(dir, 'model.safetensors'), residualMlpTensorShapes(c).map(({ name, shape }) => ({ name, dtype: 'F32' as const, shape, data: w.get(name)! })));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(json));
  return dir;
}

/** A base and `k` fine-tunes (base + std-sized noise), as source catalogues keyed by path. */
export function mlpFamily(root: string, k: number, std = 0.05, json: ResidualMlpConfigJson = mlpJson): { base: string; models: string[]; sources: SourceModels } {
  const shapes = residualMlpTensorShapes(parseResidualMlpConfig(json));
  const bw = randomWeights(shapes, 1, 0.4);
  const base = writeMlp(join(root, 'base'), bw, json);
  const models = Array.from({ length: k }, (_, j) => {
    const noise = randomWeights(shapes, 100 + j, std);
    return writeMlp(join(root, `m${j}`), new Map([...bw].map(([n, v]) => [n, v.map((x, i) => x + noise.get(n)![i]!)])), json);
  });
  const sources: SourceModels = {};
  for (const p of [base, ...models]) sources[p] = loadSourceModel(p);
  return { base, models, sources };
}

/** Plain float64 forward of the README's residual-MLP format (tanh, layernorm): logits per row of one head (default the first). */
export function plainLogits(w: Map<string, Float32Array>, x: Float32Array, n: number, json: ResidualMlpConfigJson = mlpJson, headName?: string): number[][] {
  const c = parseResidualMlpConfig(json);
  const head = c.heads.find((h) => h.name === (headName ?? c.heads[0]!.name))!;
  const lin = (name: string, v: number[], out: number) => {
    const W = w.get(`${name}.weight`)!;
    const b = w.get(`${name}.bias`)!;
    return Array.from({ length: out }, (_, r) => v.reduce((s, vi, k) => s + W[r * v.length + k]! * vi, b[r]!));
  };
  const ln = (name: string, v: number[]) => {
    const m = v.reduce((a, b) => a + b, 0) / v.length;
    const va = v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length;
    return v.map((t, i) => ((t - m) / Math.sqrt(va + c.eps)) * w.get(`${name}.weight`)![i]! + w.get(`${name}.bias`)![i]!);
  };
  const rows: number[][] = [];
  for (let r = 0; r < n; r++) {
    const xin = Array.from(x.subarray(r * c.inputSize, (r + 1) * c.inputSize), (v) => v * c.inputScale + c.inputOffset);
    let h = lin('input', xin, c.hidden);
    for (let b = 0; b < c.blocks; b++) {
      const u = lin(`blocks.${b}.fc1`, ln(`blocks.${b}.norm`, h), c.intermediate).map(Math.tanh);
      const o = lin(`blocks.${b}.fc2`, u, c.hidden);
      h = h.map((v, i) => v + o[i]!);
    }
    rows.push(lin(`heads.${head.name}`, ln('norm', h), head.classes));
  }
  return rows;
}

/** Mean cross-entropy, or mean prediction entropy when y is null. */
export function plainLoss(logits: number[][], y: Int32Array | null): number {
  let total = 0;
  logits.forEach((l, r) => {
    const mx = Math.max(...l);
    const lse = mx + Math.log(l.reduce((s, v) => s + Math.exp(v - mx), 0));
    if (y) total += lse - l[y[r]!]!;
    else total -= l.reduce((s, v) => s + Math.exp(v - lse) * (v - lse), 0);
  });
  return total / logits.length;
}

export function randomItems(n: number, d: number, classes: number, seed: number): { x: Float32Array; y: Int32Array } {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  return { x: Float32Array.from({ length: n * d }, () => rnd() * 4 - 2), y: Int32Array.from({ length: n }, () => Math.floor(rnd() * classes)) };
}
