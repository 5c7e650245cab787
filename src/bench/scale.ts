/**
 * `evomerge bench scale`: a search and a merge at a real model size, on this machine.
 *
 * - Generates (deterministically, cached by its settings) a Llama-shaped family of about 1.1B
 *   parameters (TinyLlama's shape: hidden 2048, intermediate 5632, 22 layers, 32/4 heads,
 *   vocab 32000), BF16, sharded at 1 GB: a base and 3 fine-tunes, about 8.8 GB on disk.
 * - Runs a PS search of 8 candidates (DARE-TIES, per-layer-group weight and density) with 2
 *   workers in a child process, scored by a command evaluator that reads the candidate folder
 *   and prints a number derived from its tensors; samples the resident memory of the whole
 *   process tree (the search, its worker threads, the evaluator's processes).
 * - Merges the best recipe with `evomerge merge` in another child process, again sampling RSS.
 * - Baseline, in the same run: a plain user-space copy (read + write, 16 MB chunks) of one
 *   model's shards, the bytes a candidate writes.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync, writeSync, fsyncSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { CheckpointWriter, openCheckpoint } from '../checkpoint/index.ts';
import { InputError } from '../errors.ts';
import { formatBytes, formatCount } from '../format.ts';
import { RunStore } from '../store/index.ts';

const BIN = fileURLToPath(new URL('../cli/bin.mjs', import.meta.url));

export interface ScaleFamily {
  hidden: number;
  intermediate: number;
  layers: number;
  vocab: number;
  heads: number;
  kvHeads: number;
  shardBytes: number;
}

export const FULL: ScaleFamily = { hidden: 2048, intermediate: 5632, layers: 22, vocab: 32000, heads: 32, kvHeads: 4, shardBytes: 1e9 };
export const SMALL: ScaleFamily = { hidden: 256, intermediate: 704, layers: 4, vocab: 2000, heads: 8, kvHeads: 2, shardBytes: 4e6 };

export function llamaTensors(f: ScaleFamily): Array<{ name: string; shape: number[] }> {
  const H = f.hidden;
  const kv = (H / f.heads) * f.kvHeads;
  const out = [{ name: 'model.embed_tokens.weight', shape: [f.vocab, H] }];
  for (let i = 0; i < f.layers; i++) {
    const p = `model.layers.${i}.`;
    out.push(
      { name: `${p}input_layernorm.weight`, shape: [H] },
      { name: `${p}self_attn.q_proj.weight`, shape: [H, H] },
      { name: `${p}self_attn.k_proj.weight`, shape: [kv, H] },
      { name: `${p}self_attn.v_proj.weight`, shape: [kv, H] },
      { name: `${p}self_attn.o_proj.weight`, shape: [H, H] },
      { name: `${p}post_attention_layernorm.weight`, shape: [H] },
      { name: `${p}mlp.gate_proj.weight`, shape: [f.intermediate, H] },
      { name: `${p}mlp.up_proj.weight`, shape: [f.intermediate, H] },
      { name: `${p}mlp.down_proj.weight`, shape: [H, f.intermediate] },
    );
  }
  out.push({ name: 'model.norm.weight', shape: [H] }, { name: 'lm_head.weight', shape: [f.vocab, H] });
  return out;
}

/**
 * BF16 bits of a deterministic weight: the base's value from a hash of (tensor, index), plus for
 * a fine-tune a smaller offset from another hash; norms near 1. An integer hash per element keeps
 * the generator at memory speed; the values need only be distinct, not trained.
 */
function fillBf16(out: Uint16Array, tensorSeed: number, model: number, norm: boolean): void {
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  let h = tensorSeed >>> 0;
  let g = (tensorSeed * 2654435761 + model * 40503) >>> 0;
  for (let i = 0; i < out.length; i++) {
    h = (h ^ (h << 13)) >>> 0;
    h = (h ^ (h >>> 17)) >>> 0;
    h = (h ^ (h << 5)) >>> 0;
    let v = ((h & 0xffff) / 65536 - 0.5) * 0.04;
    if (model > 0) {
      g = (g ^ (g << 13)) >>> 0;
      g = (g ^ (g >>> 17)) >>> 0;
      g = (g ^ (g << 5)) >>> 0;
      v += ((g & 0xffff) / 65536 - 0.5) * 0.008;
    }
    f32[0] = norm ? 1 + v : v;
    out[i] = (u32[0]! + 0x7fff + ((u32[0]! >>> 16) & 1)) >>> 16; // round to nearest even
  }
}

function nameSeed(name: string): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  return h || 1;
}

/** Write the family under `dir` (base, ft1..ft3) unless a complete one with these settings is there. */
export function generateFamily(dir: string, f: ScaleFamily, log: (l: string) => void): string[] {
  const marker = join(dir, 'family.json');
  const names = ['base', 'ft1', 'ft2', 'ft3'];
  const want = JSON.stringify({ version: 1, ...f });
  if (existsSync(marker) && readFileSync(marker, 'utf8') === want) return names.map((n) => join(dir, n));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const tensors = llamaTensors(f);
  const config = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: f.hidden, intermediate_size: f.intermediate,
    num_hidden_layers: f.layers, num_attention_heads: f.heads, num_key_value_heads: f.kvHeads, vocab_size: f.vocab,
    max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false, torch_dtype: 'bfloat16',
  };
  for (const [model, name] of names.entries()) {
    const t0 = performance.now();
    const writer = new CheckpointWriter(join(dir, name), { tensors: tensors.map((t) => ({ ...t, dtype: 'BF16' as const })), maxShardBytes: f.shardBytes });
    const largest = Math.max(...tensors.map((t) => t.shape.reduce((a, b) => a * b, 1)));
    const buf = new Uint16Array(largest);
    for (const t of tensors) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      const view = buf.subarray(0, n);
      fillBf16(view, nameSeed(t.name), model, t.name.endsWith('norm.weight'));
      writer.write(t.name, new Uint8Array(view.buffer, 0, n * 2));
    }
    writer.finish({ config });
    log(`  wrote ${name} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  writeFileSync(marker, want);
  return names.map((n) => join(dir, n));
}

/** Bytes of a checkpoint's safetensors files. */
export function checkpointBytes(path: string): number {
  const c = openCheckpoint(path);
  const n = c.names().reduce((s, name) => s + c.info(name).byteLength, 0);
  c.close();
  return n;
}

/**
 * The baseline: a user-space copy of a checkpoint's shards (read and write, 16 MB chunks), with
 * an fsync per file when `durable` (as `evomerge merge` writes) or without (as search candidates,
 * deleted after one read, are written).
 */
export function plainCopy(from: string, to: string, durable: boolean): { bytes: number; seconds: number } {
  mkdirSync(to, { recursive: true });
  const buf = Buffer.allocUnsafe(16 << 20);
  let bytes = 0;
  const t0 = performance.now();
  for (const f of readdirSync(from).filter((x) => x.endsWith('.safetensors'))) {
    const src = openSync(join(from, f), 'r');
    const dst = openSync(join(to, f), 'w');
    for (;;) {
      const n = readSync(src, buf, 0, buf.length, null);
      if (n === 0) break;
      let off = 0;
      while (off < n) off += writeSync(dst, buf, off, n - off);
      bytes += n;
    }
    if (durable) fsyncSync(dst);
    closeSync(src);
    closeSync(dst);
  }
  return { bytes, seconds: (performance.now() - t0) / 1000 };
}

/** Resident memory of a process and all its descendants, from /proc (bytes). */
function treeRss(pid: number): number {
  const children = new Map<number, number[]>();
  const rss = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(fields[1]);
      rss.set(Number(entry), Number(fields[21]) * 4096);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid)!.push(Number(entry));
    } catch {
      // the process ended while listed
    }
  }
  let total = 0;
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop()!;
    total += rss.get(p) ?? 0;
    stack.push(...(children.get(p) ?? []));
  }
  return total;
}

/** Run `node bin.mjs args` to its end, sampling the tree's RSS every 200 ms. */
export function runSampled(args: string[], log: (l: string) => void): Promise<{ seconds: number; peak: number; samples: Array<{ t: number; rss: number }>; stdout: string }> {
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      for (const line of b.toString().split('\n')) if (line.trim()) log(`    | ${line.trim()}`);
    });
    const samples: Array<{ t: number; rss: number }> = [];
    const timer = setInterval(() => samples.push({ t: (performance.now() - t0) / 1000, rss: treeRss(child.pid!) }), 200);
    child.on('close', (code) => {
      clearInterval(timer);
      if (code !== 0) return reject(new Error(`evomerge ${args[0]} exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
      resolvePromise({ seconds: (performance.now() - t0) / 1000, peak: Math.max(0, ...samples.map((s) => s.rss)), samples, stdout });
    });
  });
}

/** The evaluator: positioned reads of the first 4096 BF16 values of every tensor of the candidate; prints their sum of squares. */
const SCORER = `import { closeSync, openSync, readdirSync, readSync } from 'node:fs';
const dir = process.argv[2];
let sum = 0, tensors = 0;
for (const f of readdirSync(dir).filter((x) => x.endsWith('.safetensors'))) {
  const fd = openSync(dir + '/' + f, 'r');
  const len = Buffer.alloc(8); readSync(fd, len, 0, 8, 0);
  const n = Number(len.readBigUInt64LE(0)); const hb = Buffer.alloc(n); readSync(fd, hb, 0, n, 8);
  for (const [k, v] of Object.entries(JSON.parse(hb.toString()))) {
    if (k === '__metadata__') continue;
    const bytes = Math.min(8192, v.data_offsets[1] - v.data_offsets[0]);
    const b = Buffer.alloc(bytes); readSync(fd, b, 0, bytes, 8 + n + v.data_offsets[0]);
    for (let i = 0; i + 1 < bytes; i += 2) { const x = new Float32Array(new Uint32Array([b.readUInt16LE(i) << 16]).buffer)[0]; sum += x * x; }
    tensors++;
  }
  closeSync(fd);
}
console.log(JSON.stringify({ score: sum, tensors }));
`;

export interface ScaleBenchResult {
  family: ScaleFamily & { parameters: number; bytesPerModel: number; sourceBytes: number };
  copy: { bytes: number; seconds: number; gbPerSecond: number; secondsWithoutFsync: number };
  /** ratioToCopy: per candidate against the copy without fsync (candidates are not flushed). */
  search: { candidates: number; workers: number; seconds: number; secondsPerCandidate: number; ratioToCopy: number; peakRssGiB: number; peakFirstHalfGiB: number; peakSecondHalfGiB: number; failed: number };
  merge: { seconds: number; peakRssGiB: number; sourceGbPerSecond: number; ratioToCopy: number };
}

export async function runScaleBench(o: { dir: string; small: boolean; workers: number; candidates: number; keep: boolean; log: (l: string) => void }): Promise<ScaleBenchResult> {
  const f = o.small ? SMALL : FULL;
  const familyDir = resolve(o.dir, o.small ? 'family-small' : 'family');
  o.log(`family: Llama shape hidden ${f.hidden}, intermediate ${f.intermediate}, ${f.layers} layers, vocab ${f.vocab}, BF16, shards of ${formatBytes(f.shardBytes)}, in ${familyDir}`);
  const [base, ...fts] = generateFamily(familyDir, f, o.log);
  const bytesPerModel = checkpointBytes(base!);
  const work = mkdtempSync(join(o.dir, 'work-'));
  try {
    o.log('baseline: a plain copy of one model\'s shards, with and without fsync ...');
    const copy = plainCopy(base!, join(work, 'copy'), true);
    rmSync(join(work, 'copy'), { recursive: true, force: true });
    const cached = plainCopy(base!, join(work, 'copy'), false);
    rmSync(join(work, 'copy'), { recursive: true, force: true });
    const copyGbs = copy.bytes / copy.seconds / 1e9;
    o.log(`  ${formatBytes(copy.bytes)} in ${copy.seconds.toFixed(1)} s with fsync (${copyGbs.toFixed(2)} GB/s), ${cached.seconds.toFixed(1)} s without`);

    writeFileSync(join(work, 'score.mjs'), SCORER);
    writeFileSync(join(work, 'score.yaml'), `id: tensor-sample\nversion: 1\nkind: command\nfamily: any\nsplit: validation\ncommand: ["${process.execPath}", "{manifest_dir}/score.mjs", "{model}"]\ntimeout_s: 1700\nmetric: { name: score, direction: maximize }\n`);
    const space = join(work, 'space.yaml');
    const groups = Math.max(1, Math.floor(f.layers / 2));
    writeFileSync(space, [
      'name: scale', `base: ${base}`, 'models:', ...fts.map((p, i) => `  - { name: ft${i + 1}, path: ${p} }`),
      'mode: ps', 'ps:', '  method: dare_ties', `  layers_per_group: ${groups}`, '  evolve: { weight: [0, 1], density: [0.2, 1] }', '  fixed: { lambda: 1 }',
      'evaluators:', `  - { manifest: ${join(work, 'score.yaml')}, weight: 1 }`,
      `optimizer: { id: cmaes, options: { popsize: ${o.candidates}, sigma0: 0.2 } }`, `budget: { evaluations: ${o.candidates} }`,
      'seed: 0', `workers: ${o.workers}`, 'timeout_seconds: 1800', 'backend: auto',
    ].join('\n'));
    o.log(`search: ${o.candidates} DARE-TIES candidates, ${o.workers} workers, command evaluator ...`);
    const db = join(work, 'run.sqlite');
    const s = await runSampled(['search', space, '--db', db, '--json'], o.log);
    const store = RunStore.open(db, { readonly: true });
    const run = store.run('scale')!;
    const cands = store.candidates(run.id);
    const best = store.best(run.id, 1)[0];
    store.close();
    const done = cands.filter((c) => c.state === 'done');
    const ms = done.map((c) => c.evalMs ?? 0).sort((a, b) => a - b);
    const perCandidate = ms.length ? ms[Math.floor(ms.length / 2)]! / 1000 : NaN;
    const half = s.seconds / 2;
    const peakIn = (a: number, b: number) => Math.max(0, ...s.samples.filter((x) => x.t >= a && x.t < b).map((x) => x.rss));

    o.log('merge: evomerge merge of the best recipe ...');
    if (!best) throw new InputError('E_BENCH', 'the scale search produced no successful candidate');
    writeFileSync(join(work, 'recipe.json'), JSON.stringify(best.recipe));
    const m = await runSampled(['merge', join(work, 'recipe.json'), '-o', join(work, 'merged'), '--json'], o.log);
    const sourceBytes = bytesPerModel * 4;
    const params = llamaTensors(f).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
    const gib = (b: number) => b / 2 ** 30;
    return {
      family: { ...f, parameters: params, bytesPerModel, sourceBytes },
      copy: { ...copy, gbPerSecond: copyGbs, secondsWithoutFsync: cached.seconds },
      search: {
        candidates: cands.length, workers: o.workers, seconds: s.seconds, secondsPerCandidate: perCandidate, ratioToCopy: perCandidate / cached.seconds,
        peakRssGiB: gib(s.peak), peakFirstHalfGiB: gib(peakIn(0, half)), peakSecondHalfGiB: gib(peakIn(half, Infinity)), failed: cands.length - done.length,
      },
      merge: { seconds: m.seconds, peakRssGiB: gib(m.peak), sourceGbPerSecond: sourceBytes / m.seconds / 1e9, ratioToCopy: m.seconds / copy.seconds },
    };
  } finally {
    if (!o.keep) rmSync(work, { recursive: true, force: true });
  }
}

export function registerBench(bench: Command): void {
  bench
    .command('scale')
    .description('a search and a merge at a real size: a generated 1.1B-parameter BF16 Llama family (8.8 GB), peak memory and time against a plain copy')
    .option('--dir <dir>', 'where the generated family is cached and the run works', 'runs/bench-scale')
    .option('--small', 'a small family (seconds), to check the benchmark itself')
    .option('--workers <n>', 'worker threads of the search', '2')
    .option('--candidates <n>', 'candidates of the search', '8')
    .option('--keep', 'keep the run folder (database, merged model)')
    .option('--json', 'print one JSON object')
    .action(async (opts: { dir: string; small?: boolean; workers: string; candidates: string; keep?: boolean; json?: boolean }) => {
      const workers = Number(opts.workers);
      const candidates = Number(opts.candidates);
      if (!Number.isInteger(workers) || workers < 1) throw new InputError('E_BAD_FLAG', `--workers must be a positive integer, got '${opts.workers}'`);
      if (!Number.isInteger(candidates) || candidates < 2) throw new InputError('E_BAD_FLAG', `--candidates must be an integer of at least 2, got '${opts.candidates}'`);
      mkdirSync(opts.dir, { recursive: true });
      const r = await runScaleBench({ dir: opts.dir, small: !!opts.small, workers, candidates, keep: !!opts.keep, log: (l) => process.stderr.write(`${l}\n`) });
      if (opts.json) return void process.stdout.write(`${JSON.stringify(r)}\n`);
      const p = (s: string) => process.stdout.write(`${s}\n`);
      p(`family: ${formatCount(r.family.parameters)} parameters per model, ${formatBytes(r.family.bytesPerModel)} BF16 each, ${formatBytes(r.family.sourceBytes)} of sources`);
      p(`baseline copy of one model: ${r.copy.seconds.toFixed(1)} s with fsync (${r.copy.gbPerSecond.toFixed(2)} GB/s), ${r.copy.secondsWithoutFsync.toFixed(1)} s without`);
      p(`search: ${r.search.candidates} candidates (${r.search.failed} failed), ${r.search.workers} workers, ${r.search.seconds.toFixed(0)} s; merge + write + score per candidate ${r.search.secondsPerCandidate.toFixed(1)} s = ${r.search.ratioToCopy.toFixed(2)}x the copy without fsync (candidates are not flushed)`);
      p(`  peak RSS of the process tree ${formatBytes(r.search.peakRssGiB * 2 ** 30)} (first half of the run ${formatBytes(r.search.peakFirstHalfGiB * 2 ** 30)}, second half ${formatBytes(r.search.peakSecondHalfGiB * 2 ** 30)})`);
      p(`merge to disk: ${r.merge.seconds.toFixed(1)} s = ${r.merge.ratioToCopy.toFixed(2)}x the copy with fsync, ${r.merge.sourceGbPerSecond.toFixed(2)} GB/s of source bytes, peak RSS ${formatBytes(r.merge.peakRssGiB * 2 ** 30)}`);
    });
}
