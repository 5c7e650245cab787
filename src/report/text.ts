/**
 * Text views of a run for the terminal (`evomerge lineage`, `evomerge best`): one line per row,
 * no growing indent, readable in 100 columns, and each says what it leaves out and how to see it
 * (a larger --depth, --full, --json).
 */
import type { ParamSetting } from '../recipe/index.ts';
import { isFullFidelity, type CandidateRow, type RunRow, type RunStore } from '../store/index.ts';
import { isDfsRecipe } from './dfs.ts';
import { modelLabel } from './select.ts';

/** Parent lists in the graph view longer than this are shortened (`+N more`); --json has them all. */
export const PARENTS_SHOWN = 6;
/** The width the text views wrap their last column at. */
export const TEXT_WIDTH = 100;

/** A candidate's score for a table: fitness to 4 decimals (with the share of items a multi-fidelity estimate rests on), or its state. */
function scoreText(c: CandidateRow): string {
  if (c.fitness === null) return c.state;
  return `${c.fitness.toFixed(4)}${isFullFidelity(c) ? '' : ` (${Math.round(100 * c.fidelity!)}% items)`}`;
}

/** Rows as fixed-width columns: numbers right-aligned, text left-aligned; the last column is free. */
function columns(head: string[], rows: string[][], right: readonly boolean[]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((x, i) => (i === r.length - 1 ? x : right[i] ? x.padStart(widths[i]!) : x.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), ...rows.map(line)];
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * `evomerge lineage <run> <id>`: the chain of fittest parents (store.fittestChain), one line per
 * candidate from the given one back to a candidate without parents, then how many ancestors it
 * has in all and how to list them.
 */
export function lineageChainText(store: RunStore, run: RunRow, id: number): string[] {
  const chain = store.fittestChain(id);
  const ancestors = store.ancestorCount(id);
  const rows = chain.map(({ candidate: c, parents }) => [String(c.stage), String(c.generation), String(c.id), c.operator, scoreText(c), parents === 0 ? '-' : String(parents)]);
  return [
    `candidate ${id} of run '${run.name}' and its chain of fittest parents, one line per generation`,
    ...columns(['stage', 'gen', 'candidate', 'operator', 'fitness', 'parents'], rows, [true, true, true, false, true, true]),
    ...(ancestors === 0
      ? [`candidate ${id} has no parents`]
      : [
          `each line is the fittest of the parents of the line above; ${plural(ancestors, 'ancestor')} in all`,
          `every ancestor with its parents: evomerge lineage ${run.name} ${id} --full (or --json)`,
        ]),
  ];
}

/** The ancestor graph to a depth, and whether the depth cut it: candidates at that depth whose parents are not listed. */
export function lineageGraph(store: RunStore, id: number, maxDepth = Infinity) {
  const entries = store.lineage(id, maxDepth);
  const listed = new Set(entries.map((e) => e.candidate.id));
  const frontier = entries.filter((e) => e.depth === maxDepth && e.parents.some((p) => !listed.has(p.id))).map((e) => e.candidate.id);
  return { entries, cut: frontier.length > 0 ? { depth: maxDepth, frontier } : null };
}

/** `evomerge lineage <run> <id> --full`: every ancestor once, nearest first, with all (or the first few) of its parents. */
export function lineageGraphText(store: RunStore, run: RunRow, id: number, maxDepth = Infinity): string[] {
  const { entries, cut } = lineageGraph(store, id, maxDepth);
  let shortened = 0;
  const rows = entries.map(({ candidate: c, depth, parents }) => {
    const shown = parents.slice(0, PARENTS_SHOWN).map((p) => String(p.id)).join(', ');
    if (parents.length > PARENTS_SHOWN) shortened++;
    return [String(depth), String(c.stage), String(c.generation), String(c.id), c.operator, scoreText(c), parents.length === 0 ? '-' : `${shown}${parents.length > PARENTS_SHOWN ? ` +${parents.length - PARENTS_SHOWN} more` : ''}`];
  });
  const lines = [
    `candidate ${id} of run '${run.name}' and its ${plural(entries.length - 1, 'ancestor')}${cut ? ` to depth ${maxDepth}` : ''}, each once, nearest first (depth: generations back)`,
    ...columns(['depth', 'stage', 'gen', 'candidate', 'operator', 'fitness', 'parents'], rows, [true, true, true, true, false, true, false]),
  ];
  if (cut) {
    const all = store.ancestorCount(id);
    lines.push(
      `cut at depth ${maxDepth} (--depth ${maxDepth}): ${all - (entries.length - 1)} of the ${plural(all, 'ancestor')} are not listed`,
      `(${plural(cut.frontier.length, 'candidate')} at depth ${maxDepth} ha${cut.frontier.length === 1 ? 's' : 've'} parents not listed; a larger --depth lists more, no --depth all)`,
    );
  }
  if (shortened > 0) lines.push(`parent lists longer than ${PARENTS_SHOWN} are shortened (+N more) on ${plural(shortened, 'line')}; --json lists every parent`);
  return lines;
}

/** `evomerge lineage --json`: the graph with each entry's parents, the chain of fittest parents, and the cut. */
export function lineageJson(store: RunStore, run: RunRow, id: number, maxDepth = Infinity) {
  const { entries, cut } = lineageGraph(store, id, maxDepth);
  return {
    run: run.name,
    candidate: id,
    maxDepth: Number.isFinite(maxDepth) ? maxDepth : null,
    cut,
    chain: store.fittestChain(id).map((e) => e.candidate.id),
    lineage: entries.map((e) => ({ id: e.candidate.id, depth: e.depth, stage: e.candidate.stage, generation: e.candidate.generation, operator: e.candidate.operator, fitness: e.candidate.fitness, state: e.candidate.state, parents: e.parents })),
  };
}

/** Every number in a parameter setting: a scalar, a gradient's points, the values of conditionals. */
function numbersOf(s: ParamSetting | undefined): number[] {
  if (s === undefined) return [];
  if (typeof s === 'number') return [s];
  if (Array.isArray(s)) return (s as unknown[]).flatMap((x) => (typeof x === 'object' && x !== null ? numbersOf((x as { value: ParamSetting }).value) : typeof x === 'number' ? [x] : []));
  if (typeof s === 'object' && s !== null) return numbersOf((s as { value: ParamSetting }).value);
  return [];
}

const short = (v: number) => String(Number(v.toPrecision(3)));
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * A recipe in a few words: the method and, for each model, the mean of each numeric parameter
 * over its layer groups, filters and gradient points (then the global parameters); a layer path
 * as its length, sources and range of scales.
 */
export function recipeSummary(run: RunRow, recipe: unknown): { method: string; parameters: string } {
  if (isDfsRecipe(recipe)) {
    const scales = recipe.steps.map((s) => s.scale);
    return {
      method: 'layer path',
      parameters: `${plural(recipe.steps.length, 'step')} through ${recipe.sources.map((s) => s.name).join(', ')}${scales.length ? `; scales ${short(Math.min(...scales))} to ${short(Math.max(...scales))}` : ''}`,
    };
  }
  const r = recipe as { method?: unknown; parameters?: Record<string, ParamSetting>; sources?: Array<{ model: string; parameters?: Record<string, ParamSetting> }>; slices?: Array<{ sources: Array<{ model: string; parameters?: Record<string, ParamSetting> }>; parameters?: Record<string, ParamSetting> }> };
  if (typeof r?.method !== 'string') return { method: '?', parameters: '' };
  const perModel = new Map<string, Map<string, number[]>>();
  const global = new Map<string, number[]>();
  const collect = (into: Map<string, number[]>, params: Record<string, ParamSetting> | undefined) => {
    for (const [k, v] of Object.entries(params ?? {})) {
      const xs = numbersOf(v);
      if (xs.length) into.set(k, [...(into.get(k) ?? []), ...xs]);
    }
  };
  const sources = r.slices ? r.slices.flatMap((s) => s.sources) : (r.sources ?? []);
  for (const src of sources) {
    if (!src.parameters) continue;
    if (!perModel.has(src.model)) perModel.set(src.model, new Map());
    collect(perModel.get(src.model)!, src.parameters);
  }
  for (const s of r.slices ?? []) collect(global, s.parameters);
  collect(global, r.parameters);
  const params = (m: Map<string, number[]>) => [...m].map(([k, xs]) => `${k} ${short(mean(xs))}`).join(' ');
  const parts = [...[...perModel].filter(([, m]) => m.size > 0).map(([model, m]) => `${modelLabel(run, model)}: ${params(m)}`), ...(global.size ? [params(global)] : [])];
  return { method: r.method, parameters: parts.join('; ') };
}

/** Words of `text` (split after `; `) in lines of at most `width` characters (a longer piece stays whole). */
function wrap(text: string, width: number): string[] {
  const pieces = text.split(/(?<=; )/);
  const out: string[] = [];
  let cur = '';
  for (const p of pieces) {
    if (cur && cur.length + p.trimEnd().length > width) {
      out.push(cur.trimEnd());
      cur = '';
    }
    cur += p;
  }
  if (cur || out.length === 0) out.push(cur.trimEnd());
  return out;
}

/**
 * `evomerge best <run>` as a table: id, fitness, stage, generation, method and a summary of the
 * recipe (recipeSummary), wrapped to 100 columns; the last line says where the full recipes are.
 */
export function bestTable(run: RunRow, candidates: ReadonlyArray<{ id: number; stage: number; generation: number; fitness: number; recipe: unknown; selection?: number | null; chosen?: boolean }>, scored: number, top: number): string[] {
  // a run with a selection split (space select) shows each candidate's score there, and which one was chosen
  const withSel = candidates.some((c) => c.selection !== undefined && c.selection !== null);
  const rows = candidates.map((c) => {
    const s = recipeSummary(run, c.recipe);
    const id = `${c.chosen ? '*' : ''}${c.id}`;
    return { cells: [id, c.fitness.toFixed(4), ...(withSel ? [c.selection === null || c.selection === undefined ? '-' : c.selection.toFixed(4)] : []), String(c.stage), String(c.generation), s.method], parameters: s.parameters };
  });
  const head = ['id', 'fitness', ...(withSel ? ['selection'] : []), 'stage', 'gen', 'method'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r.cells[i]!.length)));
  const right = [true, true, ...(withSel ? [true] : []), true, true, false];
  const cells = (r: string[]) => r.map((x, i) => (right[i] ? x.padStart(widths[i]!) : x.padEnd(widths[i]!))).join('  ');
  const indent = widths.reduce((a, b) => a + b + 2, 0);
  const width = Math.max(30, TEXT_WIDTH - indent);
  const lines = [
    `run '${run.name}': ${candidates.length === 1 ? 'the best candidate' : `the ${candidates.length} best candidates`} of ${plural(scored, 'scored candidate')}`,
    `${cells(head)}  parameters (per model: mean over layer groups and filters)`,
  ];
  for (const r of rows) {
    const [first, ...rest] = wrap(r.parameters, width);
    lines.push(`${cells(r.cells)}  ${first}`.trimEnd(), ...rest.map((x) => `${' '.repeat(indent)}${x}`));
  }
  if (candidates.some((c) => c.chosen)) lines.push(`* the run's chosen candidate (space select${withSel ? ': the best of the top candidates on the selection split' : ': its rule over the top candidates'}), what export --best writes; the others follow by fitness`);
  lines.push(`the recipes and metrics: evomerge best ${run.name}${top !== 1 ? ` --top ${top}` : ''} --json; export: evomerge export ${run.name} --candidate ${candidates[0]?.id ?? '<id>'}`);
  return lines;
}
