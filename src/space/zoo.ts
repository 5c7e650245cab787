/**
 * What a search space reads of a zoo (the folder its `zoo:` names): the part of the zoo's
 * zoo.json that says which checkpoints are the base and the models, which task each model is the
 * specialist of, where each task's evaluator manifests are, and which tensors are not merged.
 * The zoo builders (src/zoo/build.ts, ZooManifest) write this part with their provenance.
 */

/** A task of a zoo, as a search reads it. */
export interface ZooTask {
  name: string;
  /**
   * Evaluator manifests relative to the zoo folder, by split: validation (what a search tunes
   * on), test (reports only), and any others a zoo offers (vision-plus: holdout, more held-out
   * labelled items than validation; a space names one as `{ task, split }`).
   */
  evaluators: { validation: string; test: string } & Record<string, string>;
}

export interface ZooLayout {
  /** The base checkpoint's folder, relative to the zoo folder. */
  base: string;
  models: Array<{ name: string; path: string; task: string }>;
  tasks: ZooTask[];
  /**
   * Tensors that are not merged: each name starting with `prefix` is taken from model `model`
   * (the image zoos' per-task heads: the merge target is the shared body, and each task is read
   * through its own specialist's head). Absent: every tensor is merged.
   */
  ownedTensors?: Array<{ prefix: string; model: string }>;
}
