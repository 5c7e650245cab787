/**
 * The model card (README.md of a merged model): what a reader of a model hub needs to trust and
 * reproduce it, in two depths. A recipe merged by `evomerge merge` gets `mergedModelCard`: its
 * sources, method, parameters, seed and recipe hash. An exported candidate of a run gets
 * `modelCard`: sources, the method, the parameters as a table per layer group (PS) or the layer
 * path (DFS), the scores (validation from the run, test when computed), the run, the candidate
 * and its lineage. Both open with the same front matter (the model hub's tags).
 */
import { getMethod } from '../methods/index.ts';
import type { MergePlan } from '../merge/index.ts';
import type { ParamSetting, Recipe } from '../recipe/index.ts';
import type { CandidateRow, MetricValue, RunRow, RunStore } from '../store/index.ts';
import type { DfsRecipe } from './dfs.ts';
import { modelLabel, spaceOf } from './select.ts';
import type { Chosen } from '../search/select.ts';

export interface CardScores {
  validation: Array<MetricValue & { split: string }>;
  test: Record<string, number> | null;
}

export interface CardInput {
  store: RunStore;
  run: RunRow;
  candidate: CandidateRow;
  recipe: Recipe | null;
  dfs: DfsRecipe | null;
  stacked: Recipe | null;
  scores: CardScores;
  skipped: Array<{ format: string; reason: string }>;
  /** The run's choice when its space has `select` (src/search/select.ts chosenCandidate). */
  selection?: Chosen | null;
}

/** A number for a table: 4 significant digits, integers as they are. */
export function fmt(v: number | null | undefined): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '-';
  if (Number.isInteger(v)) return String(v);
  return Number(v.toPrecision(4)).toString();
}

/** A parameter setting as text: a scalar, a gradient, or `filter: value` conditionals. */
export function settingText(s: ParamSetting | undefined): string {
  if (s === undefined) return '';
  if (typeof s === 'number') return fmt(s);
  if (typeof s === 'string' || typeof s === 'boolean') return String(s);
  if (Array.isArray(s)) {
    if (s.every((x) => typeof x !== 'object' || x === null)) return `[${(s as unknown[]).map((x) => (typeof x === 'number' ? fmt(x) : String(x))).join(', ')}]`;
    return (s as Array<{ filter?: string | null; value: ParamSetting }>).map((c) => `${c.filter ?? '*'}: ${settingText(c.value)}`).join('; ');
  }
  return settingText([s]);
}

/** YAML front matter with the model hub's tags: `mergekit` where mergekit can express the merge. */
function frontMatter(mergekit: boolean): string[] {
  return ['---', 'tags:', '- merge', '- evomerge', ...(mergekit ? ['- mergekit'] : []), '---'];
}

const cell = (t: string) => t.replace(/\|/g, '\\|');

function table(head: string[], rows: string[][]): string[] {
  return [`| ${head.map(cell).join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)];
}

/** Rows of a PS recipe's parameters: one per slice (layer group), one column per model and parameter. */
export function parameterTable(run: RunRow, recipe: Recipe): { head: string[]; rows: string[][] } {
  const cols: string[] = [];
  const rows: Array<Map<string, string>> = [];
  const groups: string[] = [];
  const add = (row: Map<string, string>, col: string, v: string) => {
    if (!cols.includes(col)) cols.push(col);
    row.set(col, v);
  };
  const slices = recipe.slices ?? [{ sources: (recipe.sources ?? []).map((s) => ({ model: s.model, layer_range: [0, 0] as [number, number], parameters: s.parameters })), parameters: undefined }];
  for (const s of slices) {
    const row = new Map<string, string>();
    const r = s.sources[0]!.layer_range;
    groups.push(recipe.slices ? (r[1] - r[0] === 1 ? `layer ${r[0]}` : `layers ${r[0]}-${r[1] - 1}`) : 'all layers');
    for (const src of s.sources) for (const [k, v] of Object.entries(src.parameters ?? {})) add(row, `${modelLabel(run, src.model)} ${k}`, settingText(v));
    for (const [k, v] of Object.entries(s.parameters ?? {})) add(row, k, settingText(v));
    for (const [k, v] of Object.entries(recipe.parameters ?? {})) add(row, k, settingText(v));
    rows.push(row);
  }
  return { head: ['layer group', ...cols], rows: rows.map((row, i) => [groups[i]!, ...cols.map((c) => row.get(c) ?? '')]) };
}

/**
 * The chain of fittest parents back from a candidate (store.fittestChain), at most `maxSteps`
 * steps of it, with the number of all its ancestors; `cut` says how much of the chain was left
 * out and where it ends, so a card never shortens it without a word.
 */
export function lineageChain(store: RunStore, id: number, maxSteps = 50): {
  chain: Array<{ candidate: CandidateRow; operator: string; parents: number }>;
  ancestors: number;
  cut: { steps: number; oldest: CandidateRow } | null;
} {
  const whole = store.fittestChain(id).map((e) => ({ candidate: e.candidate, operator: e.candidate.operator, parents: e.parents }));
  const chain = whole.slice(0, maxSteps);
  const cut = whole.length > chain.length ? { steps: whole.length - chain.length, oldest: whole.at(-1)!.candidate } : null;
  return { chain, ancestors: store.ancestorCount(id), cut };
}

export function modelCard(input: CardInput): string {
  const { run, candidate: c, recipe, dfs, stacked, scores } = input;
  const s = spaceOf(run);
  const method = recipe ? getMethod(recipe.method) : null;
  const lines: string[] = [
    ...frontMatter(Boolean(method?.mergekitId || dfs)),
    '',
    `# ${run.name}: candidate ${c.id}`,
    '',
    `Found by evomerge's evolutionary search, run \`${run.name}\`${s.spacePath ? ` (search space \`${s.spacePath}\`)` : ''}: stage ${c.stage} (${dfs ? 'data-flow space, a layer path' : 'parameter space, a merge recipe'}), generation ${c.generation}, made by \`${c.operator}\`. Fitness ${fmt(c.fitness)}${c.fidelity !== null && c.fidelity < 1 ? ` (an estimate on ${fmt(100 * c.fidelity)}% of each evaluator's items: multi-fidelity evaluation stopped it there)` : ''}${c.objectives ? `, objectives [${c.objectives.map(fmt).join(', ')}]` : ''}. Recipe hash \`${c.recipeHash}\`.`,
    '',
    '## Sources',
    '',
  ];
  if (dfs) lines.push(...table(['index', 'name', 'path'], dfs.sources.map((x, i) => [String(i), x.name, x.path])));
  else lines.push(...table(['name', 'path'], [...(s.base ? [['base', s.base]] : []), ...s.models.map((m) => [m.name, m.path])]));
  lines.push('', '## Method', '');
  if (method && recipe) {
    lines.push(`**${method.title}** (\`${method.id}\`): ${method.reference}. Seed ${recipe.seed}.`, '', '### Parameters by layer group', '');
    const t = parameterTable(run, recipe);
    lines.push(...table(t.head, t.rows));
  } else if (dfs) {
    lines.push(
      'A data-flow merge (Akiba et al. 2024, "Evolutionary Optimization of Model Merging Recipes", section 3.2): the model runs the layers below in order, each step multiplying the hidden state entering its layer by its scale.',
      `Embeddings from ${dfs.sources[dfs.embeddings_from]?.name}, head from ${dfs.sources[dfs.head_from]?.name}.`,
      '',
      '### Layer path',
      '',
      ...table(['step', 'source', 'layer', 'scale'], dfs.steps.map((x, i) => [String(i), dfs.sources[x.source]?.name ?? String(x.source), String(x.layer), fmt(x.scale)])),
      '',
      stacked
        ? `As layer stacking it is mergekit's \`passthrough\` over ${stacked.slices!.length} slice(s) (mergekit.yml). mergekit has no per-step scale: the stacking is exact only where every scale is 1.`
        : '',
    );
  }
  lines.push('', '## Evaluation', '');
  const evals = [...new Set(scores.validation.map((m) => m.evaluator))];
  if (evals.length) {
    lines.push(...table(['evaluator', 'split', 'metric', 'value'], scores.validation.map((m) => [m.evaluator, m.split, m.metric, fmt(m.value)])));
    lines.push('', `Fitness is the weighted sum of the evaluators' fitness (${s.evaluators.map((e) => `${e.id} x ${e.weight}`).join(', ')}); \`fitness_se\` is an evaluator's standard error (on unseen items of the same kind).`);
  } else lines.push('No metrics stored for this candidate.');
  const sel = input.selection;
  if (sel && sel.selectionFitness !== null) {
    lines.push('', sel.candidate.id === c.id
      ? `Chosen on a second split (\`select:\` rows above): the run's top ${sel.pool} candidates on the search's fitness were scored on the selection split and this one was the best there (rule ${sel.rule}). Search fitness ${fmt(sel.searchFitness)}, selection split ${fmt(sel.selectionFitness)}${sel.selectionSE !== null ? ` +- ${fmt(sel.selectionSE)}` : ''}: the optimism of the search is ${fmt(sel.optimism)}${sel.reference ? ` (its gain over the best fixed recipe, candidate ${sel.reference.id}, is ${fmt(sel.searchFitness - sel.reference.searchFitness)} on the search's split and ${fmt(sel.selectionFitness - sel.reference.selectionFitness)} on the selection split)` : ' (search fitness minus the selection score)'}.${sel.searchBest.id !== c.id ? ` The search's own maximum was candidate ${sel.searchBest.id} (fitness ${fmt(sel.searchBest.fitness)}).` : ''}`
      : `This is not the run's chosen candidate: the run chose candidate ${sel.candidate.id} on its selection split (selection ${fmt(sel.selectionFitness)}).`);
  }
  lines.push('');
  if (scores.test) {
    lines.push('Test split (scored after the search, never seen by it):', '', ...table(['task', 'score'], Object.entries(scores.test).map(([k, v]) => [k, fmt(v)])));
  } else lines.push('Test split: not scored for this export.');
  const { chain, ancestors, cut } = lineageChain(input.store, c.id);
  lines.push('', '## Lineage', '', `${ancestors} ancestor(s) in the run. The chain of fittest parents (from each candidate to its fittest parent)${cut ? `, its first ${chain.length} steps` : ''}:`, '');
  lines.push(...table(['candidate', 'stage', 'generation', 'operator', 'fitness', 'parents'], chain.map((e) => [String(e.candidate.id), String(e.candidate.stage), String(e.candidate.generation), e.operator, fmt(e.candidate.fitness), String(e.parents)])));
  if (cut) lines.push('', `The chain goes on for ${cut.steps} more step(s), back to candidate ${cut.oldest.id} (stage ${cut.oldest.stage}, generation ${cut.oldest.generation}); this card shows ${chain.length}. \`evomerge lineage ${run.name} ${c.id}\` prints it whole.`);
  if (input.skipped.length) {
    lines.push('', '## Not exported', '', ...input.skipped.map((x) => `- ${x.format}: ${x.reason}`));
  }
  lines.push('', `Reproduce: \`evomerge export ${run.name} --candidate ${c.id} -o <dir>\`${recipe ? `, or \`evomerge merge recipe.json -o <dir>\`` : ''}.`, '');
  return lines.join('\n');
}

/** The card of a recipe merged by `evomerge merge` (no run behind it): `hash` is the recipe's, `seed` the merge's. */
export function mergedModelCard(plan: MergePlan, hash: string, seed: number): string {
  const r = plan.recipe;
  const m = plan.method;
  const lines = [
    ...frontMatter(Boolean(m.mergekitId)),
    '',
    `# Merged model`,
    '',
    `Made with evomerge using **${m.title}** (\`${m.id}\`): ${m.reference}.`,
    '',
    '## Sources',
    '',
    ...(r.base ? [`- base: \`${r.base}\``] : []),
    ...plan.models.filter((x) => x !== r.base).map((x) => `- \`${x}\``),
    '',
    '## Parameters',
    '',
  ];
  for (const p of m.params) {
    const set = r.parameters && Object.hasOwn(r.parameters, p.name) ? JSON.stringify(r.parameters[p.name]) : null;
    lines.push(`- \`${p.name}\` (${p.scope}): ${set ?? (p.default === undefined ? (p.scope === 'per-model' ? 'set per model (below)' : 'required') : `default ${JSON.stringify(p.default)}`)}`);
  }
  for (const s of r.sources ?? []) if (s.parameters) lines.push(`- \`${s.model}\`: ${JSON.stringify(s.parameters)}`);
  for (const [i, s] of (r.slices ?? []).entries()) {
    lines.push(`- slice ${i}: ${s.sources.map((x) => `\`${x.model}\` layers [${x.layer_range.join(', ')})${x.parameters ? ` ${JSON.stringify(x.parameters)}` : ''}`).join(', ')}${s.parameters ? `; ${JSON.stringify(s.parameters)}` : ''}`);
  }
  lines.push('', `Seed: ${seed}. Recipe hash: \`${hash}\`. The full recipe is in \`recipe.json\`.`, '');
  return lines.join('\n');
}
