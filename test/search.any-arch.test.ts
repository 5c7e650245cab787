/**
 * Searches over checkpoints the project did not make: a residual classifier of a made-up
 * architecture (no `architectures` in config.json, tensors `stem.*`, `blocks.N.*`, `heads.*`,
 * fc1 twice as wide as the blocks, BF16, the base sharded), written in the test's setup by
 * Python's standard library, and scored by a Python program through a `command` evaluator.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSearch, resumeSearch } from './helpers/search.ts';
import { loadSourceModel, sourceSet, tensorBytes } from '../src/candidate/sources.ts';
import { RunStore } from '../src/store/index.ts';
import { EvomergeError } from '../src/errors.ts';
import { openCheckpoint } from '../src/checkpoint/index.ts';
import { mergeToDisk } from '../src/report/merge-folder.ts';
import { parseRecipe } from '../src/recipe/index.ts';
import { tempDir } from './helpers/tmp.ts';

const root = tempDir('evomerge-anyarch-');
const BIN = fileURLToPath(new URL('../src/cli/bin.mjs', import.meta.url));

// The family: base + 3 fine-tunes (base + a model-specific offset). BF16 is written by
// truncating float32 bits of exactly representable values (multiples of 1/64 below 2).
const FAMILY = String.raw`
import json, os, struct, sys
out = sys.argv[1]
H, I, C, IN, BLOCKS = 16, 32, 4, 8, 3
def shapes():
    yield 'stem.weight', [H, IN]
    yield 'stem.bias', [H]
    for b in range(BLOCKS):
        yield f'blocks.{b}.norm.weight', [H]
        yield f'blocks.{b}.fc1.weight', [I, H]
        yield f'blocks.{b}.fc1.bias', [I]
        yield f'blocks.{b}.fc2.weight', [H, I]
        yield f'blocks.{b}.fc2.bias', [H]
    yield 'heads.cls.weight', [C, H]
    yield 'heads.cls.bias', [C]
    yield 'heads.step', [1]
def bf16(x):
    return struct.pack('<f', x)[2:]
def values(name, n, model):
    h = sum(ord(c) for c in name)
    return [((h * 7 + i * 13 + model * (5 + i % 3)) % 97 - 48) / 64.0 for i in range(n)]
def write(path, tensors):
    header, blobs, off = {}, [], 0
    for name, shape, dtype, data in tensors:
        header[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [off, off + len(data)]}
        blobs.append(data); off += len(data)
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h))); f.write(h)
        for b in blobs: f.write(b)
for model, name in enumerate(['base', 'a', 'b', 'c']):
    d = os.path.join(out, name); os.makedirs(d, exist_ok=True)
    ts = []
    for t, shape in shapes():
        n = 1
        for s in shape: n *= s
        if t == 'heads.step':
            ts.append((t, shape, 'I64', struct.pack('<q', 7)))
        else:
            ts.append((t, shape, 'BF16', b''.join(bf16(v) for v in values(t, n, model))))
    json.dump({'model_type': 'my_resnet', 'hidden': H, 'inner': I, 'num_blocks': BLOCKS}, open(os.path.join(d, 'config.json'), 'w'))
    json.dump({'version': '1.0', 'note': 'not a real tokenizer'}, open(os.path.join(d, 'tokenizer.json'), 'w'))
    if name == 'base':
        half = len(ts) // 2
        write(os.path.join(d, 'part-1.safetensors'), ts[:half]); write(os.path.join(d, 'part-2.safetensors'), ts[half:])
        wm = {t[0]: 'part-1.safetensors' for t in ts[:half]}
        wm.update({t[0]: 'part-2.safetensors' for t in ts[half:]})
        json.dump({'metadata': {}, 'weight_map': wm}, open(os.path.join(d, 'model.safetensors.index.json'), 'w'))
    else:
        write(os.path.join(d, 'model.safetensors'), ts)
`;

// The evaluator: reads the candidate folder (any shard layout), checks what a user's script
// would rely on, and prints {"norm": ...} from blocks.1.fc1.weight. Exits 1 while 'broken' exists.
const SCORE = String.raw`
import json, os, struct, sys
d = sys.argv[1]
if os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'broken')):
    sys.stderr.write("Traceback: KeyError: 'blocks.0.fc1.weight' in " + d + "\n"); sys.exit(1)
cfg = json.load(open(os.path.join(d, 'config.json')))
assert 'architectures' not in cfg and cfg['model_type'] == 'my_resnet'
assert os.path.exists(os.path.join(d, 'tokenizer.json')), 'tokenizer files are copied'
tensors = {}
for f in sorted(os.listdir(d)):
    if not f.endswith('.safetensors'): continue
    raw = open(os.path.join(d, f), 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    for k, v in h.items():
        if k == '__metadata__': continue
        a, b = v['data_offsets']
        tensors[k] = (v['dtype'], v['shape'], raw[8 + n + a:8 + n + b])
layers = sorted({int(k.split('.')[1]) for k in tensors if k.startswith('blocks.')})
assert layers == list(range(cfg['num_blocks'])), (layers, cfg['num_blocks'])
assert tensors['heads.step'][0] == 'I64' and struct.unpack('<q', tensors['heads.step'][2])[0] == 7
dt, shape, data = tensors['blocks.1.fc1.weight']
assert dt == 'BF16' and shape == [32, 16], (dt, shape)
vals = [struct.unpack('<f', b'\x00\x00' + data[i:i + 2])[0] for i in range(0, len(data), 2)]
print(json.dumps({'norm': sum(v * v for v in vals) ** 0.5, 'blocks': len(layers)}))
`;

execFileSync('python3', ['-c', FAMILY, root]);
writeFileSync(join(root, 'score.py'), SCORE);
const manifest = (name: string, extra = '') => {
  const file = join(root, `${name}.yaml`);
  writeFileSync(file, `id: ${name}\nversion: 1\nkind: command\nfamily: any\nsplit: validation\ncommand: ["python3", "{manifest_dir}/score.py", "{model}"]\ntimeout_s: 60\nmetric: { name: norm, direction: minimize }\n${extra}`);
  return file;
};
const normManifest = manifest('norm');

function space(name: string, body: string): string {
  const file = join(root, `${name}.yaml`);
  writeFileSync(file, [
    `name: ${name}`,
    `base: ${join(root, 'base')}`,
    'models:',
    ...['a', 'b', 'c'].map((m) => `  - { name: ${m}, path: ${join(root, m)} }`),
    body,
    'optimizer: { id: cmaes, options: { sigma0: 0.3 } }',
    'seed: 3',
    'workers: 2',
    'timeout_seconds: 120',
  ].join('\n'));
  return file;
}

const psBody = (evaluator: string) => [
  'mode: ps',
  'ps:',
  '  method: dare_ties',
  '  layers_per_group: 1',
  '  evolve: { weight: [0, 1], density: [0.2, 1] }',
  'evaluators:',
  `  - { manifest: ${evaluator}, weight: 1 }`,
  'budget: { evaluations: 8 }',
].join('\n');

test('a command-evaluator search over a made-up BF16 architecture with a wider fc1 scores every candidate, and each score is that of the recipe merged to disk', async () => {
  const db = join(root, 'ps', 'run.sqlite');
  const logs: string[] = [];
  const r = await startSearch(space('anyarch-ps', psBody(normManifest)), { dbPath: db, onLog: (l) => logs.push(l) });
  assert.ok(logs.some((l) => l.startsWith('memory plan: 4 source checkpoints') && l.includes('BF16') && l.includes('0 B of them resident')), logs.join('\n'));
  assert.ok(logs.some((l) => l.includes('no model is built: every evaluator is a command')), logs.join('\n'));
  const store = RunStore.open(db, { readonly: true });
  try {
    // the budget of 8 is a limit: the proposals past it are not evaluated
    const all = store.candidates(r.run.id).filter((c) => c.state !== 'pending');
    assert.equal(all.length, 8, `${all.length} candidates`);
    assert.deepEqual(all.filter((c) => c.state !== 'done').map((c) => c.error), []);
    const scores = new Set(all.map((c) => c.fitness!.toFixed(6)));
    assert.ok(scores.size > 1, 'different recipes score differently');
    // the streamed candidate folder equals `evomerge merge` of the same recipe, score for score
    const best = r.best!;
    const out = join(root, 'best-merged');
    mergeToDisk(parseRecipe(best.recipe, 'best'), out);
    const printed = JSON.parse(execFileSync('python3', [join(root, 'score.py'), out], { encoding: 'utf8' })) as { norm: number };
    assert.equal(-printed.norm, best.fitness);
    const merged = openCheckpoint(out);
    assert.equal(merged.info('blocks.2.fc1.weight').dtype, 'BF16');
    merged.close();
  } finally {
    store.close();
  }
});

test('a DFS search with a command evaluator writes each layer path as a checkpoint with its layers renumbered and num_blocks updated', async () => {
  const db = join(root, 'dfs', 'run.sqlite');
  const body = [
    'mode: dfs',
    'dfs: { repetitions: 2, max_path_length: 5, scale_range: [1, 1], init_source: 0, embeddings_from: 0 }',
    'evaluators:',
    `  - { manifest: ${normManifest}, weight: 1 }`,
    'budget: { evaluations: 6 }',
  ].join('\n');
  const r = await startSearch(space('anyarch-dfs', body), { dbPath: db });
  const store = RunStore.open(db, { readonly: true });
  try {
    const all = store.candidates(r.run.id).filter((c) => c.state !== 'pending');
    assert.equal(all.length, 6, `${all.length} candidates`);
    assert.deepEqual(all.filter((c) => c.state !== 'done').map((c) => c.error), []);
    for (const c of all) {
      const steps = (c.recipe as { steps: unknown[] }).steps.length;
      assert.equal(store.metrics(c.id).find((m) => m.metric === 'blocks')?.value, steps, `candidate ${c.id}: the folder holds its ${steps} layers`);
    }
  } finally {
    store.close();
  }
});

test('a search whose evaluator cannot work on the sources is refused before anything is written', async () => {
  const classifier = join(root, 'classify.yaml');
  writeFileSync(classifier, 'version: 1\nkind: classification\nfamily: residual-mlp\nsplit: validation\ndata: { format: jsonl, splits: { validation: v.jsonl } }\nmetric: { name: accuracy, direction: maximize }\n');
  // a command whose program does not exist
  const missing = join(root, 'missing-program.yaml');
  writeFileSync(missing, 'version: 1\nkind: command\nsplit: validation\ncommand: ["no-such-scorer-here", "{model}"]\ntimeout_s: 60\nmetric: { name: norm, direction: minimize }\n');
  const cases: Array<[string, string, RegExp]> = [
    ['refuse-family', psBody(classifier), /runs residual-mlp models, but .*'architectures' is missing.*family: any/],
    ['refuse-program', psBody(missing), /runs 'no-such-scorer-here', which is not found on PATH/],
    ['refuse-scale', ['mode: dfs', 'dfs: { repetitions: 1, scale_range: [0.5, 1.5] }', 'evaluators:', `  - { manifest: ${normManifest}, weight: 1 }`].join('\n'), /scale_range is \[0.5, 1.5\].*cannot be written as a checkpoint/],
  ];
  for (const [name, body, message] of cases) {
    const db = join(root, name, 'run.sqlite');
    await assert.rejects(startSearch(space(name, body), { dbPath: db }), (err: Error) => {
      assert.match(err.message, message);
      assert.equal((err as EvomergeError).exitCode, 2);
      return true;
    });
    assert.ok(!existsSync(db), `${name}: no run database was created`);
  }
});

test('a search whose memory plan passes --max-memory is refused with the numbers and the way out, before anything is written', async () => {
  const db = join(root, 'refuse-memory', 'run.sqlite');
  await assert.rejects(startSearch(space('refuse-memory', psBody(normManifest)), { dbPath: db, maxMemory: 100e6 }), (err: Error) => {
    assert.match(err.message, /needs about [\d.]+ MiB of memory \(2 workers x [\d.]+ MiB \+ 238 MiB for this process\) but the limit is 95\.4 MiB; even one worker does not fit: a smaller space.*raise --max-memory/);
    assert.equal((err as EvomergeError).code, 'E_MEMORY_PLAN');
    return true;
  });
  assert.ok(!existsSync(db));
});

test('a search whose first 3 candidates fail alike stops with exit 2 and that error, and resume after the fix finishes it', () => {
  const broken = join(root, 'broken');
  writeFileSync(broken, '');
  const spaceFile = space('anyarch-failfast', psBody(normManifest));
  const db = join(root, 'failfast', 'run.sqlite');
  const run = spawnSync(process.execPath, [BIN, 'search', spaceFile, '--db', db, '--workers', '1'], { encoding: 'utf8' });
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, /first 3 candidates of stage 0 all failed with the same error.*KeyError: 'blocks\.0\.fc1\.weight'.*evomerge resume anyarch-failfast/s);
  let store = RunStore.open(db, { readonly: true });
  const stopped = store.run('anyarch-failfast')!;
  assert.equal(stopped.status, 'failed');
  assert.match(stopped.error!, /KeyError: 'blocks\.0\.fc1\.weight'/);
  const counts = store.counts(stopped.id);
  assert.equal(counts.done, 0);
  assert.equal(counts.failed, 0, 'the failures are put back to pending, to run again after the fix');
  store.close();
  rmSync(broken);
  const resumed = spawnSync(process.execPath, [BIN, 'resume', 'anyarch-failfast', '--db', db, '--workers', '1'], { encoding: 'utf8' });
  assert.equal(resumed.status, 0, resumed.stderr);
  store = RunStore.open(db, { readonly: true });
  const all = store.candidates(stopped.id);
  store.close();
  // the budget of 8 is a limit: 8 scored, the rest of the last generation left pending
  assert.equal(all.filter((c) => c.state === 'done').length, 8, `${all.length} candidates`);
  assert.deepEqual(all.filter((c) => c.state !== 'done' && c.state !== 'pending').map((c) => c.state), []);
});

test('sources are catalogues: no tensor is held, BF16 stays 2 bytes until read, and reading holds one reused float32 array per input', () => {
  const m = loadSourceModel(join(root, 'a'));
  assert.equal(m.memory, undefined);
  assert.equal(m.tensors['blocks.0.fc1.weight']!.dtype, 'BF16');
  const set = sourceSet({ [m.path]: m });
  const reader = set.reader();
  let largest = 0;
  try {
    for (const name of Object.keys(m.tensors).filter((n) => m.tensors[n]!.dtype === 'BF16')) {
      reader.reset!();
      const data = reader.read(m.path, name);
      largest = Math.max(largest, data.length);
    }
    // one pooled float32 array for the largest tensor, reused for every read: nothing grows per tensor
    assert.equal(set.heldBytes(), largest * 4);
    // the catalogue's byte count is the stored one: 2 bytes per BF16 element
    assert.equal(tensorBytes(m.tensors['blocks.0.fc1.weight']!), 32 * 16 * 2);
    const v = reader.read(m.path, 'stem.bias');
    assert.ok(v.every((x) => Number.isFinite(x)));
  } finally {
    set.close();
  }
});
