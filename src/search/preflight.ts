/**
 * What a search checks before it writes anything: that every evaluator can work on the sources
 * (model family, config, heads, the program of a command evaluator, the tensors the first
 * candidate's merge would give it), and that the run fits in memory and on disk (the memory
 * plan). A gradient stage's set-up is checked by the stage itself (src/refine/preflight.ts),
 * called from the engine's preparation at the same point. A set-up error no candidate could escape is refused here, with the reason and the way
 * out, instead of failing every candidate of a run.
 */
import { accessSync, constants } from 'node:fs';
import { freemem, tmpdir, totalmem } from 'node:os';
import { delimiter, join } from 'node:path';
import { InputError, SetupError } from '../errors.ts';
import { formatBytes, formatCount } from '../format.ts';
import { loadManifest, type Manifest } from '../eval/index.ts';
import { isInputEnd, type MergePlan } from '../merge/index.ts';
import { familyOf, llamaShapesOf, MLP_ARCHITECTURE, parseLlamaConfig, parseResidualMlpConfig, residualMlpTensorShapes, type ModelFamily } from '../models/index.ts';
import { isFloatDType } from '../tensor/dtype.ts';
import type { ResolvedSpace } from './resolve.ts';
import { chooseCandidateDir, freeBytes, onTmpfs, rungSizes, slotSpecs, tensorBytes, type SlotSpec, type SourceModel, type SourceModels } from '../candidate/index.ts';

export { SetupError } from '../errors.ts';

/** The family a manifest's model must be of, or null for a command evaluator with `family: any`. */
function familyNeeded(m: Manifest): ModelFamily | null {
  return m.family === 'any' ? null : m.family;
}

/** Where a program named by a command evaluator is, or null. */
function findProgram(name: string): string | null {
  const runnable = (p: string) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (name.includes('/')) return runnable(name) ? name : null;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) if (dir && runnable(join(dir, name))) return join(dir, name);
  return null;
}

/** That a source is of the family an evaluator runs, its config parses as that family's, and the head it scores exists. */
function checkFamily(m: Manifest, file: string, id: string, model: SourceModel): void {
  const family = familyNeeded(m);
  if (!family) return;
  const configFile = `${model.path}/config.json`;
  let found: ModelFamily;
  try {
    found = familyOf(model.config, configFile);
  } catch (err) {
    throw new SetupError('E_SETUP_FAMILY', `evaluator '${id}' (${file}) runs ${family} models, but ${(err as Error).message}. For another architecture use a command evaluator with 'family: any', which needs only the checkpoint folder`);
  }
  if (found !== family) throw new SetupError('E_SETUP_FAMILY', `evaluator '${id}' (${file}) runs ${family} models, but ${configFile} is a ${found} model; choose an evaluator of that family`);
  if (m.kind === 'command') return;
  // the config must parse as the family's (a wrong field fails here, not in every candidate)
  if (family === 'llama') parseLlamaConfig(model.config, configFile);
  else {
    const c = parseResidualMlpConfig(model.config, configFile);
    if (m.kind === 'classification' && m.head !== undefined && !c.heads.some((h) => h.name === m.head)) {
      throw new SetupError('E_SETUP_HEAD', `evaluator '${id}' (${file}) scores head '${m.head}', but ${configFile} has the heads ${c.heads.map((h) => h.name).join(', ') || '(none)'}`);
    }
  }
}

/**
 * The tensors a model evaluator's family needs, against the first candidate's merge plan: a
 * missing tensor or a wrong shape is named here rather than in each candidate's model upload.
 */
function checkPlanShapes(plan: MergePlan, model: SourceModel, id: string): void {
  const family = familyOf(model.config, `${model.path}/config.json`);
  const expected = family === 'llama' ? llamaShapesOf(parseLlamaConfig(model.config)) : residualMlpTensorShapes(parseResidualMlpConfig(model.config));
  const tasks = new Map(plan.tasks.map((t) => [t.name, t]));
  for (const e of expected) {
    const t = tasks.get(e.name);
    if (!t) throw new SetupError('E_SETUP_TENSORS', `evaluator '${id}' runs the merged model as ${family}, whose config implies tensor ${e.name} [${e.shape.join(', ')}], but the merge does not produce it; check config.json against the checkpoint's tensors (evomerge inspect)`);
    if (t.shape.join(',') !== e.shape.join(',')) throw new SetupError('E_SETUP_TENSORS', `tensor ${e.name} of the merge is [${t.shape.join(', ')}] but the ${family} config of ${model.path} implies [${e.shape.join(', ')}]; check config.json against the weights`);
  }
}

export interface StageChecks {
  kind: 'ps' | 'dfs';
  /** The sources the stage's candidates read (PS: base and models; DFS: the path's sources). */
  sources: SourceModel[];
  /** PS: the plan of the first candidate (the optimizer's starting genome), built by the caller. */
  firstPlan?: () => MergePlan;
  /** DFS: the space's scale range and ends. */
  dfs?: { scaleRange: readonly [number, number]; embeddings: number; head: number };
}

/** Refuse a stage no candidate of which could be scored. */
export function checkStage(r: ResolvedSpace, stage: StageChecks): void {
  const manifests = r.evaluators.map((e) => ({ e, m: loadManifest(e.manifest) }));
  const modelEvaluators = manifests.filter(({ m }) => m.kind !== 'command');
  const commands = manifests.filter(({ m }) => m.kind === 'command');
  const persistent = commands.find(({ m }) => m.kind === 'command' && m.persistent);
  if (persistent && modelEvaluators.length > 0) {
    throw new SetupError('E_SETUP_PERSISTENT', `evaluator '${persistent.e.id}' (${persistent.e.manifest}) is persistent, but evaluator '${modelEvaluators[0]!.e.id}' runs the model in a worker thread, so the candidates are scored in the threads, where a persistent program cannot be kept (a thread that times out is terminated and would leave it behind); score the stage with command evaluators only, or set persistent: false`);
  }
  for (const { e, m } of manifests) {
    for (const s of stage.kind === 'ps' ? stage.sources.slice(0, 1) : stage.sources) checkFamily(m, e.manifest, e.id, s);
    if (m.kind === 'command') {
      const program = m.command[0]!.replace(/\{manifest_dir\}/g, m.dir);
      if (!findProgram(program)) {
        throw new SetupError('E_SETUP_COMMAND', `evaluator '${e.id}' (${e.manifest}) runs '${program}', which is ${program.includes('/') ? 'not an executable file' : 'not found on PATH'}; install it or give its full path as the first entry of 'command'`);
      }
    }
  }
  if (r.space.fidelity) checkFidelityCommands(r.space.fidelity.rungs, commands);
  // the first candidate's merge, planned: missing tensors, shapes and layer counts raise here
  if (stage.kind === 'ps' && stage.firstPlan) {
    const plan = stage.firstPlan();
    const ref = stage.sources.find((s) => s.path === plan.configFrom) ?? stage.sources[0]!;
    for (const { e } of modelEvaluators) checkPlanShapes(plan, ref, e.id);
  }
  if (stage.kind === 'dfs' && stage.dfs && commands.length > 0) {
    const [lo, hi] = stage.dfs.scaleRange;
    if (lo !== 1 || hi !== 1) {
      throw new SetupError('E_SETUP_DFS_SCALE', `evaluator '${commands[0]!.e.id}' reads each candidate as a checkpoint, but dfs.scale_range is [${lo}, ${hi}]: a layer path whose scales are not 1 cannot be written as a checkpoint (every layer normalises its input, so no change of weights reproduces a scale). Set dfs.scale_range: [1, 1], or score the stage with built-in evaluators`);
    }
    if (stage.dfs.embeddings !== stage.dfs.head) {
      const emb = stage.sources[stage.dfs.embeddings];
      const mlp = Array.isArray(emb?.config?.architectures) && (emb!.config!.architectures as unknown[]).includes(MLP_ARCHITECTURE);
      if (emb && !Object.keys(emb.tensors).some((n) => isInputEnd(n, mlp) && !/\.\d+\./.test(n))) {
        throw new SetupError('E_SETUP_DFS_ENDS', `dfs.embeddings_from (${stage.dfs.embeddings}) and head_from (${stage.dfs.head}) differ, but no tensor of ${emb.path} is recognisably the embeddings (a name with embed, wte or wpe); take both from one source`);
      }
    }
  }
}

/**
 * Multi-fidelity through command evaluators (src/candidate/fidelity.ts, src/eval/protocol.ts):
 * each must declare `subset` (its program scores part of its items on request), and every
 * rung's share of its items must be at least its `subset.min_items`; a rung it cannot score is
 * refused here rather than failing each candidate's race.
 */
export function checkFidelityCommands(rungs: readonly number[], commands: ReadonlyArray<{ e: { id: string; manifest: string }; m: Manifest }>): void {
  for (const { e, m } of commands) {
    if (m.kind !== 'command') continue;
    if (!m.subset) {
      throw new SetupError('E_SETUP_FIDELITY', `the space races candidates on rungs ${rungs.join(', ')} of each evaluator's items (fidelity), but evaluator '${e.id}' (${e.manifest}) is a command without 'subset', so its program can only score every item; declare subset (form range: it scores {offset}/{count} of its own seeded order, or form first: its first {limit} items) with its item count in the manifest, or remove fidelity`);
    }
    const n = Math.min(m.subset.items, m.limit ?? Infinity);
    const sizes = rungSizes(rungs, n);
    // a range rung asks for its new items only; a first-N rung for its whole prefix
    const asked = sizes.map((k, i) => (m.subset!.form === 'range' ? k - (sizes[i - 1] ?? 0) : k));
    const small = asked.findIndex((k) => k > 0 && k < m.subset!.min_items);
    if (small >= 0) {
      throw new SetupError('E_SETUP_FIDELITY', `rung ${rungs[small]} of fidelity.rungs would ask evaluator '${e.id}' (${e.manifest}) to score ${asked[small]} of its ${n} items in one request, but its program scores at least subset.min_items = ${m.subset.min_items}; space the rungs further apart, or lower min_items if the tool allows`);
    }
  }
}

export interface MemoryPlan {
  sources: number;
  /** Bytes of the sources' tensors on disk (read per tensor, through the page cache). */
  sourceBytes: number;
  /** Bytes held resident for the whole run (in-memory models: a hybrid run's merged PS best). */
  resident: number;
  /** Largest float tensor: elements, and its name. */
  largest: { name: string; elements: number };
  workers: number;
  /** Estimated working memory of one worker thread. */
  perWorker: number;
  /** Bytes one candidate folder takes on disk (command evaluators), or 0. */
  perCandidateDisk: number;
  /**
   * Every evaluator a command, evaluated here (not through a queue): merges pipelined with
   * scoring on evaluation slots (src/pool/pipeline.ts), `ahead` candidates merged beyond those
   * being scored, their folders in `candidateDir` (a tmpfs counts them as memory).
   */
  pipeline: { slots: SlotSpec[]; ahead: number; candidateDir: string; tmpfs: boolean } | null;
  /** Owner process, resident models and every worker. */
  total: number;
  limit: number;
  tmp: { dir: string; free: number } | null;
  lines: string[];
}

/** An owner process's own footprint (Node, SQLite, the optimizer), and a thread's (V8 isolate, modules). */
const PROCESS_BYTES = 250e6;
const THREAD_BYTES = 80e6;
/** TensorFlow.js with its wasm backend loaded in a thread. */
const BACKEND_BYTES = 150e6;

/**
 * How much memory and temporary disk the search takes, from the sources' catalogues:
 * - a worker reads a tensor task's inputs into pooled float32 arrays (src/merge/reader.ts), so it
 *   needs about (inputs x 4 + output 4 + staging 2 + encoding 2 + method scratch 4 x inputs)
 *   bytes per element of the largest tensor; with model evaluators also the model on the backend
 *   (float32, counted twice for the array handed over and the backend's copy);
 * - a command evaluator's candidate is written to a temporary folder in the sources' dtype.
 * Refuses with the numbers and what to change when the total passes `limit` (default: the
 * machine's memory) or the candidate folders do not fit on the temporary disk.
 */
export function memoryPlan(r: ResolvedSpace, sources: SourceModels, o: { workers: number; maxMemory?: number; queue?: boolean; hybrid?: boolean; tmpDir?: string; gpus?: string[] | null; candidateDir?: string | null }): MemoryPlan {
  const files = [r.base, ...r.models.map((m) => m.path)].filter((p): p is string => !!p).map((p) => sources[p]!);
  const ref = files[0]!;
  let largest = { name: '', elements: 0 };
  let sourceBytes = 0;
  const dtypes = new Set<string>();
  for (const s of files) {
    for (const [name, t] of Object.entries(s.tensors)) {
      sourceBytes += tensorBytes(t);
      dtypes.add(t.dtype);
      const n = t.shape.reduce((a, b) => a * b, 1);
      if (isFloatDType(t.dtype) && n > largest.elements) largest = { name, elements: n };
    }
  }
  const params = Object.values(ref.tensors).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  const refBytes = Object.values(ref.tensors).reduce((n, t) => n + tensorBytes(t), 0);
  const manifests = r.evaluators.map((e) => loadManifest(e.manifest));
  const needsModel = manifests.some((m) => m.kind !== 'command');
  const commands = manifests.some((m) => m.kind === 'command');
  const dfs = r.space.mode !== 'ps';
  const inputs = r.space.mode === 'dfs' ? 1 : files.length;
  const E = largest.elements;
  const mergeBytes = E * (4 * inputs + 4 + 2 + 2 + 4 * inputs);
  // DFS uploads every source of the stage once per thread; PS one merged model per candidate
  const modelBytes = needsModel ? (dfs ? params * 4 * (files.length + (o.hybrid ? 1 : 0)) : params * 4 * 2) + BACKEND_BYTES : 0;
  const perWorker = THREAD_BYTES + mergeBytes + modelBytes;
  const resident = o.hybrid ? params * 4 : 0;
  const workers = o.queue ? 0 : o.workers;
  const limit = o.maxMemory ?? totalmem();
  const perCandidateDisk = commands && !o.queue ? refBytes : 0;
  let tmp: MemoryPlan['tmp'] = null;
  let pipeline: MemoryPlan['pipeline'] = null;
  let total = PROCESS_BYTES + resident + workers * perWorker;
  const lines = [
    `memory plan: ${files.length} source checkpoint${files.length === 1 ? '' : 's'}, ${formatBytes(sourceBytes)} of ${[...dtypes].sort().join('/')} tensors on disk, read per tensor from the files (page cache, shared by every worker): 0 B of them resident`,
    `  per worker: about ${formatBytes(perWorker)} (merge buffers for ${inputs} input${inputs === 1 ? '' : 's'} of the largest tensor, ${largest.name}, ${formatCount(E)} elements${needsModel ? `; the model on the backend, ${formatCount(params)} parameters as float32` : '; no model is built: every evaluator is a command'})`,
  ];
  if (resident > 0) lines.push(`  resident: ${formatBytes(resident)} (the PS stage's best merge, float32, source of the DFS stage)`);
  if (o.gpus?.length && needsModel) {
    throw new SetupError('E_SETUP_GPUS', `--gpus (or gpus: in the space) places command evaluators on GPUs, but evaluator '${r.evaluators[manifests.findIndex((m) => m.kind !== 'command')]!.id}' runs the model on this process's TensorFlow.js backend, which loads once per process (tensorflow-gpu takes the GPU it finds); score with command evaluators only, or leave gpus out`);
  }
  if (perCandidateDisk > 0 && !needsModel) {
    // every evaluator a command: merges on the threads, scoring on the slots, `ahead` folders waiting at most
    const slots = slotSpecs(o.gpus, o.workers);
    const wanted = Math.max(slots.length, o.workers);
    const memoryLeft = limit - total;
    let ahead = wanted;
    let where = chooseCandidateDir({ override: o.candidateDir, folderBytes: perCandidateDisk, folders: slots.length + ahead, memoryLeft });
    const fits = (n: number) => (slots.length + n) * perCandidateDisk <= where.free && (!where.tmpfs || (slots.length + n) * perCandidateDisk <= memoryLeft);
    if (!fits(ahead) && ahead > slots.length) {
      // one merged candidate per slot is the least that keeps a slot from waiting on every merge
      ahead = slots.length;
      where = chooseCandidateDir({ override: o.candidateDir, folderBytes: perCandidateDisk, folders: slots.length + ahead, memoryLeft });
    }
    const folders = slots.length + ahead;
    tmp = { dir: where.dir, free: where.free };
    if (where.tmpfs) total += folders * perCandidateDisk;
    pipeline = { slots, ahead, candidateDir: where.dir, tmpfs: where.tmpfs };
    lines.push(`  evaluation: ${slots.length} slot${slots.length === 1 ? '' : 's'} (${slots.map((s) => (s.gpu === null ? s.name : `${s.name}: CUDA_VISIBLE_DEVICES=${s.gpu}`)).join(', ')}), while they score up to ${ahead} candidate${ahead === 1 ? '' : 's'} merged ahead on ${o.workers} thread${o.workers === 1 ? '' : 's'}`);
    lines.push(`  per candidate: ${formatBytes(perCandidateDisk)} written to ${where.dir}${where.tmpfs ? ' (tmpfs: counted as memory)' : ''}, ${folders} at once (${Number.isFinite(where.free) ? `${formatBytes(where.free)} free` : 'free space unknown'})${o.candidateDir ? ' (--candidate-dir)' : ''}`);
    if (!fits(ahead)) {
      throw new SetupError('E_DISK_PLAN', `each candidate is written to ${where.dir} for the command evaluator${commandCount(manifests)} (${formatBytes(perCandidateDisk)}), ${folders} at once (${slots.length} being scored, ${ahead} merged ahead), but only ${formatBytes(where.tmpfs ? Math.min(where.free, memoryLeft) : where.free)} is ${where.tmpfs ? 'free there within the memory limit' : 'free there'}; free space, use fewer --workers or --gpus, or give --candidate-dir a larger disk`);
    }
  } else if (perCandidateDisk > 0) {
    const dir = o.candidateDir ?? o.tmpDir ?? tmpdir();
    const free = freeBytes(dir);
    tmp = { dir, free };
    if (onTmpfs(dir)) total += workers * perCandidateDisk;
    lines.push(`  per candidate: ${formatBytes(perCandidateDisk)} written to ${dir} for the command evaluator${commandCount(manifests)}, ${workers} at once (${Number.isFinite(free) ? `${formatBytes(free)} free` : 'free space unknown'})`);
  }
  lines.push(o.queue
    ? `  total here: about ${formatBytes(total)} (candidates are evaluated by queue workers, each with its own plan); limit ${formatBytes(limit)}${o.maxMemory === undefined ? ' (this machine\'s memory; --max-memory sets another)' : ' (--max-memory)'}`
    : `  total: about ${formatBytes(total)} for ${workers} worker${workers === 1 ? '' : 's'}${pipeline?.tmpfs ? ' and the candidate folders' : ''}, limit ${formatBytes(limit)}${o.maxMemory === undefined ? ' (this machine\'s memory; --max-memory sets another)' : ' (--max-memory)'}; ${formatBytes(freemem())} free now`);
  if (total > limit) {
    const fit = Math.floor((limit - PROCESS_BYTES - resident) / perWorker);
    const way = fit >= 1
      ? `use --workers ${fit} (or fewer), `
      : 'even one worker does not fit: ';
    throw new SetupError('E_MEMORY_PLAN', `the search needs about ${formatBytes(total)} of memory (${workers} worker${workers === 1 ? '' : 's'} x ${formatBytes(perWorker)}${resident ? ` + ${formatBytes(resident)} resident` : ''} + ${formatBytes(PROCESS_BYTES)} for this process) but the limit is ${formatBytes(limit)}; ${way}a smaller space (fewer models, or command evaluators instead of models built in memory), or raise --max-memory if the machine has more`);
  }
  if (tmp && !pipeline && workers * perCandidateDisk > tmp.free) {
    throw new SetupError('E_DISK_PLAN', `each candidate is written to ${tmp.dir} for the command evaluator (${formatBytes(perCandidateDisk)}), ${workers} at once, but only ${formatBytes(tmp.free)} is free there; free space, use fewer --workers, or point TMPDIR at a larger disk`);
  }
  return { sources: files.length, sourceBytes, resident, largest, workers, perWorker, perCandidateDisk, pipeline, total, limit, tmp, lines };
}

function commandCount(manifests: readonly Manifest[]): string {
  return manifests.filter((m) => m.kind === 'command').length > 1 ? 's' : '';
}

/** Parse a size such as `12GB`, `12GiB`, `800M` or a byte count. */
export function parseSize(text: string, flag = '--max-memory'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*$/i.exec(text);
  if (!m) throw new InputError('E_BAD_FLAG', `${flag} must be a size such as 12GB, 12GiB or 800MB, got '${text}'`);
  const power = ' kmgt'.indexOf((m[2] || ' ').toLowerCase());
  const base = m[3] ? 1024 : 1000;
  const bytes = Number(m[1]) * base ** power;
  if (!(bytes > 0)) throw new InputError('E_BAD_FLAG', `${flag} must be positive, got '${text}'`);
  return bytes;
}
