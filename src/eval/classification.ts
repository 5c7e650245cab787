/**
 * Classification accuracy of a classifier head, optionally per class. The data are read once
 * and uploaded once per backend, then reused for every candidate: the vision zoo scores
 * thousands of merged classifiers against the same inputs.
 */
import { tf } from '../models/backend.ts';
import { InputError, ShapeMismatchError } from '../errors.ts';
import type { RunnableModel } from '../models/load.ts';
import type { Classifier } from '../models/mlp.ts';
import { loadClassificationData } from './data.ts';
import { manifestFitness, partialScoring, type ClassificationManifest } from './manifest.ts';
import { binomialSE } from './stderr.ts';
import type { EvalContext, EvalResult, Evaluator, PartialScore } from './types.ts';

export class ClassificationEvaluator implements Evaluator {
  readonly kind = 'classification' as const;
  readonly needsModel = true;
  readonly family = 'residual-mlp' as const;
  private data: { x: Float32Array; y: Int32Array; n: number; d: number; file: string } | null = null;
  private batches: Array<{ x: tf.Tensor2D; start: number; n: number }> | null = null;
  private batchesBackend: string | null = null;
  /** The scored head's class labels, from the last model scoreItems saw (for resultOf's per-class metric names). */
  private labels: readonly string[] | null = null;

  constructor(private readonly m: ClassificationManifest) {}

  get id(): string {
    return this.m.id;
  }
  get version(): string | number {
    return this.m.version;
  }
  get split() {
    return this.m.split;
  }
  get metric() {
    return this.m.metric;
  }

  private load() {
    if (!this.data) {
      const d = loadClassificationData(this.m, this.m.split);
      const n = Math.min(d.n, this.m.limit ?? d.n);
      this.data = { ...d, n, x: d.x.subarray(0, n * d.d), y: d.y.subarray(0, n) };
    }
    return this.data;
  }

  private uploaded(): Array<{ x: tf.Tensor2D; start: number; n: number }> {
    const backend = tf.getBackend();
    if (this.batches && this.batchesBackend === backend) return this.batches;
    this.dispose();
    const d = this.load();
    const batches: Array<{ x: tf.Tensor2D; start: number; n: number }> = [];
    for (let s = 0; s < d.n; s += this.m.batch_size) {
      const n = Math.min(this.m.batch_size, d.n - s);
      batches.push({ x: tf.tensor2d(d.x.subarray(s * d.d, (s + n) * d.d), [n, d.d]), start: s, n });
    }
    this.batches = batches;
    this.batchesBackend = backend;
    return batches;
  }

  /** The classifier, its scored head and the items, checked against each other. */
  private checked(model: RunnableModel | null) {
    if (!model || model.kind !== 'classifier') {
      throw new InputError('E_EVAL_FAMILY', `evaluator ${this.m.id} (${this.m.file}) scores residual-mlp classifiers, but the model is ${model ? 'a causal language model' : 'missing'}`);
    }
    const clf = model as Classifier;
    const d = this.load();
    const headName = this.m.head ?? clf.config.heads[0]!.name;
    const head = clf.config.heads.find((h) => h.name === headName);
    if (!head) throw new InputError('E_EVAL_HEAD', `${this.m.file}: field 'head' names '${headName}' but the model's heads are ${clf.config.heads.map((h) => h.name).join(', ')}`);
    if (d.d !== clf.config.inputSize) {
      throw new ShapeMismatchError(`${d.file}: items have ${d.d} features but the model's input_size is ${clf.config.inputSize}`);
    }
    let maxLabel = 0;
    for (const v of d.y) maxLabel = Math.max(maxLabel, v);
    if (maxLabel >= head.classes) {
      throw new ShapeMismatchError(`${d.file}: label ${maxLabel} does not exist in head '${head.name}', which has ${head.classes} classes`);
    }
    return { clf, d, head };
  }

  async evaluate(model: RunnableModel | null, ctx: EvalContext): Promise<EvalResult> {
    const { clf, d, head } = this.checked(model);
    const correct = new Float64Array(head.classes);
    const total = new Float64Array(head.classes);
    let right = 0;
    for (const b of this.uploaded()) {
      ctx.signal?.throwIfAborted();
      const pred = (await clf.predict(b.x)).get(head.name)!;
      for (let i = 0; i < b.n; i++) {
        const y = d.y[b.start + i]!;
        total[y]!++;
        if (pred[i] === y) {
          right++;
          correct[y]!++;
        }
      }
      ctx.onProgress?.(b.start + b.n, d.n);
    }
    return this.result(d.n, right, correct, total, head);
  }

  private result(n: number, right: number, correct: ArrayLike<number>, total: ArrayLike<number>, head: { classes: number; labels?: readonly string[] }): EvalResult {
    const accuracy = n === 0 ? 0 : right / n;
    const metrics: Record<string, number> = { accuracy };
    // the items each metric is a proportion of, for its standard error
    const items: Record<string, number> = { accuracy: n };
    if (this.m.per_class) {
      for (let c = 0; c < head.classes; c++) {
        if (total[c]! <= 0) continue;
        const name = `accuracy_class_${head.labels?.[c] ?? c}`;
        metrics[name] = correct[c]! / total[c]!;
        items[name] = total[c]!;
      }
    }
    const primary = metrics[this.m.metric.name];
    if (primary === undefined) throw new InputError('E_EVAL_METRIC', `${this.m.file}: field 'metric.name' is '${this.m.metric.name}' but classification reports accuracy${this.m.per_class ? ' and accuracy_class_<c>' : ''}`);
    const se = binomialSE(primary, items[this.m.metric.name]!);
    return { fitness: manifestFitness(this.m, primary), metrics, samples: n, ...(se !== undefined ? { se } : {}) };
  }

  /** Items for multi-fidelity scoring: accuracy is a mean over items (a per-class metric is not, and is scored whole). */
  itemCount(): number | null {
    return partialScoring(this.m) ? this.load().n : null;
  }

  /** Correct answers (overall and per class) on the items of `indices`, gathered into batches of the manifest's size. */
  async scoreItems(model: RunnableModel | null, ctx: EvalContext, indices: readonly number[]): Promise<PartialScore> {
    const { clf, d, head } = this.checked(model);
    this.labels = head.labels ?? null;
    const sums: Record<string, number> = { correct: 0 };
    if (this.m.per_class) for (let c = 0; c < head.classes; c++) sums[`correct_${c}`] = sums[`total_${c}`] = 0;
    for (let s = 0; s < indices.length; s += this.m.batch_size) {
      ctx.signal?.throwIfAborted();
      const part = indices.slice(s, s + this.m.batch_size);
      const x = new Float32Array(part.length * d.d);
      part.forEach((item, r) => x.set(d.x.subarray(item * d.d, (item + 1) * d.d), r * d.d));
      const t = tf.tensor2d(x, [part.length, d.d]);
      let pred: ArrayLike<number>;
      try {
        pred = (await clf.predict(t)).get(head.name)!;
      } finally {
        t.dispose();
      }
      part.forEach((item, r) => {
        const y = d.y[item]!;
        const hit = pred[r] === y ? 1 : 0;
        sums.correct! += hit;
        if (this.m.per_class) {
          sums[`total_${y}`]! += 1;
          sums[`correct_${y}`]! += hit;
        }
      });
    }
    // per item, accuracy is 0 or 1: its square is itself
    return { count: indices.length, sums, primary: { sum: sums.correct!, sumSq: sums.correct! } };
  }

  resultOf(p: PartialScore): EvalResult {
    const classes = Object.keys(p.sums).filter((k) => k.startsWith('total_')).length;
    const correct = Array.from({ length: classes }, (_, c) => p.sums[`correct_${c}`] ?? 0);
    const total = Array.from({ length: classes }, (_, c) => p.sums[`total_${c}`] ?? 0);
    return this.result(p.count, p.sums.correct ?? 0, correct, total, { classes, labels: this.labels ?? undefined });
  }

  dispose(): void {
    for (const b of this.batches ?? []) b.x.dispose();
    this.batches = null;
    this.batchesBackend = null;
  }
}
