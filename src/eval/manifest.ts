/**
 * Evaluator manifests: one YAML file per benchmark in the top-level `evaluators/` folder. One zod
 * schema validates them at the boundary; inner code takes the parsed type. Data paths are
 * resolved relative to the manifest's folder.
 */
import { readFileSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { InputError } from '../errors.ts';

export class ManifestError extends InputError {
  readonly file: string;
  constructor(file: string, field: string, message: string) {
    super('E_EVAL_MANIFEST', `${file}: field '${field}' ${message}`);
    this.file = file;
  }
}

export const EVAL_SPLITS = ['train', 'validation', 'test'] as const;
export type EvalSplit = (typeof EVAL_SPLITS)[number];

const idxFiles = z.strictObject({ images: z.string(), labels: z.string() });
const dataFile = z.union([z.string(), idxFiles]);

const arithmeticGenerator = z.strictObject({
  name: z.literal('arithmetic'),
  seed: z.union([z.number().int(), z.string()]).default(0),
  count: z.number().int().positive().default(200),
  digits: z.number().int().min(1).max(6).default(2),
  operations: z.array(z.enum(['+', '-', '*'])).min(1).default(['+', '-']),
});

const dataSchema = z.strictObject({
  format: z.enum(['jsonl', 'csv', 'idx', 'text']).optional(),
  splits: z.partialRecord(z.enum(EVAL_SPLITS), dataFile).optional(),
  generator: arithmeticGenerator.optional(),
}).refine((d) => (d.splits ? 1 : 0) + (d.generator ? 1 : 0) === 1, { message: 'give exactly one of splits (files per split) or generator' });

const fewshotSchema = z.strictObject({
  k: z.number().int().nonnegative().default(0),
  /** Where the examples come from; the evaluated split by default (the item itself is never its own example). */
  split: z.enum(EVAL_SPLITS).optional(),
  seed: z.union([z.number().int(), z.string()]).default(0),
  separator: z.string().default('\n\n'),
});

const metricSchema = z.strictObject({
  name: z.string(),
  direction: z.enum(['maximize', 'minimize']),
});

const common = {
  id: z.string().regex(/^[A-Za-z0-9._-]+$/).optional(),
  version: z.union([z.number().int().nonnegative(), z.string()]),
  description: z.string().optional(),
  split: z.enum(EVAL_SPLITS),
  data: dataSchema.optional(),
  limit: z.number().int().positive().optional(),
  metric: metricSchema,
};

const classificationSchema = z.strictObject({
  ...common,
  kind: z.literal('classification'),
  family: z.literal('residual-mlp'),
  head: z.string().optional(),
  /** JSONL: field with the feature array; CSV: every column but the label. */
  input_field: z.string().default('input'),
  label_field: z.string().default('label'),
  per_class: z.boolean().default(false),
  batch_size: z.number().int().positive().default(2048),
});

const textCommon = {
  prompt: z.string().default('{question}'),
  fewshot: fewshotSchema.optional(),
};

const choiceSchema = z.strictObject({
  ...common,
  ...textCommon,
  kind: z.literal('choice'),
  family: z.literal('llama'),
  choices_field: z.string().default('choices'),
  gold_field: z.string().default('gold'),
  /** lm-eval-harness puts a space between context and each option. */
  target_delimiter: z.string().default(' '),
});

const generateSchema = z.strictObject({
  ...common,
  ...textCommon,
  kind: z.literal('generate'),
  family: z.literal('llama'),
  target: z.string().default('{answer}'),
  max_tokens: z.number().int().positive().default(32),
  stop: z.array(z.string()).default(['\n\n']),
  /** `last-number` (the Sakana evaluation's answer rule), `none` (trimmed output), or a regex whose first group (or whole match) is the answer. */
  extract: z.string().default('last-number'),
});

const perplexitySchema = z.strictObject({
  ...common,
  kind: z.literal('perplexity'),
  family: z.literal('llama'),
  text_field: z.string().default('text'),
  /** Tokens per window; the model's max_position_embeddings (at most 1024) when absent. */
  context: z.number().int().min(2).optional(),
});

const commandSchema = z.strictObject({
  ...common,
  kind: z.literal('command'),
  family: z.enum(['llama', 'residual-mlp', 'any']).default('any'),
  /**
   * The program and its arguments, never run through a shell. `{model}` (one-shot only),
   * `{split}`, `{limit}`, `{seed}`, `{gpu}`, `{base}` and `{manifest_dir}` are substituted in
   * arguments (src/eval/protocol.ts).
   */
  command: z.array(z.string()).min(1),
  /** Per candidate (for a persistent program: per request). */
  timeout_s: z.number().positive().default(3600),
  env: z.record(z.string(), z.string()).optional(),
  /** Start the program once per evaluation slot and send it one request line per candidate (src/eval/protocol.ts). */
  persistent: z.boolean().default(false),
  /** A persistent program's time to print its hello line. */
  startup_timeout_s: z.number().positive().default(600),
  /** Given to the program as the request's `seed` (and `{seed}`); absent: null, the program's own default. */
  seed: z.number().int().optional(),
  /**
   * The program returns the gradient of its loss with respect to the merged tensors when a
   * request carries `gradient` (a path; `{gradient}` for the one-shot form): the gradient stage
   * (space `refine`) can then use it (src/eval/protocol.ts).
   */
  gradient: z.boolean().default(false),
  /**
   * The program scores part of its items when asked (multi-fidelity evaluation, space `fidelity`):
   * `range`: items offset..offset+count-1 of its own fixed seeded order (`{offset}`, `{count}`);
   * `first`: its first N items (`{limit}`, as lm-eval's --limit). `items` is how many items it has
   * (a manifest `limit` below it caps it); `min_items` the fewest it can score in one request.
   */
  subset: z.strictObject({
    form: z.enum(['range', 'first']),
    items: z.number().int().positive(),
    min_items: z.number().int().positive().default(1),
  }).optional(),
});

export const manifestSchema = z.discriminatedUnion('kind', [classificationSchema, choiceSchema, generateSchema, perplexitySchema, commandSchema]);

export type Manifest = z.infer<typeof manifestSchema> & { id: string; file: string; dir: string };
export type ClassificationManifest = Extract<Manifest, { kind: 'classification' }>;
export type ChoiceManifest = Extract<Manifest, { kind: 'choice' }>;
export type GenerateManifest = Extract<Manifest, { kind: 'generate' }>;
export type PerplexityManifest = Extract<Manifest, { kind: 'perplexity' }>;
export type CommandManifest = Extract<Manifest, { kind: 'command' }>;
export type EvalKind = Manifest['kind'];

/** Validates a parsed manifest object; `file` names it in errors and anchors relative paths. */
export function parseManifest(raw: unknown, file: string): Manifest {
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.') || (issue.code === 'invalid_union' ? 'kind' : '(root)');
    let msg = issue.message;
    if (issue.code === 'unrecognized_keys') msg = `has unknown key(s) ${issue.keys.map((k) => `'${k}'`).join(', ')}; check the spelling against the manifest format`;
    throw new ManifestError(file, field, `is invalid: ${msg}`);
  }
  const m = parsed.data;
  if (m.kind === 'command' && m.persistent && m.command.some((a) => a.includes('{model}'))) {
    throw new ManifestError(file, 'command', `contains {model}, but a persistent evaluator is started once and receives each candidate's folder in its request line (the "model" field), not as an argument; remove {model} from command (see README, "Command evaluators")`);
  }
  if (m.kind === 'command' && m.gradient && !m.persistent && !m.command.some((a) => a.includes('{gradient}'))) {
    throw new ManifestError(file, 'command', `has no {gradient} argument, but the manifest sets gradient: true; a one-shot evaluator is told where to write the gradient file through {gradient} (see README, "Command evaluators")`);
  }
  if (m.kind === 'command' && m.subset && !m.persistent) {
    const need = m.subset.form === 'range' ? ['{offset}', '{count}'] : ['{limit}'];
    const missing = need.filter((p) => !m.command.some((a) => a.includes(p)));
    if (missing.length > 0) throw new ManifestError(file, 'command', `has no ${missing.join(' or ')} argument, but subset.form is '${m.subset.form}'; a one-shot evaluator is told which items to score through ${need.join(' and ')} (see README, "Command evaluators")`);
  }
  if (m.kind !== 'command' && !m.data) throw new ManifestError(file, 'data', `is required for kind '${m.kind}'`);
  if (m.data?.splits && !m.data.splits[m.split]) {
    throw new ManifestError(file, `data.splits.${m.split}`, `is missing: the manifest evaluates split '${m.split}' but lists files only for ${Object.keys(m.data.splits).join(', ')}`);
  }
  const fewshotSplit = 'fewshot' in m && m.fewshot?.split;
  if (fewshotSplit && m.data?.splits && !m.data.splits[fewshotSplit]) {
    throw new ManifestError(file, 'fewshot.split', `names split '${fewshotSplit}' but data.splits has no file for it`);
  }
  const dir = dirname(resolve(file));
  return { ...m, id: m.id ?? basename(file, extname(file)), file, dir } as Manifest;
}

export function loadManifest(path: string): Manifest {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InputError('E_EVAL_MANIFEST', `cannot read evaluator manifest ${path}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ManifestError(path, '(root)', `is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  return parseManifest(raw, path);
}

/** A data path of the manifest, made absolute against the manifest's folder. */
export function resolveDataPath(m: Manifest, p: string): string {
  return isAbsolute(p) ? p : resolve(m.dir, p);
}

/** The optimizer maximises: a minimised metric enters with its sign flipped. */
export function manifestFitness(m: Pick<Manifest, 'metric'>, value: number): number {
  return m.metric.direction === 'maximize' ? value : -value;
}

/**
 * Whether an evaluator of this manifest can score a subset of its items (multi-fidelity
 * evaluation): its primary metric is a mean over items, the accuracy of a classification or the
 * acc / acc_norm of a choice task, or a command whose manifest declares `subset`. Others
 * (generate, perplexity, a per-class accuracy, a command without `subset`) score every item.
 */
export function partialScoring(m: Manifest): boolean {
  return (m.kind === 'classification' && m.metric.name === 'accuracy') || (m.kind === 'choice' && (m.metric.name === 'acc' || m.metric.name === 'acc_norm')) || (m.kind === 'command' && m.subset !== undefined);
}
