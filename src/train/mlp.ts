/**
 * Training of residual MLP classifiers for the zoos, with tfjs-core's autodiff and Adam
 * (Kingma and Ba 2015). The forward pass is the model family's own (`MlpPathModel.forward` of
 * src/models/mlp.ts), run over variables, so what is trained is exactly what is later loaded and
 * evaluated. Matrices live on the backend as [in, out], as the family uploads them, and are
 * transposed back to PyTorch's [out, in] when exported.
 */
import { InputError } from '../errors.ts';
import { tf } from '../models/backend.ts';
import { ResidualMlp, mlpActivation, parseResidualMlpConfig, residualMlpTensorShapes, weightsFromMap, type ResidualMlpConfig, type ResidualMlpConfigJson } from '../models/index.ts';
import { Rng, deriveSeed } from '../tensor/rng.ts';
import { linear, linearFromData, transpose } from './ops.ts';

/** LayerNorm over the last axis with the biased variance (Ba et al. 2016, eq. 4; PyTorch's nn.LayerNorm). */
function layerNorm(x: tf.Tensor2D, w: tf.Tensor1D, b: tf.Tensor1D, eps: number): tf.Tensor2D {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, eps))), w), b);
}


/** Examples of one classification task: unsigned-byte features (input_scale maps them). */
export interface ClassificationData {
  /** Head name the task is read from. */
  head: string;
  features: Uint8Array;
  labels: Uint8Array;
  n: number;
}


/**
 * Initial weights: He-normal N(0, 2/fan_in) for layers followed by ReLU (He et al. 2015,
 * "Delving Deep into Rectifiers", eq. 10), and for a block's second layer the same scaled by
 * 1/sqrt(2 * blocks), so the residual stream's variance stays bounded with depth (the scaling
 * GPT-2 applies to residual projections, Radford et al. 2019, section 2.3). Heads: N(0, 1/fan_in).
 */
export function initialMlpWeights(json: ResidualMlpConfigJson, seed: string): Map<string, Float32Array> {
  const c = parseResidualMlpConfig(json);
  const out = new Map<string, Float32Array>();
  for (const { name, shape } of residualMlpTensorShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    if (name.endsWith('norm.weight')) a.fill(1);
    else if (shape.length === 2) {
      const fanIn = shape[1]!;
      let std = Math.sqrt(2 / fanIn);
      if (name.endsWith('fc2.weight')) std /= Math.sqrt(2 * Math.max(1, c.blocks));
      if (name.startsWith('heads.')) std = Math.sqrt(1 / fanIn);
      const g = Rng.seeded(deriveSeed(seed, name)).fillNormal(new Float64Array(n));
      for (let i = 0; i < n; i++) a[i] = std * g[i]!;
    }
    out.set(name, a);
  }
  return out;
}

export interface TrainPhase {
  /** Tasks visited in turn, one batch each. */
  tasks: ClassificationData[];
  steps: number;
  batch: number;
  learningRate: number;
  /** Names of the tensors this phase updates (others stay frozen). */
  trainable: (name: string) => boolean;
  /** Seed string of the phase's batch sampling. */
  seed: string;
}

/** A residual MLP held as tfjs variables while it trains. */
export class MlpTrainer {
  readonly config: ResidualMlpConfig;
  readonly json: ResidualMlpConfigJson;
  private readonly vars = new Map<string, tf.Variable>();
  private readonly shapes: Array<{ name: string; shape: number[] }>;

  constructor(json: ResidualMlpConfigJson, weights: ReadonlyMap<string, Float32Array>) {
    this.json = json;
    this.config = parseResidualMlpConfig(json);
    this.shapes = residualMlpTensorShapes(this.config);
    for (const { name, shape } of this.shapes) {
      const w = weights.get(name);
      if (!w) throw new InputError('E_MISSING_TENSOR', `training: tensor ${name} is missing from the initial weights`);
      const t = shape.length === 2 ? tf.tensor2d(transpose(w, shape[0]!, shape[1]!), [shape[1]!, shape[0]!]) : tf.tensor(w, shape);
      this.vars.set(name, tf.variable(t, true));
      t.dispose();
    }
  }

  private v<T extends tf.Tensor>(name: string): T {
    return this.vars.get(name)! as unknown as T;
  }

  /**
   * Logits of head `head` for `x` [n, inputSize], over the variables. The same computation as
   * `MlpPathModel.forward` (the README's residual MLP), written with the linear layers below
   * so that backpropagation uses only untransposed matrix products (see `linear`). A test checks
   * it against the family's own forward pass.
   */
  forward(x: tf.Tensor2D, head: string): tf.Tensor2D {
    const c = this.config;
    const ln = (h: tf.Tensor2D, p: string) => (c.norm === 'layernorm' ? layerNorm(h, this.v(`${p}.weight`), this.v(`${p}.bias`), c.eps) : h);
    let input = x;
    if (c.inputScale !== 1) input = tf.mul(input, c.inputScale);
    if (c.inputOffset !== 0) input = tf.add(input, c.inputOffset);
    let h = linearFromData(input, this.v('input.weight'), this.v('input.bias'));
    for (let i = 0; i < c.blocks; i++) {
      const p = `blocks.${i}`;
      const u = mlpActivation(linear(ln(h, `${p}.norm`), this.v(`${p}.fc1.weight`), this.v(`${p}.fc1.bias`)), c.activation);
      h = tf.add(h, linear(u, this.v(`${p}.fc2.weight`), this.v(`${p}.fc2.bias`)));
    }
    if (!c.heads.some((x) => x.name === head)) throw new InputError('E_ZOO_HEAD', `training: the model has no head '${head}'`);
    return linear(ln(h, 'norm'), this.v(`heads.${head}.weight`), this.v(`heads.${head}.bias`));
  }

  /**
   * Runs one phase of minibatch Adam on the mean softmax cross-entropy. Batches are drawn with
   * replacement from a seeded stream, so a phase is a pure function of its inputs. Returns the last loss.
   */
  async train(phase: TrainPhase, onStep?: (step: number, loss: number | null) => void): Promise<number> {
    const inSize = this.config.inputSize;
    const trainable = [...this.vars].filter(([n]) => phase.trainable(n)).map(([, v]) => v);
    const optimizer = tf.train.adam(phase.learningRate);
    const rng = Rng.seeded(phase.seed);
    const x = new Float32Array(phase.batch * inSize);
    const y = new Int32Array(phase.batch);
    let lastLoss = NaN;
    for (let step = 0; step < phase.steps; step++) {
      const task = phase.tasks[step % phase.tasks.length]!;
      const classes = this.config.heads.find((h) => h.name === task.head)!.classes;
      for (let b = 0; b < phase.batch; b++) {
        const i = rng.int(task.n);
        const row = task.features.subarray(i * inSize, (i + 1) * inSize);
        for (let k = 0; k < inSize; k++) x[b * inSize + k] = row[k]!;
        y[b] = task.labels[i]!;
      }
      // Reading the loss back costs a sync; do it only every 50 steps for the progress line.
      const wantLoss = step % 50 === 0 || step === phase.steps - 1;
      const lossTensor = tf.tidy(() => {
        const xs = tf.tensor2d(x, [phase.batch, inSize]);
        const onehot = tf.oneHot(tf.tensor1d(y, 'int32'), classes);
        const { value, grads } = tf.variableGrads(() => {
          const logits = this.forward(xs, task.head);
          // cross-entropy with a stable log-softmax: logsumexp(z) - z_y
          return tf.mean(tf.sub(tf.logSumExp(logits, 1), tf.sum(tf.mul(logits, onehot), 1))) as tf.Scalar;
        }, trainable);
        optimizer.applyGradients(grads as unknown as Record<string, tf.Variable>);
        return value;
      });
      const loss = wantLoss ? lossTensor.dataSync()[0]! : null;
      lossTensor.dispose();
      if (loss !== null) lastLoss = loss;
      onStep?.(step + 1, loss);
      // training is synchronous work; let timers (the progress bar) run now and then
      if (step % 20 === 19) await new Promise((r) => setImmediate(r));
    }
    optimizer.dispose();
    return lastLoss;
  }

  /** Weights in the checkpoint layout (PyTorch [out, in] matrices), by tensor name. */
  weights(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const { name, shape } of this.shapes) {
      const data = this.vars.get(name)!.dataSync() as Float32Array;
      out.set(name, shape.length === 2 ? transpose(data, shape[1]!, shape[0]!) : Float32Array.from(data));
    }
    return out;
  }

  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
    this.vars.clear();
  }
}

/** Accuracy of the weights' head `data.head` on the first `limit` examples, through the family's loader. */
export async function mlpAccuracy(json: ResidualMlpConfigJson, weights: ReadonlyMap<string, Float32Array>, data: ClassificationData, limit = data.n): Promise<number> {
  const model = ResidualMlp.load(parseResidualMlpConfig(json), weightsFromMap(weights, 'zoo model'));
  try {
    const n = Math.min(limit, data.n);
    const inSize = model.config.inputSize;
    let correct = 0;
    const chunk = 2000;
    for (let s = 0; s < n; s += chunk) {
      const m = Math.min(chunk, n - s);
      const x = Float32Array.from(data.features.subarray(s * inSize, (s + m) * inSize));
      const pred = (await model.predict(x, m)).get(data.head)!;
      for (let i = 0; i < m; i++) if (pred[i] === data.labels[s + i]) correct++;
    }
    return correct / n;
  } finally {
    model.dispose();
  }
}
