/**
 * The evaluator protocol: what evomerge asks a command evaluator's program and what it reads
 * back, for both forms of the `command` evaluator (src/README.md, "Contracts"; README.md,
 * "Command evaluators"). This file is its one implementation: requests are built here, answers
 * and the hello line are parsed here, so a field added to the protocol is added in one place.
 *
 * Version 1, one JSON object per line (UTF-8, `\n`-terminated):
 *
 * - hello (persistent form only): the program's first line on stdout, once it is ready to take
 *   requests: `{"evomerge_evaluator": 1, "capabilities": [...]}`. `capabilities` names the
 *   optional features the program supports: `gradient` and `subset` (below; a manifest that
 *   declares one refuses a program whose hello lacks it); unknown names are ignored.
 *   A first line that is not this, or another version, fails the candidate that was waiting.
 * - request: `{"id": "17", "model": "<folder>", "split": "validation", "limit": 200, "seed": null}`.
 *   `model` is the candidate written as a Hugging Face folder; `limit` and `seed` are the
 *   manifest's (null when it sets none). The persistent form gets it as one line on stdin; the
 *   one-shot form gets the same fields as argument placeholders (`{model}`, `{split}`,
 *   `{limit}` (empty when null), `{seed}` (empty when null)), and both get `{gpu}` and
 *   CUDA_VISIBLE_DEVICES for the evaluation slot's GPU, and `{base}`: a checkpoint of the
 *   candidates' architecture (the search's base model, else its first model) to build a model
 *   from before the first request.
 * - answer: `{"id": "17", "acc_norm": 0.61, "samples": 200}`: every finite number is a metric,
 *   the manifest's `metric.name` (a dotted path is allowed) is the fitness, `samples` the items
 *   scored; fields evomerge does not know are ignored. `{"id": "17", "error": "why"}` fails that
 *   candidate with the reason (a persistent program stays up). The one-shot form prints its
 *   answer as the last JSON line of stdout; `id` is optional there.
 * - a persistent program writes nothing else to stdout (logs go to stderr), exits at the end of
 *   its stdin (its owner is gone), and on SIGTERM; evomerge sends SIGKILL after a grace period.
 *
 * Optional fields (present in every request, null when unused; a program that declares nothing
 * never sees them set):
 *
 * - item subsets (manifest `subset`, capability `subset`; multi-fidelity, src/candidate/fidelity.ts):
 *   form `range` sets `offset` and `count` (`{offset}`, `{count}`): score items
 *   offset..offset+count-1 of the program's own fixed order over its split, a permutation seeded
 *   by the request's `seed` (0 when null) that is the same for every request, so rungs are
 *   nested and disjoint; form `first` sets `limit` (`{limit}`) to the rung's item count: score the
 *   first `limit` items. The answer then carries `"partial": {"count": c, "sum": s, "sum_sq": q}`:
 *   items scored, and the sum and the sum of squares over them of the primary metric's per-item
 *   value (the metric is s / c; for 0/1 scores q = s), beside its metrics as usual.
 * - gradient (manifest `gradient: true`, capability `gradient`; the gradient stage, src/refine/):
 *   `gradient` (`{gradient}`) is a path where the program writes a safetensors file with, for
 *   every float tensor of the candidate folder, dLoss/dtensor under the same name and shape in
 *   float32, and `loss` (`{loss}`: "supervised" or "entropy", the space's refine.loss) names the
 *   loss wanted; the answer carries `"loss": <its value>`, a finite number. A tensor the loss
 *   does not read may be left out or written as zeros.
 *
 * Growing the protocol: a new request field is added to `EvaluationRequest` and `buildRequest`,
 * a new answer field to `EvaluatorAnswer` and `readAnswer`; a program announces what it
 * understands through `capabilities`, so older programs keep working unchanged.
 */
import { CommandFailedError } from './errors.ts';
import { manifestFitness, type CommandManifest } from './manifest.ts';
import type { EvalResult, PartialScore } from './types.ts';

export const PROTOCOL_VERSION = 1;

/** A program's hello line, parsed. */
export interface EvaluatorHello {
  version: number;
  capabilities: string[];
}

/** What evomerge asks for one candidate. */
export interface EvaluationRequest {
  id: string;
  model: string;
  split: string;
  limit: number | null;
  seed: number | null;
  /** Form `range` of an item subset: the first item and how many, in the program's seeded order. */
  offset: number | null;
  count: number | null;
  /** Where the program writes the gradient file, and the loss it is of. */
  gradient: string | null;
  loss: 'supervised' | 'entropy' | null;
}

/** Part of the items (manifest `subset`): positions from..to-1 of the program's order (form range), or its first `to` (form first). */
export interface ItemSubset {
  from: number;
  to: number;
}

/** Where a program runs: its evaluation slot's GPU, and the checkpoint of the family it scores. */
export interface Placement {
  gpu: string | null;
  /**
   * `{base}`: a checkpoint of the architecture candidates have, for a persistent program to build
   * its model from before its first candidate (the search's base model, else its first model).
   * Absent or null: unknown; the command evaluator then gives the first request's candidate
   * folder (src/eval/command.ts), and starts a persistent program at that request.
   */
  base?: string | null;
}

/**
 * The request for one candidate's folder under a manifest: every item, or a subset (form
 * `range`: offset and count; form `first`: limit), and with `gradient` the gradient file's path.
 */
export function buildRequest(m: CommandManifest, o: { id: string; model: string; subset?: ItemSubset; gradient?: { path: string; loss: 'supervised' | 'entropy' } }): EvaluationRequest {
  const req: EvaluationRequest = { id: o.id, model: o.model, split: m.split, limit: m.limit ?? null, seed: m.seed ?? null, offset: null, count: null, gradient: o.gradient?.path ?? null, loss: o.gradient?.loss ?? null };
  if (o.subset) {
    if (!m.subset) throw new Error(`evaluator ${m.id} was asked for an item subset, but its manifest declares no subset`);
    if (m.subset.form === 'range') {
      req.offset = o.subset.from;
      req.count = o.subset.to - o.subset.from;
    } else {
      if (o.subset.from !== 0) throw new Error(`evaluator ${m.id} takes its first N items (subset form first) and was asked for items from ${o.subset.from}`);
      req.limit = o.subset.to;
    }
  }
  return req;
}

/** The values of the argument placeholders: the request's fields, the slot's GPU and the manifest's folder. */
export function placeholders(m: CommandManifest, req: EvaluationRequest | null, placement: Placement): Record<string, string> {
  const opt = (v: number | string | null | undefined) => (v === null || v === undefined ? '' : String(v));
  const vars: Record<string, string> = { split: m.split, limit: opt(req ? req.limit : m.limit), seed: opt(m.seed), gpu: placement.gpu ?? '', manifest_dir: m.dir, offset: opt(req?.offset), count: opt(req?.count), gradient: opt(req?.gradient), loss: opt(req?.loss) };
  if (req) vars.model = req.model;
  if (placement.base) vars.base = placement.base;
  return vars;
}

/** argv with `{name}` placeholders substituted (a name without a value is left as written). */
export function substitute(argv: readonly string[], vars: Record<string, string>): string[] {
  return argv.map((a) => a.replace(/\{(model|split|limit|seed|gpu|base|manifest_dir|offset|count|gradient|loss)\}/g, (whole, k: string) => vars[k] ?? whole));
}

/** The capabilities a persistent program must announce for its manifest: `gradient`, `subset`. */
export function requiredCapabilities(m: CommandManifest): string[] {
  return [...(m.gradient ? ['gradient'] : []), ...(m.subset ? ['subset'] : [])];
}

/** Refuses a hello that lacks a capability the manifest declares. */
export function checkCapabilities(m: CommandManifest, hello: EvaluatorHello, program: string): void {
  const missing = requiredCapabilities(m).filter((c) => !hello.capabilities.includes(c));
  if (missing.length > 0) {
    throw new CommandFailedError('E_EVAL_PROTOCOL', `'${program}' announced the capabilities [${hello.capabilities.join(', ')}] in its hello, but ${m.file} declares ${missing.map((c) => (c === 'gradient' ? 'gradient: true' : 'subset')).join(' and ')}, which needs ${missing.map((c) => `"${c}"`).join(' and ')} there; add it to the program's hello, or remove it from the manifest`);
  }
}

/** The environment a program runs with: the manifest's, and CUDA_VISIBLE_DEVICES for a slot with a GPU. */
export function programEnv(m: CommandManifest, placement: Placement): Record<string, string> {
  return { ...m.env, ...(placement.gpu !== null ? { CUDA_VISIBLE_DEVICES: placement.gpu } : {}) };
}

/** One request as the line written to a persistent program's stdin. */
export function requestLine(req: EvaluationRequest): string {
  return `${JSON.stringify(req)}\n`;
}

function parseObject(line: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(line) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

const shown = (line: string) => JSON.stringify(line.length > 200 ? `${line.slice(0, 200)}...` : line);

/** The hello line of a persistent program, or a CommandFailedError naming what is wrong with it. */
export function parseHello(line: string, program: string): EvaluatorHello {
  const v = parseObject(line.trim());
  const version = v?.evomerge_evaluator;
  if (!v || typeof version !== 'number') {
    throw new CommandFailedError('E_EVAL_PROTOCOL', `'${program}' (a persistent evaluator) must first print {"evomerge_evaluator": ${PROTOCOL_VERSION}, "capabilities": []} on stdout, but printed ${shown(line)}; print logs to stderr`);
  }
  if (version !== PROTOCOL_VERSION) {
    throw new CommandFailedError('E_EVAL_PROTOCOL', `'${program}' speaks evaluator protocol version ${version}, this evomerge speaks version ${PROTOCOL_VERSION}; use a program (or an evomerge) of the same version`);
  }
  const caps = Array.isArray(v.capabilities) ? v.capabilities.filter((c): c is string => typeof c === 'string') : [];
  return { version, capabilities: caps };
}

/** A persistent program's answer line to request `id`, as its JSON object (its metrics are read by readAnswer). */
export function parseAnswerLine(line: string, id: string, program: string): Record<string, unknown> {
  const v = parseObject(line.trim());
  if (!v) throw new CommandFailedError('E_EVAL_PROTOCOL', `'${program}' answered request ${id} with a line that is not a JSON object: ${shown(line)}; a persistent evaluator prints only protocol lines on stdout (logs go to stderr)`);
  if (v.id !== id) throw new CommandFailedError('E_EVAL_PROTOCOL', `'${program}' answered request ${id} with id ${JSON.stringify(v.id)}; each answer carries the id of its request`);
  return v;
}

function lookup(obj: Record<string, unknown>, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), obj);
}

/** An answer's `error` field fails the candidate with it. */
export function checkAnswerError(answer: Record<string, unknown>, program: string): void {
  if (answer.error !== undefined && answer.error !== null) {
    throw new CommandFailedError('E_EVAL_COMMAND_ANSWER', `'${program}' reported an error: ${String(answer.error).slice(0, 2000)}`);
  }
}

/**
 * An answer (one-shot or persistent) as the evaluator's result: an `error` field fails the
 * candidate with it; the metric must be a finite number; every other finite top-level number is
 * kept as a metric (`id` and unknown non-numeric fields are ignored).
 */
export function readAnswer(answer: Record<string, unknown>, m: CommandManifest, program: string): EvalResult {
  checkAnswerError(answer, program);
  const metrics: Record<string, number> = {};
  for (const [k, v] of Object.entries(answer)) if (k !== 'id' && typeof v === 'number' && Number.isFinite(v)) metrics[k] = v;
  const value = lookup(answer, m.metric.name);
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new CommandFailedError('E_EVAL_COMMAND_OUTPUT', `'${program}' printed ${JSON.stringify(answer).slice(0, 200)}, which has no finite number at '${m.metric.name}' (metric.name in ${m.file})`);
  }
  metrics[m.metric.name] = value;
  const samples = typeof answer.samples === 'number' ? answer.samples : 0;
  return { fitness: manifestFitness(m, value), metrics, samples };
}

/**
 * The `partial` field of an answer to a subset request (see the header), checked against what
 * was asked: `expected` items. A missing or malformed field fails the candidate with the reason.
 */
export function readPartial(answer: Record<string, unknown>, m: CommandManifest, program: string, expected: number): PartialScore {
  const p = answer.partial as Record<string, unknown> | undefined;
  const num = (k: string) => (p && typeof p[k] === 'number' && Number.isFinite(p[k]) ? (p[k] as number) : null);
  const count = num('count');
  const sum = num('sum');
  const sumSq = num('sum_sq');
  if (count === null || sum === null || sumSq === null) {
    throw new CommandFailedError('E_EVAL_COMMAND_OUTPUT', `'${program}' answered an item-subset request (${m.file} declares subset) without "partial": {"count", "sum", "sum_sq"} as finite numbers; it printed ${JSON.stringify(answer).slice(0, 200)}`);
  }
  if (count !== expected) throw new CommandFailedError('E_EVAL_COMMAND_OUTPUT', `'${program}' was asked to score ${expected} items and reports partial.count ${count}; it must score exactly the items asked (subset.items in ${m.file} is ${m.subset?.items})`);
  return { count, sums: {}, primary: { sum, sumSq } };
}

/** The `loss` of an answer to a gradient request: a finite number, else the candidate fails with the reason. */
export function readLoss(answer: Record<string, unknown>, m: CommandManifest, program: string): number {
  const loss = answer.loss;
  if (typeof loss !== 'number' || !Number.isFinite(loss)) {
    throw new CommandFailedError('E_EVAL_COMMAND_OUTPUT', `'${program}' answered a gradient request (${m.file} sets gradient: true) without a finite "loss"; it printed ${JSON.stringify(answer).slice(0, 200)}`);
  }
  return loss;
}
