/**
 * A search space resolved: every path made absolute, the zoo's models and tasks read from its
 * zoo.json, the evaluators' manifests checked. What a run records and resumes from.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { EvaluatorSpec } from '../candidate/index.ts';
import { InputError } from '../errors.ts';
import { loadManifest, TestSplitRefusedError } from '../eval/index.ts';
import type { SearchSpace, ZooLayout } from '../space/index.ts';

/** A space with every path resolved: what a run records and resumes from. */
export interface ResolvedSpace {
  space: SearchSpace;
  spacePath: string | null;
  base: string | null;
  models: Array<{ name: string; path: string }>;
  evaluators: EvaluatorSpec[];
  /** Tensors kept from one model rather than merged (the space's `ps.keep` and the zoo's owned tensors): filter -> model name. */
  keep: Record<string, string>;
  /** The user asked to tune on test splits (--allow-test-split). */
  allowTestSplit: boolean;
  /**
   * The space's `select.evaluators` (a second split the top candidates of each stage are scored
   * on, src/search/select.ts); absent: none (a run recorded before selection existed has none).
   */
  selectEvaluators?: EvaluatorSpec[];
}

/**
 * The checkpoint candidates take their architecture from (config, tokenizer, layer layout): the
 * space's base model, else its first model.
 */
export function architectureSource(r: Pick<ResolvedSpace, 'base' | 'models'>): string {
  return r.base ?? r.models[0]!.path;
}

type EvaluatorRef = { manifest?: string; task?: string; split?: string; weight: number };

export function resolveSpace(space: SearchSpace, spacePath: string | null, allowTestSplit = false): ResolvedSpace {
  let base = space.base ? resolve(space.base) : null;
  let models = (space.models ?? []).map((m) => ({ name: m.name, path: resolve(m.path) }));
  let zoo: ZooLayout | null = null;
  let zooDir: string | null = null;
  if (space.zoo) {
    zooDir = resolve(space.zoo);
    const file = join(zooDir, 'zoo.json');
    if (!existsSync(file)) {
      const name = zooDir.split('/').pop();
      throw new InputError('E_ZOO_MISSING', `the space uses the zoo ${zooDir}, which is not built; build it with 'evomerge zoo build ${name} -o ${space.zoo}'`);
    }
    zoo = JSON.parse(readFileSync(file, 'utf8')) as ZooLayout;
    base = base ?? join(zooDir, zoo.base);
    if (models.length === 0) models = zoo.models.map((m) => ({ name: m.name, path: join(zooDir!, m.path) }));
  }
  const refs: EvaluatorRef[] = space.evaluators ?? zoo!.tasks.map((t) => ({ task: t.name, weight: 1 }));
  const toSpec = (where: string) => (ref: EvaluatorRef): EvaluatorSpec => {
    if (ref.task) {
      const t = zoo?.tasks.find((x) => x.name === ref.task);
      if (!t) throw new InputError('E_SPACE', `${where}: evaluator task '${ref.task}' is not a task of the zoo (${zoo ? zoo.tasks.map((x) => x.name).join(', ') : 'no zoo given'})`);
      const split = ref.split ?? 'validation';
      const file = (t.evaluators as Record<string, string | undefined>)[split];
      if (!file) throw new InputError('E_SPACE', `${where}: task '${ref.task}' of the zoo has no '${split}' split (it has ${Object.keys(t.evaluators).join(', ')}); a zoo built before that split was added needs 'evomerge zoo build' again`);
      // a task's id is its name; on another split than validation, name.split
      return { id: split === 'validation' ? t.name : `${t.name}.${split}`, manifest: join(zooDir!, file), weight: ref.weight };
    }
    const manifest = resolve(ref.manifest!);
    return { id: manifest.split('/').pop()!.replace(/\.ya?ml$/, ''), manifest, weight: ref.weight };
  };
  const unique = (specs: EvaluatorSpec[], where: string) => {
    const dup = specs.find((e, i) => specs.findIndex((x) => x.id === e.id) !== i);
    if (dup) throw new InputError('E_SPACE', `${where}: two evaluators are named '${dup.id}'; each task (and split) or manifest may appear once`);
    return specs;
  };
  const evaluators = unique(refs.map(toSpec('evaluators')), 'evaluators');
  const selectEvaluators = space.select?.evaluators ? unique(space.select.evaluators.map(toSpec('select.evaluators')), 'select.evaluators') : undefined;
  for (const p of [base, ...models.map((m) => m.path), ...[...evaluators, ...(selectEvaluators ?? [])].map((e) => e.manifest)]) {
    if (p && !existsSync(p)) throw new InputError('E_NOT_FOUND', `${p} (named by the search space) does not exist`);
  }
  // a broken manifest, or a test split, stops the search here rather than failing every
  // candidate: the selection split is guarded like any other (tuning a choice on test is tuning on test)
  for (const e of [...evaluators, ...(selectEvaluators ?? [])]) {
    const m = loadManifest(e.manifest);
    if (m.split === 'test' && !allowTestSplit) throw new TestSplitRefusedError(m);
    // a candidate past the space's timeout has its thread terminated, which would leave the
    // program running: the program's own timer must fire first
    if (m.kind === 'command' && m.timeout_s >= space.timeout_seconds) {
      throw new InputError('E_SPACE_TIMEOUT', `${e.manifest}: timeout_s (${m.timeout_s} s) must be below the search space's timeout_seconds (${space.timeout_seconds} s), so the evaluator stops its program before the candidate's worker is terminated`);
    }
  }
  const keep: Record<string, string> = { ...Object.fromEntries((zoo?.ownedTensors ?? []).map((o) => [o.prefix, o.model])), ...space.ps?.keep };
  for (const [filter, model] of Object.entries(keep)) {
    if (!models.some((m) => m.name === model)) throw new InputError('E_SPACE', `ps.keep: '${filter}' names model '${model}', which is not among the models (${models.map((m) => m.name).join(', ')})`);
  }
  return { space, spacePath, base, models, evaluators, keep, allowTestSplit, ...(selectEvaluators ? { selectEvaluators } : {}) };
}
