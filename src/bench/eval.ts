/**
 * `evomerge bench eval`: throughput of the models' forward passes on each available TensorFlow.js
 * backend, against that backend's own matrix-multiply throughput measured in the same run (the
 * machine is shared and noisy, so only ratios within one run mean much).
 *
 * FLOP counts: a matrix product [m,k]x[k,n] is 2mkn. Per token of a Llama forward pass over T
 * tokens: 2 * (every linear weight in the layers, plus the head) + per layer 4 * T_avg * heads *
 * head_dim for the scores and the weighted sum (Kaplan et al. 2020, table 1, counted causally:
 * T_avg = (T + 1) / 2). The classifier: 2 * (its weights) per sample.
 */
import type { Command } from 'commander';
import { tf, useBackend, type BackendName } from '../models/backend.ts';
import { parseLlamaConfig, type LlamaConfig } from '../models/llama-config.ts';
import { llamaShapesOf } from '../models/llama-layout.ts';
import { LlamaModel } from '../models/llama.ts';
import { ResidualMlp, parseResidualMlpConfig, residualMlpTensorShapes, type ResidualMlpConfig } from '../models/mlp.ts';
import { randomWeights, weightsFromMap } from '../models/weights.ts';

export interface EvalBenchRow {
  backend: BackendName;
  matmul: { n: number; gflops: number };
  llama: { config: string; batch: number; sequence: number; tokensPerSecond: number; gflops: number; fractionOfMatmul: number; loadMs: number };
  classifier: { config: string; batch: number; samplesPerSecond: number; gflops: number; fractionOfMatmul: number; loadMs: number; candidatesPerSecond: number };
}

export interface EvalBenchResult {
  rows: EvalBenchRow[];
  skipped: Array<{ backend: BackendName; reason: string }>;
  seconds: number;
}

/** Runs `fn` until `minSeconds` have passed (at least `minRuns` times); mean seconds per run. */
async function timeIt(fn: () => Promise<void>, minSeconds: number, minRuns = 2): Promise<number> {
  await fn(); // warm-up: kernels compiled, buffers allocated
  let runs = 0;
  const t0 = performance.now();
  while (runs < minRuns || performance.now() - t0 < minSeconds * 1000) {
    await fn();
    runs++;
  }
  return (performance.now() - t0) / 1000 / runs;
}

async function matmulGflops(n: number, minSeconds: number): Promise<number> {
  const a = tf.randomNormal([n, n]);
  const b = tf.randomNormal([n, n]);
  const s = await timeIt(async () => {
    const c = tf.matMul(a, b);
    await c.data();
    c.dispose();
  }, minSeconds);
  a.dispose();
  b.dispose();
  return (2 * n ** 3) / s / 1e9;
}

export const BENCH_LLAMA = {
  architectures: ['LlamaForCausalLM'], vocab_size: 4096, hidden_size: 256, intermediate_size: 704, num_hidden_layers: 4,
  num_attention_heads: 8, num_key_value_heads: 4, rms_norm_eps: 1e-5, max_position_embeddings: 512, tie_word_embeddings: false,
};

export const BENCH_MLP = {
  architectures: ['EvomergeResidualMLP'], input_size: 784, hidden_size: 128, num_blocks: 4, activation: 'relu' as const, heads: [{ name: 'digit', num_classes: 10 }],
};

export function llamaFlopsPerToken(c: LlamaConfig, T: number): number {
  let weights = 0;
  for (const { name, shape } of llamaShapesOf(c)) if (shape.length === 2 && name !== 'model.embed_tokens.weight') weights += shape[0]! * shape[1]!;
  if (c.tieWordEmbeddings) weights += c.vocabSize * c.hidden;
  return 2 * weights + c.layers * 4 * ((T + 1) / 2) * c.heads * c.headDim;
}

function mlpFlopsPerSample(c: ResidualMlpConfig): number {
  let w = 0;
  for (const { shape } of residualMlpTensorShapes(c)) if (shape.length === 2) w += shape[0]! * shape[1]!;
  return 2 * w;
}

export async function runEvalBench(options: { backends: BackendName[]; seconds: number; sequence: number; batch: number; mlpBatch: number; log?: (s: string) => void }): Promise<EvalBenchResult> {
  const log = options.log ?? (() => {});
  const started = performance.now();
  const lc = parseLlamaConfig(BENCH_LLAMA);
  const mc = parseResidualMlpConfig(BENCH_MLP);
  const lw = randomWeights(llamaShapesOf(lc), 1, 0.05);
  const mw = randomWeights(residualMlpTensorShapes(mc), 1, 0.05);
  const rows: EvalBenchRow[] = [];
  const skipped: EvalBenchResult['skipped'] = [];
  for (const backend of options.backends) {
    try {
      await useBackend(backend);
    } catch (err) {
      skipped.push({ backend, reason: (err as Error).message });
      log(`${backend}: skipped (${(err as Error).message})`);
      continue;
    }
    log(`${backend}: matrix multiply ...`);
    const n = backend === 'cpu' ? 256 : 512;
    const mm = await matmulGflops(n, options.seconds);

    log(`${backend}: Llama forward pass ...`);
    let t0 = performance.now();
    const llama = LlamaModel.load(lc, weightsFromMap(lw));
    const llamaLoad = performance.now() - t0;
    const T = options.sequence;
    const seqs = Array.from({ length: options.batch }, (_, b) => Array.from({ length: T }, (_, t) => (b * 7919 + t * 104729) % lc.vocabSize));
    const ls = await timeIt(async () => {
      await llama.tokenLogProbs(seqs);
    }, options.seconds);
    llama.dispose();
    const tokens = options.batch * T;
    const lGflops = (tokens * llamaFlopsPerToken(lc, T)) / ls / 1e9;

    log(`${backend}: classifier ...`);
    t0 = performance.now();
    const mlp = ResidualMlp.load(mc, weightsFromMap(mw));
    const mlpLoad = performance.now() - t0;
    const x = tf.randomUniform([options.mlpBatch, mc.inputSize], 0, 255) as tf.Tensor2D;
    const ms = await timeIt(async () => {
      await mlp.predict(x);
    }, options.seconds);
    mlp.dispose();
    // What the search pays per candidate: upload the merged weights, score the batch, free.
    const cycle = await timeIt(async () => {
      const m = ResidualMlp.load(mc, weightsFromMap(mw));
      await m.predict(x);
      m.dispose();
    }, options.seconds);
    x.dispose();
    const mGflops = (options.mlpBatch * mlpFlopsPerSample(mc)) / ms / 1e9;
    rows.push({
      backend,
      matmul: { n, gflops: mm },
      llama: { config: `${lc.layers} layers, hidden ${lc.hidden}, intermediate ${lc.intermediate}, ${lc.heads} heads / ${lc.kvHeads} kv, vocab ${lc.vocabSize}`, batch: options.batch, sequence: T, tokensPerSecond: tokens / ls, gflops: lGflops, fractionOfMatmul: lGflops / mm, loadMs: llamaLoad },
      classifier: { config: `input ${mc.inputSize}, ${mc.blocks} blocks of width ${mc.hidden}, ${mc.heads[0]!.classes} classes`, batch: options.mlpBatch, samplesPerSecond: options.mlpBatch / ms, gflops: mGflops, fractionOfMatmul: mGflops / mm, loadMs: mlpLoad, candidatesPerSecond: 1 / cycle },
    });
  }
  return { rows, skipped, seconds: (performance.now() - started) / 1000 };
}

export function formatEvalBench(r: EvalBenchResult): string {
  const out: string[] = [];
  for (const row of r.rows) {
    out.push(`${row.backend}: matmul ${row.matmul.n}x${row.matmul.n} ${row.matmul.gflops.toFixed(2)} GFLOP/s`);
    out.push(`  llama (${row.llama.config}), batch ${row.llama.batch} x ${row.llama.sequence} tokens: ${row.llama.tokensPerSecond.toFixed(0)} tokens/s, ${row.llama.gflops.toFixed(2)} GFLOP/s = ${(100 * row.llama.fractionOfMatmul).toFixed(0)}% of matmul; load ${row.llama.loadMs.toFixed(0)} ms`);
    out.push(`  classifier (${row.classifier.config}), batch ${row.classifier.batch}: ${row.classifier.samplesPerSecond.toFixed(0)} samples/s, ${row.classifier.gflops.toFixed(2)} GFLOP/s = ${(100 * row.classifier.fractionOfMatmul).toFixed(0)}% of matmul; load ${row.classifier.loadMs.toFixed(1)} ms; load+score+free ${row.classifier.candidatesPerSecond.toFixed(1)} candidates/s`);
  }
  for (const s of r.skipped) out.push(`${s.backend}: skipped (${s.reason})`);
  out.push(`total ${r.seconds.toFixed(1)} s`);
  return out.join('\n');
}

export function registerBench(bench: Command): void {
  bench
    .command('eval')
    .description('tokens/s of the Llama forward pass and samples/s of the classifier per available backend, against the same backend\'s matmul throughput')
    .option('--backends <list>', 'comma-separated backends to try', 'tensorflow-gpu,tensorflow,wasm,cpu')
    .option('--seconds <s>', 'minimum seconds per measurement', '2')
    .option('--sequence <n>', 'tokens per sequence', '128')
    .option('--batch <n>', 'sequences per forward pass', '4')
    .option('--mlp-batch <n>', 'classifier inputs per forward pass', '2048')
    .option('--json', 'print one JSON object')
    .action(async (opts: { backends: string; seconds: string; sequence: string; batch: string; mlpBatch: string; json?: boolean }) => {
      const { parseBackendChoice } = await import('../models/backend.ts');
      const backends = opts.backends.split(',').map((b) => parseBackendChoice(b.trim())).filter((b): b is BackendName => b !== 'auto');
      const result = await runEvalBench({
        backends, seconds: Number(opts.seconds), sequence: Number(opts.sequence), batch: Number(opts.batch), mlpBatch: Number(opts.mlpBatch),
        log: opts.json ? undefined : (s) => process.stderr.write(`${s}\n`),
      });
      process.stdout.write(opts.json ? `${JSON.stringify(result)}\n` : `${formatEvalBench(result)}\n`);
    });
}
