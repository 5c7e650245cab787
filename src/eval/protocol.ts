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
 *   optional features the program supports (version 1 defines none; unknown names are ignored).
 *   A first line that is not this, or another version, fails the candidate that was waiting.
 * - request: `{"id": "17", "model": "<folder>", "split": "validation", "limit": 200, "seed": null}`.
 *   `model` is the candidate written as a Hugging Face folder; `limit` and `seed` are the
 *   manifest's (null when it sets none). The persistent form gets it as one line on stdin; the
 *   one-shot form gets the same fields as argument placeholders (`{model}`, `{split}`,
 *   `{limit}` (empty when null), `{seed}` (empty when null)), and both get `{gpu}` and
 *   CUDA_VISIBLE_DEVICES for the evaluation slot's GPU.
 * - answer: `{"id": "17", "acc_norm": 0.61, "samples": 200}`: every finite number is a metric,
 *   the manifest's `metric.name` (a dotted path is allowed) is the fitness, `samples` the items
 *   scored; fields evomerge does not know are ignored. `{"id": "17", "error": "why"}` fails that
 *   candidate with the reason (a persistent program stays up). The one-shot form prints its
 *   answer as the last JSON line of stdout; `id` is optional there.
 * - a persistent program writes nothing else to stdout (logs go to stderr), exits at the end of
 *   its stdin (its owner is gone), and on SIGTERM; evomerge sends SIGKILL after a grace period.
 *
 * Growing the protocol: a new request field is added to `EvaluationRequest` and `buildRequest`,
 * a new answer field to `EvaluatorAnswer` and `readAnswer`; a program announces what it
 * understands through `capabilities`, so older programs keep working unchanged.
 */
import { CommandFailedError } from './errors.ts';
import { manifestFitness, type CommandManifest } from './manifest.ts';
import type { EvalResult } from './types.ts';

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
}

/** Where the request is scored: the evaluation slot's GPU, or none. */
export interface Placement {
  gpu: string | null;
}

/** The request for one candidate's folder under a manifest. */
export function buildRequest(m: CommandManifest, o: { id: string; model: string }): EvaluationRequest {
  return { id: o.id, model: o.model, split: m.split, limit: m.limit ?? null, seed: m.seed ?? null };
}

/** The values of the argument placeholders: the request's fields, the slot's GPU and the manifest's folder. */
export function placeholders(m: CommandManifest, req: EvaluationRequest | null, placement: Placement): Record<string, string> {
  const vars: Record<string, string> = { split: m.split, limit: String(m.limit ?? ''), seed: m.seed === undefined ? '' : String(m.seed), gpu: placement.gpu ?? '', manifest_dir: m.dir };
  if (req) vars.model = req.model;
  return vars;
}

/** argv with `{name}` placeholders substituted (a name without a value is left as written). */
export function substitute(argv: readonly string[], vars: Record<string, string>): string[] {
  return argv.map((a) => a.replace(/\{(model|split|limit|seed|gpu|manifest_dir)\}/g, (whole, k: string) => vars[k] ?? whole));
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

/**
 * An answer (one-shot or persistent) as the evaluator's result: an `error` field fails the
 * candidate with it; the metric must be a finite number; every other finite top-level number is
 * kept as a metric (`id` and unknown non-numeric fields are ignored).
 */
export function readAnswer(answer: Record<string, unknown>, m: CommandManifest, program: string): EvalResult {
  if (answer.error !== undefined && answer.error !== null) {
    throw new CommandFailedError('E_EVAL_COMMAND_ANSWER', `'${program}' reported an error: ${String(answer.error).slice(0, 2000)}`);
  }
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
