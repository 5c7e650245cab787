import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint } from '../src/checkpoint/index.ts';
import { loadModel } from '../src/models/load.ts';
import { useBackend } from '../src/models/backend.ts';
import { parseLlamaConfig } from '../src/models/llama-config.ts';
import { llamaShapesOf } from '../src/models/llama-layout.ts';
import { bpeTokenizerJson, charTokenizerJson } from '../src/models/tokenizer.ts';
import { writeModelFolder } from '../src/zoo/build.ts';
import { initialLlamaWeights } from '../src/train/llama.ts';
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

// A source the project did not make: Python's struct writes a Mistral-style checkpoint (grouped-query
// attention, 4 query heads over 2 key-value heads, BF16 weights, two shards with an index) and a
// word-level tokenizer.json (WordLevel model, Whitespace pre-tokenizer), as the `tokenizers` library
// lays them out.
const FOREIGN = String.raw`
import json, math, os, random, struct, sys
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
words = ['[UNK]', '<s>', '</s>', 'die', 'menschen', 'sind', 'frei', '.', 'zahl', 'drei', 'ist', 'klein', 'der', 'mensch', 'schreibt']
vocab = {w: i for i, w in enumerate(words)}
tok = {'version': '1.0', 'truncation': None, 'padding': None,
       'added_tokens': [{'id': 1, 'content': '<s>', 'single_word': False, 'lstrip': False, 'rstrip': False, 'normalized': False, 'special': True},
                        {'id': 2, 'content': '</s>', 'single_word': False, 'lstrip': False, 'rstrip': False, 'normalized': False, 'special': True}],
       'normalizer': {'type': 'Lowercase'}, 'pre_tokenizer': {'type': 'Whitespace'}, 'post_processor': None, 'decoder': None,
       'model': {'type': 'WordLevel', 'vocab': vocab, 'unk_token': '[UNK]'}}
json.dump(tok, open(os.path.join(out, 'tokenizer.json'), 'w'))
H, I, L, NH, KV, V = 24, 40, 2, 4, 2, len(words)
D = H // NH
cfg = {'architectures': ['MistralForCausalLM'], 'model_type': 'mistral', 'vocab_size': V, 'hidden_size': H, 'intermediate_size': I,
       'num_hidden_layers': L, 'num_attention_heads': NH, 'num_key_value_heads': KV, 'max_position_embeddings': 32, 'rms_norm_eps': 1e-5,
       'rope_theta': 10000.0, 'hidden_act': 'silu', 'tie_word_embeddings': False, 'sliding_window': None, 'bos_token_id': 1, 'eos_token_id': 2,
       'torch_dtype': 'bfloat16'}
json.dump(cfg, open(os.path.join(out, 'config.json'), 'w'))
shapes = [('model.embed_tokens.weight', [V, H]), ('model.norm.weight', [H]), ('lm_head.weight', [V, H])]
for l in range(L):
    p = 'model.layers.%d.' % l
    shapes += [(p + 'input_layernorm.weight', [H]), (p + 'post_attention_layernorm.weight', [H]),
               (p + 'self_attn.q_proj.weight', [NH * D, H]), (p + 'self_attn.k_proj.weight', [KV * D, H]), (p + 'self_attn.v_proj.weight', [KV * D, H]),
               (p + 'self_attn.o_proj.weight', [H, NH * D]), (p + 'mlp.gate_proj.weight', [I, H]), (p + 'mlp.up_proj.weight', [I, H]), (p + 'mlp.down_proj.weight', [H, I])]
rng = random.Random(7)
def bf16(x):
    b = struct.unpack('<I', struct.pack('<f', x))[0]
    return (b + 0x7FFF + ((b >> 16) & 1)) >> 16
def shard(name, items):
    header, data = {}, b''
    for n, s in items:
        count = math.prod(s)
        vals = [1.0] * count if n.endswith('norm.weight') else [rng.gauss(0, 0.3) for _ in range(count)]
        raw = struct.pack('<%dH' % count, *[bf16(v) for v in vals])
        header[n] = {'dtype': 'BF16', 'shape': s, 'data_offsets': [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(os.path.join(out, name), 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + data)
half = len(shapes) // 2
files = [('model-00001-of-00002.safetensors', shapes[:half]), ('model-00002-of-00002.safetensors', shapes[half:])]
for name, items in files:
    shard(name, items)
json.dump({'metadata': {}, 'weight_map': {n: name for name, items in files for n, _ in items}}, open(os.path.join(out, 'model.safetensors.index.json'), 'w'))
`;

test('a source written by another tool (Python: a Mistral-style BF16 checkpoint in two shards, a word-level tokenizer) fuses into the pivot', () => {
  const foreign = join(dir, 'foreign');
  spawnSync('python3', ['-c', FOREIGN, foreign], { stdio: 'inherit' });
  assert.ok(existsSync(join(foreign, 'model.safetensors.index.json')), 'the Python script wrote the checkpoint');
  const fused = join(dir, 'fused-foreign');
  for (const mapping of ['mined', 'stats']) {
    const r = evomerge('fuse', '--pivot', pivot, '--source', foreign, '--data', corpus, '-o', join(fused, mapping), '--pairwise', '--mapping', mapping, '--epochs', '1', '--context', '16', '--batch', '8', '--json');
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    assert.deepEqual(result.targets.map((t: { name: string }) => t.name), ['foreign']);
    const target = join(fused, mapping, 'foreign');
    assert.equal(JSON.parse(readFileSync(join(target, 'config.json'), 'utf8')).hidden_size, 16, "the target has the pivot's architecture");
    const { model, family } = loadModel(target);
    assert.equal(family, 'llama');
    model.dispose();
  }
  // the word-level source's distributions differ from the pivot's own: the stored files are two, one per model
  const stored = readFileSync(join(fused, 'mined', 'foreign', 'fuse.json'), 'utf8');
  assert.match(stored, /foreign/);
});
