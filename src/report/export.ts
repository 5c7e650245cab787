/**
 * `evomerge export`: a run's chosen candidates in the formats users already have tools for.
 * - recipe: the candidate's recipe as the run stored it (an evomerge recipe, or a DFS layer path);
 * - mergekit: a mergekit YAML config (DFS paths as passthrough slices, the scales in a comment);
 * - model: a Hugging Face folder written by `mergeToDisk`, the writer of `evomerge merge`, so
 *   `evomerge merge <candidate>/model/recipe.json` reproduces its tensors byte for byte;
 * - card: README.md with the sources, method, parameters per layer group, scores, run and lineage.
 * Each candidate goes to `<dir>/candidate-<id>/`.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { writeFileAtomic } from '../checkpoint/atomic.ts';
import { join, resolve } from 'node:path';
import { openCheckpoint } from '../checkpoint/index.ts';
import { loadManifest } from '../eval/index.ts';
import { familyOf } from '../models/load.ts';
import { parseRecipe, recipeToMergekitYaml, type Recipe } from '../recipe/index.ts';
import type { CandidateRow, RunRow, RunStore } from '../store/index.ts';
import { dfsAsPassthrough, endsMismatch, isDfsRecipe, psBestCandidateId, scaledSteps, type DfsRecipe } from './dfs.ts';
import { ExportError, ExportNotSupportedError } from './errors.ts';
import { modelCard, type CardScores } from './card.ts';
import { mergeToDisk, type MergeResult } from './merge-folder.ts';
import { selectCandidates, spaceOf, type Selection } from './select.ts';
import { chosenCandidate, isSelectionMetric, SELECTION, selectionSettings } from '../search/select.ts';

export const EXPORT_FORMATS = ['recipe', 'mergekit', 'model', 'card'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export function parseExportFormats(text: string): ExportFormat[] {
  const names = text.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = names.filter((n) => !(EXPORT_FORMATS as readonly string[]).includes(n));
  if (bad.length || names.length === 0) throw new ExportError('E_EXPORT_FORMAT', `--format ${JSON.stringify(text)}: ${bad.length ? `unknown ${bad.join(', ')}; ` : ''}choose from ${EXPORT_FORMATS.join(', ')} (comma-separated)`);
  return [...new Set(names)] as ExportFormat[];
}

export interface ExportOptions extends Selection {
  formats?: readonly ExportFormat[];
  /** Test-split scores of a candidate for the card (null: not computed). */
  testScores?: (candidate: CandidateRow, recipe: Recipe | null) => Promise<Record<string, number> | null>;
  onLog?: (line: string) => void;
}

export interface ExportedCandidate {
  id: number;
  dir: string;
  fitness: number | null;
  files: string[];
  /** Formats asked for but not written, with the reason. */
  skipped: Array<{ format: ExportFormat; reason: string }>;
  merge?: MergeResult;
}

function emptyOrAbsent(dir: string): boolean {
  return !existsSync(dir) || readdirSync(dir).length === 0;
}

/** The stored PS recipe of a candidate, validated. */
function psRecipeOf(c: CandidateRow): Recipe {
  return parseRecipe(c.recipe, `candidate ${c.id} recipe`);
}

function header(run: RunRow, c: CandidateRow): string {
  return `# evomerge run '${run.name}', candidate ${c.id} (stage ${c.stage}, generation ${c.generation}), fitness ${c.fitness}\n`;
}

/**
 * The DFS candidate's stacking as a passthrough recipe over checkpoints on disk. A hybrid run's
 * `ps-best:` source is exported next to it (through mergeToDisk) when `writeSources` is set.
 */
function dfsPlan(store: RunStore, dfs: DfsRecipe, outDir: string, writeSources: boolean, log: (l: string) => void): { recipe: Recipe; extra: string[]; psBest: Array<{ id: number; dir: string; recipe: Recipe }> } {
  const psBest: Array<{ id: number; dir: string; recipe: Recipe }> = [];
  const extra: string[] = [];
  const pathOf = (p: string) => {
    const id = psBestCandidateId(p);
    if (id === null) return p;
    const dir = join(outDir, `ps-best-candidate-${id}`);
    if (!psBest.some((x) => x.id === id)) {
      const c = store.candidate(id);
      if (!c) throw new ExportError('E_EXPORT_CANDIDATE', `the path's source ${p} names candidate ${id}, which is not in the run database`);
      psBest.push({ id, dir, recipe: psRecipeOf(c) });
    }
    return dir;
  };
  const recipe = dfsAsPassthrough(dfs, pathOf);
  for (const p of psBest) {
    writeFileAtomic(`${p.dir}.recipe.json`, `${JSON.stringify(p.recipe, null, 2)}\n`);
    extra.push(`${p.dir}.recipe.json`);
    if (writeSources) {
      log(`writing the PS stage's best (candidate ${p.id}), source 0 of the path, to ${p.dir} ...`);
      mergeToDisk(p.recipe, p.dir);
      extra.push(p.dir);
    }
  }
  return { recipe, extra, psBest };
}

function dfsMergekitYaml(run: RunRow, c: CandidateRow, dfs: DfsRecipe, recipe: Recipe, psBest: Array<{ id: number; dir: string }>): string {
  const lines = [
    header(run, c).trimEnd(),
    '# A data-flow (layer path) candidate written as passthrough layer stacking.',
    '# mergekit has no per-step scale: evomerge multiplies the hidden state entering each step by the scale below,',
    '# so this config is exact only where every scale is 1.',
    ...dfs.steps.map((s, i) => `#   step ${i}: ${dfs.sources[s.source]?.name ?? s.source} layer ${s.layer}, scale ${s.scale}`),
    `# embeddings from ${dfs.sources[dfs.embeddings_from]?.name}, head from ${dfs.sources[dfs.head_from]?.name}`,
    ...psBest.map((p) => `# ${p.dir} is the PS stage's best (candidate ${p.id}): build it first from ${p.dir}.recipe.json (evomerge merge)`),
  ];
  return `${lines.join('\n')}\n${recipeToMergekitYaml(recipe)}`;
}

/** Evaluation scores of a candidate as stored, with each evaluator's split. */
function storedScores(store: RunStore, run: RunRow, c: CandidateRow): CardScores['validation'] {
  const splits = new Map<string, string>();
  for (const e of spaceOf(run).evaluators) {
    try {
      splits.set(e.id, loadManifest(e.manifest).split);
    } catch {
      splits.set(e.id, 'search');
    }
  }
  // selection scores (space select) carry their evaluator's split too
  for (const e of (run.space as { selectEvaluators?: Array<{ id: string; manifest: string }> } | null)?.selectEvaluators ?? []) {
    try {
      splits.set(`${SELECTION}:${e.id}`, loadManifest(e.manifest).split);
    } catch {
      splits.set(`${SELECTION}:${e.id}`, 'selection');
    }
  }
  return store.metrics(c.id).map((m) => ({ ...m, split: splits.get(m.evaluator) ?? (isSelectionMetric(m) ? 'selection' : 'search') }));
}

/** Export the selected candidates of a run into `dir`. */
export async function exportCandidates(store: RunStore, run: RunRow, dir: string, options: ExportOptions = {}): Promise<ExportedCandidate[]> {
  const formats = options.formats ?? EXPORT_FORMATS;
  const log = options.onLog ?? (() => {});
  const selected = selectCandidates(store, run, options);
  const chosen = selectionSettings(run.space) ? chosenCandidate(store, run) : null;
  const root = resolve(dir);
  const out: ExportedCandidate[] = [];
  for (const c of selected) {
    const cdir = join(root, `candidate-${c.id}`);
    if (!emptyOrAbsent(cdir)) throw new ExportError('E_OUTPUT_EXISTS', `${cdir}: exists and is not empty; choose another -o folder or empty it`);
  }
  for (const c of selected) {
    const cdir = join(root, `candidate-${c.id}`);
    mkdirSync(cdir, { recursive: true });
    const files: string[] = [];
    const skipped: ExportedCandidate['skipped'] = [];
    let merge: MergeResult | undefined;
    const dfs = isDfsRecipe(c.recipe) ? (c.recipe as DfsRecipe) : null;
    const ps = dfs ? null : psRecipeOf(c);
    const modelDir = join(cdir, 'model');
    const want = (f: ExportFormat) => formats.includes(f);

    if (want('recipe')) {
      writeFileAtomic(join(cdir, 'recipe.json'), `${JSON.stringify(dfs ?? ps, null, 2)}\n`);
      files.push(join(cdir, 'recipe.json'));
    }

    let stacking: ReturnType<typeof dfsPlan> | null = null;
    let modelRefusal: string | null = null;
    if (dfs) {
      const scaled = scaledSteps(dfs);
      const firstReal = dfs.sources.find((s) => psBestCandidateId(s.path) === null)?.path;
      let inputIsPost = false;
      if (firstReal) {
        const ck = openCheckpoint(firstReal);
        try {
          inputIsPost = familyOf(ck.config, `${firstReal}/config.json`) === 'residual-mlp';
        } finally {
          ck.close();
        }
      }
      const ends = endsMismatch(dfs, inputIsPost);
      if (scaled.length) {
        modelRefusal = `candidate ${c.id} is a layer path whose steps ${scaled.slice(0, 6).map((s) => `${s.step} (scale ${s.scale.toFixed(4)})`).join(', ')}${scaled.length > 6 ? ', ...' : ''} scale the hidden state; no checkpoint format holds a per-step scale and it cannot be folded exactly into the weights (every layer normalises its input with an epsilon), so writing this model is not supported yet. The mergekit export states the scales; a search with scale_range [1, 1] gives paths that export as checkpoints`;
      } else if (ends) {
        modelRefusal = `candidate ${c.id}: ${ends}; writing this model is not supported yet (the stacked checkpoint would take other end weights than the ones scored)`;
      }
      if (want('mergekit') || (want('model') && !modelRefusal)) {
        stacking = dfsPlan(store, dfs, cdir, want('model') && !modelRefusal, log);
        files.push(...stacking.extra);
      }
    }

    if (want('mergekit')) {
      try {
        const text = dfs ? dfsMergekitYaml(run, c, dfs, stacking!.recipe, stacking!.psBest) : `${header(run, c)}${recipeToMergekitYaml(ps!)}`;
        writeFileAtomic(join(cdir, 'mergekit.yml'), text);
        files.push(join(cdir, 'mergekit.yml'));
      } catch (err) {
        skipped.push({ format: 'mergekit', reason: (err as Error).message });
      }
    }

    if (want('model')) {
      if (modelRefusal) {
        if (formats.length === 1) throw new ExportNotSupportedError('E_EXPORT_DFS_MODEL', modelRefusal);
        skipped.push({ format: 'model', reason: modelRefusal });
      } else {
        const recipe = dfs ? stacking!.recipe : ps!;
        log(`writing candidate ${c.id}'s merged model to ${modelDir} ...`);
        merge = mergeToDisk(recipe, modelDir);
        files.push(modelDir);
      }
    }

    if (want('card')) {
      const test = options.testScores ? await options.testScores(c, ps) : null;
      const card = modelCard({
        store, run, candidate: c, recipe: ps, dfs, stacked: stacking?.recipe ?? null,
        scores: { validation: storedScores(store, run, c), test }, skipped, selection: chosen,
      });
      writeFileAtomic(join(cdir, 'README.md'), card);
      files.push(join(cdir, 'README.md'));
      // the model folder carries the card too (mergeToDisk's generic card is replaced)
      if (merge) copyFileSync(join(cdir, 'README.md'), join(modelDir, 'README.md'));
    }
    out.push({ id: c.id, dir: cdir, fitness: c.fitness, files, skipped, ...(merge ? { merge } : {}) });
  }
  return out;
}
