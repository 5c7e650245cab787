/**
 * `evomerge bench fuzz`: seeded mutations of real inputs fed to the readers and to the CLI.
 * Inputs: the safetensors files and config of a tiny generated Llama zoo (header length, JSON,
 * dtypes, shapes, offsets, truncations, huge numbers), the shipped search spaces, a recipe and
 * a mergekit config over that zoo, and the shipped evaluator manifests (wrong types, missing
 * fields, unknown keys). Every case must end in a valid result or a typed EvomergeError with a
 * message, within a second, without allocating memory sized from an untrusted number (checked
 * as growth of ArrayBuffer memory across the case); a recipe that merges must write only inside
 * the output folder it was given. CLI cases run `evomerge inspect | merge | eval` on mutants in
 * child processes and need an exit code of 0, 1 or 2 with a one-line `evomerge: ... [CODE]`.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { parse as parseYaml, stringify } from 'yaml';
import { openCheckpoint, SafetensorsFile } from '../checkpoint/index.ts';
import { EvomergeError, InputError } from '../errors.ts';
import { formatBytes } from '../format.ts';
import { createEvaluator, parseManifest } from '../eval/index.ts';
import { mergeToDisk } from '../report/merge-folder.ts';
import { parseRecipe, recipeFromMergekit, recipeHash, recipeToMergekitYaml } from '../recipe/index.ts';
import { resolveSpace } from '../search/resolve.ts';
import { parseSearchSpace } from '../space/index.ts';
import { Rng } from '../tensor/rng.ts';
import { buildTinyZoo } from '../zoo/tiny.ts';
import { mutateDocument, mutateSafetensors } from './mutate.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'src', 'cli', 'bin.mjs');

export type FuzzTarget = 'safetensors' | 'checkpoint-config' | 'search-space' | 'recipe' | 'mergekit' | 'manifest';
const TARGETS: Array<[FuzzTarget, number]> = [['safetensors', 45], ['checkpoint-config', 8], ['search-space', 14], ['recipe', 12], ['mergekit', 7], ['manifest', 14]];

/** Allocation growth (ArrayBuffers) a case may cause: the inputs are a few kilobytes. */
const ALLOCATION_LIMIT = 64 * 2 ** 20;
const CASE_LIMIT_MS = 1000;

export interface FuzzFailure {
  case: number;
  target: string;
  mutation: string;
  problem: string;
}

export interface FuzzReport {
  cases: number;
  seconds: number;
  /** target -> outcome (`valid` or an error code) -> count. */
  outcomes: Record<string, Record<string, number>>;
  slowestMs: number;
  maxAllocationMb: number;
  cli: { cases: number; /** The slowest bare start (`evomerge --version`) measured before a case. */ startupMs: number; /** The most lenient limit applied: twice that start plus a second. */ limitMs: number; outcomes: Record<string, number>; slowestMs: number };
  failures: FuzzFailure[];
  ok: boolean;
}

interface Seeds {
  dir: string;
  safetensors: Uint8Array;
  config: Record<string, unknown>;
  spaces: Array<{ name: string; doc: unknown }>;
  recipe: unknown;
  mergekit: unknown;
  manifests: Array<{ name: string; doc: unknown }>;
}

function seeds(dir: string): Seeds {
  const zoo = buildTinyZoo(join(dir, 'zoo'), 0);
  const spacesDir = join(ROOT, 'search-spaces');
  const evaluatorsDir = join(ROOT, 'evaluators');
  const manifests = readdirSync(evaluatorsDir).filter((f) => f.endsWith('.yaml')).map((f) => ({ name: f, doc: parseYaml(readFileSync(join(evaluatorsDir, f), 'utf8')) }));
  // spaces point at the tiny zoo and a shipped manifest, so a valid mutant resolves for real
  const spaces = readdirSync(spacesDir).filter((f) => f.endsWith('.yaml')).map((f) => {
    const doc = parseYaml(readFileSync(join(spacesDir, f), 'utf8')) as Record<string, unknown>;
    delete doc.zoo;
    return { name: f, doc: { ...doc, base: zoo.base, models: zoo.models.map((m, i) => ({ name: `m${i}`, path: m })), evaluators: [{ manifest: join(evaluatorsDir, 'arith-choice.yaml'), weight: 1 }] } };
  });
  return {
    dir,
    safetensors: new Uint8Array(readFileSync(join(zoo.base, 'model.safetensors'))),
    config: JSON.parse(readFileSync(join(zoo.base, 'config.json'), 'utf8')) as Record<string, unknown>,
    spaces,
    recipe: {
      method: 'ties', base: zoo.base,
      slices: [{ sources: [zoo.base, ...zoo.models].map((m, i) => ({ model: m, layer_range: [0, 2], parameters: { weight: 0.5 + i * 0.1, density: 0.6 } })) }],
      parameters: { lambda: 1 }, out_dtype: 'float16', seed: 7,
    },
    mergekit: {
      merge_method: 'dare_ties', base_model: zoo.base, dtype: 'float32',
      models: zoo.models.map((m) => ({ model: m, parameters: { weight: 0.5, density: 0.7 } })),
      parameters: { normalize: true },
    },
    manifests,
  };
}

function pickTarget(rng: Rng): FuzzTarget {
  let r = rng.int(100);
  for (const [t, w] of TARGETS) {
    if (r < w) return t;
    r -= w;
  }
  return 'safetensors';
}

/** Files and folders under `dir` (names only, one level), to see that nothing was written beside the output. */
function listing(dir: string): string {
  return readdirSync(dir).sort().join('\n');
}

/** One in-process case; returns the outcome (`valid` or an error code) or throws what was wrong. */
function runCase(target: FuzzTarget, s: Seeds, rng: Rng, work: string): { outcome: string; mutation: string } {
  switch (target) {
    case 'safetensors': {
      const { bytes, kind } = mutateSafetensors(s.safetensors, rng);
      const path = join(work, 'mutant.safetensors');
      writeFileSync(path, bytes);
      return { mutation: kind, outcome: guarded(() => {
        const f = SafetensorsFile.open(path);
        try {
          let total = 0;
          for (const name of f.names()) {
            const info = f.info(name);
            const raw = f.readRaw(name);
            if (raw.byteLength !== info.byteLength) throw new Error(`read ${raw.byteLength} bytes of ${name}, the header says ${info.byteLength}`);
            total += raw.byteLength;
            f.readFloat32(name);
          }
          if (total > bytes.byteLength) throw new Error(`read ${total} bytes from a ${bytes.byteLength}-byte file`);
        } finally {
          f.close();
        }
      }) };
    }
    case 'checkpoint-config': {
      const { doc, kind } = mutateDocument(s.config, rng);
      const folder = join(work, 'ckpt');
      mkdirSync(folder, { recursive: true });
      writeFileSync(join(folder, 'model.safetensors'), s.safetensors);
      writeFileSync(join(folder, 'config.json'), JSON.stringify(doc));
      return { mutation: kind, outcome: guarded(() => {
        const c = openCheckpoint(folder);
        try {
          void c.layers;
          for (const name of c.names()) c.readFloat32(name);
        } finally {
          c.close();
        }
      }) };
    }
    case 'search-space': {
      const seed = s.spaces[rng.int(s.spaces.length)]!;
      const { doc, kind } = mutateDocument(seed.doc, rng);
      const file = join(work, 'space.yaml');
      return { mutation: `${seed.name}:${kind}`, outcome: guarded(() => {
        const space = parseSearchSpace(stringify(doc), file);
        resolveSpace(space, file);
      }) };
    }
    case 'recipe': {
      const { doc, kind } = mutateDocument(s.recipe, rng);
      return { mutation: kind, outcome: guarded(() => mergeRecipe(parseRecipe(doc, 'mutant recipe'), work)) };
    }
    case 'mergekit': {
      const { doc, kind } = mutateDocument(s.mergekit, rng);
      return { mutation: kind, outcome: guarded(() => mergeRecipe(recipeFromMergekit(doc, 'mutant mergekit config'), work)) };
    }
    case 'manifest': {
      const seed = s.manifests[rng.int(s.manifests.length)]!;
      const { doc, kind } = mutateDocument(seed.doc, rng);
      return { mutation: `${seed.name}:${kind}`, outcome: guarded(() => {
        const m = parseManifest(doc, join(ROOT, 'evaluators', seed.name));
        createEvaluator(m, { purpose: 'search', allowTestSplit: false }).dispose?.();
      }) };
    }
  }
}

/** A valid recipe must merge, hash and export, and write only inside its output folder. */
function mergeRecipe(recipe: ReturnType<typeof parseRecipe>, work: string): void {
  recipeHash(recipe);
  try {
    recipeToMergekitYaml(recipe);
  } catch (err) {
    if (!(err instanceof EvomergeError)) throw err;
  }
  const parent = join(work, 'merge');
  rmSync(parent, { recursive: true, force: true });
  mkdirSync(parent);
  const before = listing(parent);
  const out = join(parent, 'out');
  try {
    mergeToDisk(recipe, out);
  } finally {
    const after = listing(parent).split('\n').filter((n) => n !== 'out').join('\n');
    if (after !== before) throw new Error(`the merge wrote outside its output folder: ${after}`);
  }
}

class NotTyped extends Error {}

/** `valid`, or the code of the typed error; anything else is a NotTyped failure. */
function guarded(fn: () => void): string {
  try {
    fn();
    return 'valid';
  } catch (err) {
    if (err instanceof EvomergeError) {
      if (err.message.length < 15) throw new NotTyped(`typed error ${err.code} with a bare message '${err.message}'`);
      return err.code;
    }
    const e = err as Error;
    throw new NotTyped(`untyped ${e?.name ?? typeof err}: ${e?.message ?? String(err)}`.slice(0, 300));
  }
}

interface CliResult {
  code: number | null;
  stderr: string;
  ms: number;
}

function cli(args: string[], cwd: string, timeoutMs: number): Promise<CliResult> {
  return new Promise((resolvePromise) => {
    const t0 = performance.now();
    const proc = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => { stderr += d; });
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stderr, ms: performance.now() - t0 });
    });
  });
}

export async function runFuzzBench(options: { cases: number; cliCases: number; seed: number; log?: (l: string) => void }): Promise<FuzzReport> {
  const log = options.log ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), 'evomerge-bench-fuzz-'));
  const failures: FuzzFailure[] = [];
  const outcomes: Record<string, Record<string, number>> = {};
  let slowestMs = 0;
  let maxAllocation = 0;
  const t0 = performance.now();
  try {
    const s = seeds(dir);
    const work = join(dir, 'work');
    mkdirSync(work);
    const rng = Rng.seeded(`bench-fuzz-${options.seed}`);
    for (let i = 0; i < options.cases; i++) {
      const target = pickTarget(rng);
      const before = process.memoryUsage().arrayBuffers;
      const start = performance.now();
      let outcome: string;
      let mutation = '?';
      try {
        const r = runCase(target, s, rng, work);
        outcome = r.outcome;
        mutation = r.mutation;
      } catch (err) {
        outcome = 'FAILED';
        failures.push({ case: i, target, mutation, problem: (err as Error).message });
      }
      const ms = performance.now() - start;
      const grown = process.memoryUsage().arrayBuffers - before;
      slowestMs = Math.max(slowestMs, ms);
      maxAllocation = Math.max(maxAllocation, grown);
      if (ms > CASE_LIMIT_MS) failures.push({ case: i, target, mutation, problem: `took ${ms.toFixed(0)} ms` });
      if (grown > ALLOCATION_LIMIT) failures.push({ case: i, target, mutation, problem: `ArrayBuffer memory grew by ${formatBytes(grown)}` });
      (outcomes[target] ??= {})[outcome] = (outcomes[target]![outcome] ?? 0) + 1;
      if ((i + 1) % 1000 === 0) log(`${i + 1}/${options.cases} cases, ${failures.length} failures`);
    }

    // the CLI: a one-line typed error (or success) with exit 0, 1 or 2, never a crash or a hang
    const cliOutcomes: Record<string, number> = {};
    let startupMs = 0;
    let limitMs = 0;
    let cliSlowest = 0;
    if (options.cliCases > 0) {
      const crng = Rng.seeded(`bench-fuzz-cli-${options.seed}`);
      for (let i = 0; i < options.cliCases; i++) {
        const kind = i % 3;
        const caseDir = join(dir, `cli-${i}`);
        mkdirSync(caseDir);
        let args: string[];
        let mutation: string;
        if (kind === 0) {
          const m = mutateSafetensors(s.safetensors, crng);
          writeFileSync(join(caseDir, 'm.safetensors'), m.bytes);
          args = ['inspect', join(caseDir, 'm.safetensors'), '--json'];
          mutation = `inspect:${m.kind}`;
        } else if (kind === 1) {
          const m = mutateDocument(crng.int(2) === 0 ? s.recipe : s.mergekit, crng);
          writeFileSync(join(caseDir, 'recipe.yaml'), stringify(m.doc));
          args = ['merge', join(caseDir, 'recipe.yaml'), '-o', join(caseDir, 'out'), '--no-progress'];
          mutation = `merge:${m.kind}`;
        } else {
          const seed = s.manifests[crng.int(s.manifests.length)]!;
          const m = mutateDocument(seed.doc, crng);
          writeFileSync(join(caseDir, seed.name), stringify(m.doc));
          args = ['eval', join(dir, 'zoo', 'base'), '--evaluator', join(caseDir, seed.name), '--backend', 'cpu', '--json'];
          mutation = `eval:${seed.name}:${m.kind}`;
        }
        // the machine's load varies: judge each case against a process start measured just before it
        const startup = (await cli(['--version'], dir, 60_000)).ms;
        startupMs = Math.max(startupMs, startup);
        limitMs = Math.max(limitMs, 2 * startup + CASE_LIMIT_MS);
        const r = await cli(args, caseDir, 60_000);
        cliSlowest = Math.max(cliSlowest, r.ms);
        const line = r.stderr.trim().split('\n').filter((l) => l.startsWith('evomerge:')).pop() ?? '';
        const code = /\[(E_[A-Z0-9_]+)\]$/.exec(line)?.[1];
        let outcome: string;
        if (r.code === 0) outcome = 'valid';
        else if ((r.code === 1 || r.code === 2) && code) outcome = code;
        else {
          outcome = 'FAILED';
          failures.push({ case: i, target: 'cli', mutation, problem: `exit ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 300)}` });
        }
        if (r.code !== 0 && r.ms > 2 * startup + CASE_LIMIT_MS) failures.push({ case: i, target: 'cli', mutation, problem: `the error came after ${r.ms.toFixed(0)} ms (a bare start took ${startup.toFixed(0)} ms just before)` });
        cliOutcomes[outcome] = (cliOutcomes[outcome] ?? 0) + 1;
        rmSync(caseDir, { recursive: true, force: true });
      }
    }
    return {
      cases: options.cases, seconds: (performance.now() - t0) / 1000, outcomes, slowestMs, maxAllocationMb: maxAllocation / 2 ** 20,
      cli: { cases: options.cliCases, startupMs, limitMs, outcomes: cliOutcomes, slowestMs: cliSlowest },
      failures, ok: failures.length === 0,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function formatFuzzReport(r: FuzzReport): string {
  const lines: string[] = [`${r.cases} cases in ${r.seconds.toFixed(1)} s; slowest case ${r.slowestMs.toFixed(1)} ms; largest ArrayBuffer growth ${formatBytes(r.maxAllocationMb * 2 ** 20)}`];
  for (const [target, counts] of Object.entries(r.outcomes)) {
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const parts = Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`);
    lines.push(`${target.padEnd(18)} ${String(total).padStart(6)}  ${parts.join(', ')}`);
  }
  lines.push(`${'cli'.padEnd(18)} ${String(r.cli.cases).padStart(6)}  ${Object.entries(r.cli.outcomes).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')} (slowest bare start ${r.cli.startupMs.toFixed(0)} ms, slowest case ${r.cli.slowestMs.toFixed(0)} ms)`);
  for (const f of r.failures.slice(0, 20)) lines.push(`FAIL case ${f.case} ${f.target} (${f.mutation}): ${f.problem}`);
  if (r.failures.length > 20) lines.push(`... and ${r.failures.length - 20} more failures`);
  lines.push(r.ok ? 'PASS: every case gave a valid result or a typed error' : `FAIL: ${r.failures.length} failures`);
  return lines.join('\n');
}

export function registerBench(bench: Command): void {
  bench
    .command('fuzz')
    .description('mutated checkpoints, search spaces, recipes and evaluator manifests through the readers and the CLI: valid results or typed errors, fast, no crash')
    .option('--cases <n>', 'in-process cases', '10000')
    .option('--cli-cases <n>', 'CLI cases (child processes)', '30')
    .option('--seed <n>', 'seed of the mutations', '0')
    .option('--json', 'print one JSON object')
    .action(async (o: { cases: string; cliCases: string; seed: string; json?: boolean }) => {
      const int = (flag: string, v: string) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0) throw new InputError('E_BAD_FLAG', `${flag} must be a non-negative integer, got '${v}'`);
        return n;
      };
      const r = await runFuzzBench({ cases: int('--cases', o.cases), cliCases: int('--cli-cases', o.cliCases), seed: int('--seed', o.seed), log: (l) => process.stderr.write(`${l}\n`) });
      process.stdout.write(o.json ? `${JSON.stringify(r)}\n` : `${formatFuzzReport(r)}\n`);
      if (!r.ok) process.exitCode = 1;
    });
}
