/**
 * Multi-stage merges, as mergekit-multi runs them (mergekit/scripts/multimerge.py,
 * docs/multimerge.md): a YAML file of several merge configs, each but the final one with a `name`;
 * a model reference equal to a stage's name means that stage's output. Stages run one after the
 * other in an order where every stage follows those it reads (a cycle is refused), each into a
 * folder of its own: `<out>/<name>`, and the unnamed final merge into `<out>/final`. With
 * `finalOnly`, the earlier stages go to a hidden folder beside `<out>` that is removed at the end,
 * and the final stage (the unnamed one, else the last to run) is written to `<out>` itself.
 *
 * Before any stage runs, every stage's settings are checked, every output folder must be new or
 * empty, and every stage that reads no other stage's output is planned (all input errors of
 * those raised); a stage reading an earlier output is planned when that output exists.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { InputError } from '../errors.ts';
import { planRecipe, SourceSet } from '../merge/index.ts';
import { RecipeError, type MergeStage, type Recipe } from '../recipe/index.ts';
import { mergeToDisk, type MergeResult, type MergeToDiskOptions } from './merge-folder.ts';

export interface StageResult extends MergeResult {
  /** The stage's name (null: the unnamed final merge). */
  name: string | null;
}

export interface MergeStagesOptions extends MergeToDiskOptions {
  /** Write only the final stage, to `out` itself. */
  finalOnly?: boolean;
  /** Called before each stage runs. */
  onStage?: (index: number, total: number, name: string | null, dir: string) => void;
}

/** Every model reference of a recipe, through `f` (a name of a stage becomes its folder). */
export function mapModelRefs(recipe: Recipe, f: (ref: string) => string): Recipe {
  const r: Recipe = structuredClone(recipe);
  if (r.base) r.base = f(r.base);
  r.sources?.forEach((s) => { s.model = f(s.model); });
  r.slices?.forEach((sl) => {
    if (sl.base_model) sl.base_model = f(sl.base_model);
    sl.sources.forEach((s) => { s.model = f(s.model); });
  });
  if (r.tokenizer_source && r.tokenizer_source !== 'base' && r.tokenizer_source !== 'union') r.tokenizer_source = f(r.tokenizer_source);
  if (r.tokenizer) {
    if (r.tokenizer.source !== 'base' && r.tokenizer.source !== 'union') r.tokenizer.source = f(r.tokenizer.source);
    for (const t of Object.values(r.tokenizer.tokens ?? {})) {
      if (typeof t.source === 'string') t.source = f(t.source);
      else if (t.source.kind === 'model_token') t.source.model = f(t.source.model);
    }
  }
  return r;
}

/** The names of other stages a recipe reads. */
function stageRefs(recipe: Recipe, names: ReadonlySet<string>): Set<string> {
  const used = new Set<string>();
  mapModelRefs(recipe, (ref) => {
    if (names.has(ref)) used.add(ref);
    return ref;
  });
  return used;
}

/** The stages in an order where each follows the stages it reads (documents in file order otherwise). */
export function stageOrder(stages: readonly MergeStage[]): MergeStage[] {
  const names = new Set(stages.flatMap((s) => (s.name ? [s.name] : [])));
  const deps = new Map(stages.map((s) => [s, stageRefs(s.recipe, names)]));
  const byName = new Map(stages.flatMap((s) => (s.name ? [[s.name, s] as const] : [])));
  const order: MergeStage[] = [];
  const state = new Map<MergeStage, 'visiting' | 'done'>();
  const visit = (s: MergeStage, path: string[]): void => {
    if (state.get(s) === 'done') return;
    const label = s.name ?? '(final merge)';
    if (state.get(s) === 'visiting') throw new RecipeError('E_RECIPE_STAGE_CYCLE', `merge stages read each other in a cycle: ${[...path, label].join(' -> ')}; a stage can read only stages that do not read it`);
    state.set(s, 'visiting');
    for (const d of deps.get(s)!) {
      if (d === s.name) throw new RecipeError('E_RECIPE_STAGE_CYCLE', `merge stage '${d}' reads its own output`);
      visit(byName.get(d)!, [...path, label]);
    }
    state.set(s, 'done');
    order.push(s);
  };
  for (const s of stages) visit(s, []);
  return order;
}

function refuseNonEmpty(dir: string): void {
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new InputError('E_OUTPUT_EXISTS', `${dir}: the output folder exists and is not empty; choose a new folder or empty it`);
  }
}

/** Run the stages of a multi-stage config (see the file comment). */
export function mergeStages(stages: readonly MergeStage[], out: string, options: MergeStagesOptions = {}): StageResult[] {
  const unnamed = stages.filter((s) => s.name === null);
  if (unnamed.length > 1) throw new RecipeError('E_RECIPE_STAGE', 'only one merge may be without a name (the final one)');
  if (unnamed.length && stages.some((s) => s.name === 'final') && !options.finalOnly) {
    throw new RecipeError('E_RECIPE_STAGE', "a stage is named 'final' and the unnamed final merge is written to <output>/final too; rename that stage");
  }
  const order = stageOrder(stages);
  const final = unnamed[0] ?? order[order.length - 1]!;
  const outDir = resolve(out);
  const scratch = options.finalOnly ? join(dirname(outDir), `.${basename(outDir)}.stages-${process.pid}`) : null;
  const dirOf = (s: MergeStage): string => {
    if (options.finalOnly) return s === final ? outDir : join(scratch!, s.name ?? 'final');
    return join(outDir, s.name ?? 'final');
  };
  const folders = new Map(stages.flatMap((s) => (s.name ? [[s.name, dirOf(s)] as const] : [])));
  const resolved = new Map(order.map((s) => [s, mapModelRefs(s.recipe, (ref) => folders.get(ref) ?? ref)]));
  for (const s of order) refuseNonEmpty(dirOf(s));
  // plan every stage that reads no stage output now: its input errors before any output
  for (const s of order) {
    if (stageRefs(s.recipe, new Set(folders.keys())).size > 0) continue;
    const set = new SourceSet();
    try {
      planRecipe(resolved.get(s)!, set);
    } catch (err) {
      if (err instanceof InputError) err.message = `merge stage ${s.name ? `'${s.name}'` : '(final)'}: ${err.message}`;
      throw err;
    } finally {
      set.close();
    }
  }
  const results: StageResult[] = [];
  try {
    for (const [i, s] of order.entries()) {
      const dir = dirOf(s);
      options.onStage?.(i, order.length, s.name, dir);
      mkdirSync(dirname(dir), { recursive: true });
      try {
        results.push({ name: s.name, ...mergeToDisk(resolved.get(s)!, dir, options) });
      } catch (err) {
        if (err instanceof InputError) err.message = `merge stage ${s.name ? `'${s.name}'` : '(final)'}: ${err.message}`;
        throw err;
      }
    }
  } finally {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }
  return options.finalOnly ? results.filter((r) => r.dir === outDir) : results;
}
