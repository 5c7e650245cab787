import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint } from '../src/checkpoint/index.ts';
import { loadModel } from '../src/models/load.ts';
import { useBackend } from '../src/models/backend.ts';
import { llamaShapesOf, parseLlamaConfig } from '../src/models/llama.ts';
import { bpeTokenizerJson, charTokenizerJson } from '../src/models/tokenizer.ts';
import { writeModelFolder } from '../src/zoo/build.ts';
import { initialLlamaWeights } from '../src/zoo/llama-train.ts';
import { tempDir } from './helpers/tmp.ts';

const bin = new URL('../src/cli/bin.mjs', import.meta.url).pathname;
const dir = tempDir('evomerge-fuse-');

function evomerge(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, EVOMERGE_DEBUG: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const CHARS = ' abcdefghijklmnopqrstuvwxyzDM.';
function llama(name: string, tokenizer: object, vocab: number, shape: { hidden: number; layers: number; heads: number; context: number }): string {
  const config = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: vocab, hidden_size: shape.hidden, intermediate_size: 2 * shape.hidden,
    num_hidden_layers: shape.layers, num_attention_heads: shape.heads, num_key_value_heads: shape.heads, max_position_embeddings: shape.context,
    rms_norm_eps: 1e-5, rope_theta: 10000, hidden_act: 'silu', tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
  };
  const out = join(dir, name);
  writeModelFolder(out, config, llamaShapesOf(parseLlamaConfig(config)), initialLlamaWeights(config, name, 0.2), { 'tokenizer.json': JSON.stringify(tokenizer) });
  return out;
}

// the pivot: one token per character; source "bpe": subword merges, lowercase, another width and depth;
// source "chars": a smaller character inventory in another id order, another width
const pivot = llama('pivot', charTokenizerJson(CHARS), CHARS.length + 3, { hidden: 16, layers: 1, heads: 2, context: 24 });
const merges: Array<[string, string]> = [['e', 'n'], ['c', 'h'], ['s', 'ch'], ['i', 'e'], ['d', 'ie'], [' ', 'd']];
const bpe = llama('bpe', bpeTokenizerJson(' abcdefghijklmnopqrstuvwxyz.', merges, { lowercase: true }), 28 + 3 + merges.length, { hidden: 24, layers: 2, heads: 2, context: 32 });
const inventory = ' .zyxwvutsrqponmlkjihgfedcba';
const chars = llama('chars', charTokenizerJson(inventory), inventory.length + 3, { hidden: 8, layers: 1, heads: 2, context: 32 });
const corpus = join(dir, 'corpus.txt');
writeFileSync(corpus, 'Die Menschen sind frei. Die Zahl drei ist klein. Der Mensch schreibt die Zahl. '.repeat(8));
const out = join(dir, 'fused');

test('fuse --pairwise writes one Hugging Face folder per source that loads and differs from the pivot, and a rerun reuses them', async () => {
  const r = evomerge('fuse', '--pivot', pivot, '--source', bpe, '--source', chars, '--data', corpus, '-o', out, '--pairwise', '--epochs', '1', '--context', '16', '--batch', '8', '--lr', '0.01', '--json');
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  assert.equal(result.mode, 'pairwise');
  assert.deepEqual(result.targets.map((t: { name: string }) => t.name), ['bpe', 'chars']);
  await useBackend('wasm');
  const pivotCkpt = openCheckpoint(pivot);
  for (const name of ['bpe', 'chars']) {
    const target = join(out, name);
    const record = JSON.parse(readFileSync(join(target, 'fuse.json'), 'utf8'));
    assert.equal(record.lambda, 0.9);
    assert.equal(record.mapping, 'mined');
    assert.equal(record.fusion, 'minCE');
    assert.equal(record.losses.length, 1);
    assert.equal(readFileSync(join(target, 'tokenizer.json'), 'utf8'), readFileSync(join(pivot, 'tokenizer.json'), 'utf8'), 'the pivot tokenizer travels with the target');
    const { model, family } = loadModel(target);
    assert.equal(family, 'llama');
    model.dispose();
    const ckpt = openCheckpoint(target);
    const a = ckpt.readFloat32('lm_head.weight');
    const b = pivotCkpt.readFloat32('lm_head.weight');
    assert.equal(a.length, b.length);
    assert.ok(a.some((v, i) => v !== b[i]), `${name}: training changed the weights`);
    ckpt.close();
  }
  pivotCkpt.close();
  // the teachers' distributions are stored once per model (pivot, bpe, chars)
  const again = evomerge('fuse', '--pivot', pivot, '--source', bpe, '--source', chars, '--data', corpus, '-o', out, '--pairwise', '--epochs', '1', '--context', '16', '--batch', '8', '--lr', '0.01', '--json');
  assert.equal(again.code, 0, again.stderr);
  assert.ok(JSON.parse(again.stdout).targets.every((t: { cached: boolean }) => t.cached));
});

test('the fused targets are accepted as the models of a search space and a search over them runs', () => {
  const ev = join(dir, 'ppl.yaml');
  writeFileSync(join(dir, 'held.txt'), 'Die Zahl ist frei. Der Mensch ist klein und die Zahl drei.');
  writeFileSync(ev, 'version: 1\nkind: perplexity\nfamily: llama\nsplit: validation\ncontext: 16\ndata: { format: text, splits: { validation: held.txt } }\nmetric: { name: perplexity, direction: minimize }\n');
  const space = join(dir, 'space.yaml');
  writeFileSync(space, [
    'name: fused-ta', `base: ${pivot}`, `models: [{ name: bpe, path: ${join(out, 'bpe')} }, { name: chars, path: ${join(out, 'chars')} }]`,
    'mode: ps', 'ps: { method: task_arithmetic, layers_per_group: 1, evolve: { weight: [0, 1] }, fixed: { lambda: 1 } }',
    `evaluators: [{ manifest: ${ev}, weight: 1 }]`, 'optimizer: { id: random }', 'budget: { evaluations: 3 }', 'seed: 0', 'workers: 1', 'backend: wasm', '',
  ].join('\n'));
  const r = evomerge('search', space, '--db', join(dir, 'run.sqlite'), '--json');
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  assert.equal(result.stages[0].failed, 0, 'no candidate failed');
  assert.ok(result.stages[0].evaluated >= 1);
  assert.ok(Number.isFinite(result.best.fitness));
  assert.match(JSON.stringify(result.best.recipe), /bpe[\s\S]*chars/, 'the recipe merges the two fused targets');
});

test('fuse refuses a source without tokenizer.json, a non-Llama source and an empty corpus, naming what and where', () => {
  const bare = join(dir, 'bare');
  mkdirSync(bare, { recursive: true });
  writeFileSync(join(bare, 'config.json'), readFileSync(join(chars, 'config.json')));
  writeFileSync(join(bare, 'model.safetensors'), readFileSync(join(chars, 'model.safetensors')));
  let r = evomerge('fuse', '--pivot', pivot, '--source', bare, '--data', corpus, '-o', join(dir, 'x'));
  assert.equal(r.code, 2);
  assert.match(r.stderr, /source .*bare: no tokenizer\.json.*\[E_FUSE_TOKENIZER\]/);
  writeFileSync(join(bare, 'tokenizer.json'), readFileSync(join(chars, 'tokenizer.json')));
  writeFileSync(join(bare, 'config.json'), JSON.stringify({ architectures: ['GPT2LMHeadModel'], vocab_size: 31 }));
  r = evomerge('fuse', '--pivot', pivot, '--source', bare, '--data', corpus, '-o', join(dir, 'x'));
  assert.equal(r.code, 2);
  assert.match(r.stderr, /source .*bare: .*GPT2LMHeadModel.*\[E_FUSE_MODEL\]/);
  const empty = join(dir, 'empty.txt');
  writeFileSync(empty, '  \n');
  r = evomerge('fuse', '--pivot', pivot, '--source', chars, '--data', empty, '-o', join(dir, 'x'));
  assert.equal(r.code, 2);
  assert.match(r.stderr, /empty\.txt: the corpus is empty.*\[E_FUSE_DATA\]/);
  assert.ok(!existsSync(join(dir, 'x', 'chars')), 'nothing written on refusal');
  rmSync(join(dir, 'x'), { recursive: true, force: true });
});

test('fuse killed (SIGKILL) after its first epoch checkpoint resumes and writes the weights of an uninterrupted run, byte for byte', async () => {
  const big = join(dir, 'big.txt');
  writeFileSync(big, 'Die Menschen sind frei und gleich. Die Zahl drei ist klein. Der Mensch schreibt. '.repeat(40));
  const args = (o: string) => ['fuse', '--pivot', pivot, '--source', chars, '--data', big, '-o', o, '--pairwise', '--epochs', '12', '--context', '16', '--batch', '4', '--json'];
  const whole = evomerge(...args(join(dir, 'whole')));
  assert.equal(whole.code, 0, whole.stderr);
  const cut = join(dir, 'cut');
  const state = join(cut, '.fuse-work', 'train-chars', 'train-state.safetensors');
  const child = spawn(process.execPath, [bin, ...args(cut)], { stdio: 'ignore' });
  const exited = new Promise((r) => child.on('exit', r));
  while (!existsSync(state) && child.exitCode === null) await new Promise((r) => setTimeout(r, 10));
  child.kill('SIGKILL');
  await exited;
  assert.ok(!existsSync(join(cut, 'chars', 'fuse.json')), 'the run was killed before it finished');
  const resumed = evomerge(...args(cut));
  assert.equal(resumed.code, 0, resumed.stderr);
  const t = JSON.parse(resumed.stdout).targets[0];
  assert.ok(t.resumedFrom >= 1 && t.resumedFrom < 12, `resumed after epoch ${t.resumedFrom}`);
  assert.deepEqual(t.losses, JSON.parse(whole.stdout).targets[0].losses);
  assert.ok(readFileSync(join(cut, 'chars', 'model.safetensors')).equals(readFileSync(join(dir, 'whole', 'chars', 'model.safetensors'))), 'same bytes');
});

test('--data reads the train split of an evaluator manifest and refuses one without a train split', async () => {
  const { readCorpus } = await import('../src/fuse/teacher.ts');
  const m = join(dir, 'arith');
  mkdirSync(m, { recursive: true });
  writeFileSync(join(m, 'train.jsonl'), '{"question":"What is two plus two?","answer":"4"}\n{"question":"What is one plus zero?","answer":"1"}\n');
  writeFileSync(join(m, 'val.jsonl'), '{"question":"What is three plus one?","answer":"4"}\n');
  writeFileSync(join(m, 'gen.yaml'), 'version: 1\nkind: generate\nfamily: llama\nsplit: validation\nprompt: "{question} "\ntarget: "{answer}"\ndata: { format: jsonl, splits: { train: train.jsonl, validation: val.jsonl } }\nmetric: { name: exact_match, direction: maximize }\n');
  const c = readCorpus(join(m, 'gen.yaml'));
  assert.equal(c.text, 'What is two plus two? 4\nWhat is one plus zero? 1');
  assert.match(c.origin, /generate manifest, train split/);
  writeFileSync(join(m, 'noval.yaml'), 'version: 1\nkind: generate\nfamily: llama\nsplit: validation\ndata: { format: jsonl, splits: { validation: val.jsonl } }\nmetric: { name: exact_match, direction: maximize }\n');
  assert.throws(() => readCorpus(join(m, 'noval.yaml')), (e: Error & { code?: string }) => e.code === 'E_FUSE_DATA' && /no data\.splits\.train.*splits: validation/.test(e.message));
});

test('fuse without --pairwise (FuseLLM) writes one target fused from the pivot and every source, with AvgCE and the statistics mapping', () => {
  const o = join(dir, 'fusellm');
  const r = evomerge('fuse', '--pivot', pivot, '--source', bpe, '--source', chars, '--data', corpus, '-o', o, '--fusion', 'avgCE', '--mapping', 'stats', '--epochs', '1', '--context', '16', '--json');
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  assert.equal(result.mode, 'fusellm');
  assert.deepEqual(result.targets.map((t: { name: string }) => t.name), ['fused']);
  const record = JSON.parse(readFileSync(join(o, 'fused', 'fuse.json'), 'utf8'));
  assert.deepEqual([record.mode, record.fusion, record.mapping, record.sources.length], ['fusellm', 'avgCE', 'stats', 2]);
  assert.ok(existsSync(join(o, 'fused', 'model.safetensors')));
  const bad = evomerge('fuse', '--pivot', pivot, '--source', bpe, '--data', corpus, '-o', o, '--fusion', 'maxCE');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--fusion must be one of minCE, avgCE, got 'maxCE'/);
});

test('a source whose vocab_size pads past its tokenizer fuses with every mapping (fusechat here): ids without a string carry nothing', () => {
  const padded = llama('padded', charTokenizerJson(inventory), inventory.length + 3 + 5, { hidden: 8, layers: 1, heads: 2, context: 32 });
  for (const mapping of ['fusechat', 'exact']) {
    const r = evomerge('fuse', '--pivot', pivot, '--source', padded, '--data', corpus, '-o', join(dir, `padded-${mapping}`), '--pairwise', '--mapping', mapping, '--epochs', '1', '--context', '16', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(readFileSync(join(dir, `padded-${mapping}`, 'padded', 'fuse.json'), 'utf8')).mapping, mapping);
  }
});
