/** A tiny residual-MLP family on disk and an independent float64 forward of it (test/helpers/mlp-reference.ts), for the refine tests. */
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors } from '../../src/checkpoint/index.ts';
import { parseResidualMlpConfig, residualMlpTensorShapes, type ResidualMlpConfigJson } from '../../src/models/mlp.ts';
import { randomWeights } from '../../src/models/weights.ts';
import { loadSourceModel, type SourceModels } from '../../src/candidate/sources.ts';
import { mlpReferenceLogits } from './mlp-reference.ts';

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

/** Plain float64 forward of the README's residual-MLP format (test/helpers/mlp-reference.ts): logits per row of one head (default the first). */
export function plainLogits(w: Map<string, Float32Array>, x: Float32Array, n: number, json: ResidualMlpConfigJson = mlpJson, headName?: string): number[][] {
  const head = headName ?? json.heads[0]!.name;
  const d = json.input_size;
  return Array.from({ length: n }, (_, r) => mlpReferenceLogits(w, json, Array.from(x.subarray(r * d, (r + 1) * d)))[head]!);
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
