/**
 * evaluators/scripts/lm_eval_score.py without lm-eval (which is not installable here): its
 * persistent mode over the protocol with the simulated task (numpy only): the model is built
 * once and each later candidate's tensors are read into it in place (checked against the
 * checkpoint reader of src/), rebuilt for another architecture, an error answer for a broken
 * folder; its lm-eval call against a stand-in `lm_eval` module that records what it is given
 * (options, seeds, task manager) and returns results in lm-eval's shape; and, where torch is
 * installed, the in-place load into a torch module's parameters (tied weights included).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateFamily } from '../src/bench/scale.ts';
import { openCheckpoint } from '../src/checkpoint/index.ts';
import { PYTHON, requireNumpy } from './helpers/numpy.ts';
import { tempDir } from './helpers/tmp.ts';

const SCRIPT = fileURLToPath(new URL('../evaluators/scripts/lm_eval_score.py', import.meta.url));
const SCRIPTS = fileURLToPath(new URL('../evaluators/scripts/', import.meta.url));
const root = tempDir('evomerge-lmeval-');
requireNumpy();
const tiny = { hidden: 32, intermediate: 64, layers: 2, vocab: 128, heads: 4, kvHeads: 2, shardBytes: 2e4 };
const family = generateFamily(join(root, 'family'), tiny, () => {});
const deeper = generateFamily(join(root, 'deeper'), { ...tiny, layers: 3 }, () => {});

/** What the simulated task answers: the sum of the first 4096 values of each tensor, in name order, read by src/'s checkpoint reader. */
function checksum(dir: string): number {
  const c = openCheckpoint(dir);
  try {
    let sum = 0;
    for (const name of [...c.names()].sort()) {
      const v = c.readFloat32(name);
      for (let i = 0; i < Math.min(4096, v.length); i++) sum += v[i]!;
    }
    return sum;
  } finally {
    c.close();
  }
}

const req = (id: string, model: string) => JSON.stringify({ id, model, split: 'validation', limit: null, seed: null });

test('the persistent mode says hello, builds the model once, loads each later candidate in place, rebuilds for another architecture and answers an error for a broken folder', () => {
  const input = [req('1', family[1]!), req('2', family[2]!), req('3', join(root, 'missing')), req('4', family[1]!), req('5', deeper[1]!), req('6', deeper[2]!)].join('\n') + '\n';
  const r = spawnSync(PYTHON, [SCRIPT, '--serve', '--simulate', '0.01', '--framework', 'numpy'], { input, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, number | string>);
  assert.deepEqual(lines[0], { evomerge_evaluator: 1, capabilities: [] });
  const [a, b, broken, again, other, next] = lines.slice(1);
  assert.deepEqual([a!.id, a!.builds, a!.loads], ['1', 1, 0]);
  assert.deepEqual([b!.id, b!.builds, b!.loads], ['2', 1, 1], 'loaded in place');
  assert.ok(Math.abs((a!.score as number) - checksum(family[1]!)) < 1e-6, `${a!.score} against ${checksum(family[1]!)}`);
  assert.ok(Math.abs((b!.score as number) - checksum(family[2]!)) < 1e-6);
  assert.equal(broken!.id, '3');
  assert.match(String(broken!.error), /FileNotFoundError/);
  assert.deepEqual([again!.builds, again!.loads, again!.score], [1, 2, a!.score], 'the same weights again, after another candidate');
  assert.deepEqual([other!.builds, other!.loads], [2, 2], 'three layers: rebuilt');
  assert.deepEqual([next!.builds, next!.loads], [2, 3]);
  assert.ok(Math.abs((next!.score as number) - checksum(deeper[2]!)) < 1e-6);
  assert.equal(typeof a!.load_seconds, 'number');
  assert.ok((a!.score_seconds as number) >= 0.01);
});

test('--base builds the model before the hello line, so the first candidate is loaded in place as well; a --base that is no folder is refused', () => {
  const input = [req('1', family[1]!), req('2', family[2]!)].join('\n') + '\n';
  const r = spawnSync(PYTHON, [SCRIPT, '--serve', '--base', family[0]!, '--simulate', '0', '--framework', 'numpy'], { input, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /built the model from .* in [\d.]+ s/);
  const [hello, a, b] = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, number | string>);
  assert.deepEqual(hello, { evomerge_evaluator: 1, capabilities: [] });
  assert.deepEqual([a!.builds, a!.loads, b!.builds, b!.loads], [1, 1, 1, 2], 'one build, at the start; both candidates in place');
  assert.ok(Math.abs((a!.score as number) - checksum(family[1]!)) < 1e-6, 'the first candidate\'s weights, not the base\'s');
  const bad = spawnSync(PYTHON, [SCRIPT, '--serve', '--base', join(root, 'nowhere'), '--simulate', '0'], { input: '', encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--base .*nowhere: no such folder/);
  assert.equal(bad.stdout, '', 'no hello line');
});

test('the one-shot mode builds, scores and prints one answer', () => {
  const r = spawnSync(PYTHON, [SCRIPT, '--model', family[3]!, '--simulate', '0', '--framework', 'numpy'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { score: number; builds: number };
  assert.equal(out.builds, 1);
  assert.ok(Math.abs(out.score - checksum(family[3]!)) < 1e-6);
});

test('the lm-eval call passes chat template, multi-turn few-shot, few-shot count, limit, seeds and the task manager, and reads the metric, its standard error and the items', () => {
  const fake = join(root, 'fake');
  mkdirSync(join(fake, 'lm_eval', 'tasks'), { recursive: true });
  writeFileSync(join(fake, 'lm_eval', '__init__.py'), [
    '__version__ = "0.4.99"',
    'import json, os',
    'def simple_evaluate(model, tasks, num_fewshot=None, limit=None, task_manager=None, log_samples=True, apply_chat_template=False, fewshot_as_multiturn=False,',
    '                    system_instruction=None, gen_kwargs=None, random_seed=0, numpy_random_seed=1234, torch_random_seed=1234, fewshot_random_seed=1234):',
    '    print("lm-eval writes progress to stdout")',
    '    rec = dict(model=model, tasks=tasks, num_fewshot=num_fewshot, limit=limit, include=task_manager.include_path, log_samples=log_samples, apply_chat_template=apply_chat_template,',
    '               fewshot_as_multiturn=fewshot_as_multiturn, seeds=[random_seed, numpy_random_seed, torch_random_seed, fewshot_random_seed])',
    '    with open(os.environ["FAKE_RECORD"], "a") as f: f.write(json.dumps(rec) + "\\n")',
    '    t = tasks[0]',
    '    return {"results": {t: {"alias": t, "acc,none": 0.4, "acc_stderr,none": 0.02, "acc_norm,none": 0.5, "acc_norm_stderr,none": 0.01}}, "n-samples": {t: {"original": 1000, "effective": limit or 1000}}}',
  ].join('\n'));
  writeFileSync(join(fake, 'lm_eval', 'tasks', '__init__.py'), 'class TaskManager:\n    def __init__(self, include_path=None):\n        self.include_path = include_path\n');
  const record = join(root, 'record.jsonl');
  // the script's serve loop, with its model holder replaced by one whose LM is a name (no torch here)
  const driver = [
    'import sys',
    `sys.path[:0] = [${JSON.stringify(fake)}, ${JSON.stringify(SCRIPTS)}]`,
    'import lm_eval_score as L',
    'class Holder:',
    '    lm = "the-lm"',
    '    def prepare(self, folder): return "load"',
    'L.make = lambda a: (Holder(), L.LmEvalTask(a))',
    'sys.exit(L.main(sys.argv[1:]))',
  ].join('\n');
  const input = [JSON.stringify({ id: '7', model: family[1], split: 'validation', limit: 50, seed: 3 }), JSON.stringify({ id: '8', model: family[2], split: 'validation', limit: null, seed: null })].join('\n') + '\n';
  const r = spawnSync(PYTHON, ['-c', driver, '--serve', '--task', 'arc_easy_val', '--include-path', '/tasks', '--apply-chat-template', '--fewshot-as-multiturn', '--num-fewshot', '5'], { input, encoding: 'utf8', env: { ...process.env, FAKE_RECORD: record } });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /lm-eval writes progress to stdout/, 'prints of lm-eval go to stderr');
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, 3);
  assert.deepEqual({ ...lines[1], load_seconds: 0, score_seconds: 0 }, { id: '7', acc_norm: 0.5, acc_norm_stderr: 0.01, samples: 50, load_seconds: 0, score_seconds: 0, builds: 0, loads: 1 });
  assert.equal(lines[2]!.samples, 1000);
  const calls = spawnSync('cat', [record], { encoding: 'utf8' }).stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(calls[0], { model: 'the-lm', tasks: ['arc_easy_val'], num_fewshot: 5, limit: 50, include: '/tasks', log_samples: false, apply_chat_template: true, fewshot_as_multiturn: true, seeds: [3, 3, 3, 3] });
  assert.deepEqual(calls[1]!.seeds, [0, 1234, 1234, 1234], 'no seed in the request: lm-eval\'s own defaults');
  assert.equal(calls[1]!.limit, null);

  // a metric the task does not report, and an option an older lm-eval does not take, answer errors that say so
  const check = [
    'import sys',
    `sys.path[:0] = [${JSON.stringify(fake)}, ${JSON.stringify(SCRIPTS)}]`,
    'import lm_eval, lm_eval_score as L',
    'class H: lm = "x"',
    'a = L.parse(["--serve", "--task", "t", "--metric", "exact_match"])',
    'try: L.LmEvalTask(a).run(H(), {"limit": 1, "seed": None})',
    'except RuntimeError as e: print(e)',
    'def old(model, tasks, num_fewshot=None, limit=None, task_manager=None, log_samples=True): pass',
    'lm_eval.simple_evaluate = old',
    'a = L.parse(["--serve", "--task", "t", "--apply-chat-template"])',
    'try: L.LmEvalTask(a).run(H(), {"limit": 1, "seed": None})',
    'except RuntimeError as e: print(e)',
  ].join('\n');
  const c = spawnSync(PYTHON, ['-c', check], { encoding: 'utf8', env: { ...process.env, FAKE_RECORD: record } });
  assert.equal(c.status, 0, c.stderr);
  assert.match(c.stdout, /task t reported no metric exact_match \(it has: acc,none, acc_norm,none\)/);
  assert.match(c.stdout, /this lm-eval \(0\.4\.99\) takes no apply_chat_template; upgrade it/);
});

const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

test('the in-place load overwrites a torch module\'s parameters (float32 from BF16 files, tied weights covered) and refuses a module it does not cover', { skip: hasTorch ? false : `needs torch at ${PYTHON} (Debian python3-torch), which CI does not install` }, () => {
  const driver = [
    'import sys, torch',
    `sys.path.insert(0, ${JSON.stringify(SCRIPTS)})`,
    'import lm_eval_score as L',
    `idx = L.tensor_index(${JSON.stringify(family[1])})`,
    'def module(extra=False):',
    '    m = torch.nn.Module()',
    '    for name, (_, dt, shape, _, _) in idx.items():',
    '        *path, leaf = name.split(".")',
    '        mod = m',
    '        for q in path:',
    '            if not hasattr(mod, q): mod.add_module(q, torch.nn.Module())',
    '            mod = getattr(mod, q)',
    '        mod.register_parameter(leaf, torch.nn.Parameter(torch.zeros(shape)))',
    '    # tied: a second name for the embeddings, absent from the files',
    '    m.tied_head = m.model.embed_tokens',
    '    if extra: m.register_parameter("unknown", torch.nn.Parameter(torch.zeros(3)))',
    '    return m',
    'm = module()',
    `n = L.load_state_in_place(m, ${JSON.stringify(family[2])})`,
    `ref = dict(L.torch_tensors(${JSON.stringify(family[2])}))`,
    'p = dict(m.named_parameters())',
    'print(n, all(torch.equal(p[k].data, v.float()) for k, v in ref.items()), torch.equal(m.tied_head.weight, ref["model.embed_tokens.weight"].float()))',
    'try:',
    `    L.load_state_in_place(module(extra=True), ${JSON.stringify(family[2])})`,
    'except L.ArchitectureChanged as e: print("refused:", e)',
  ].join('\n');
  const r = spawnSync(PYTHON, ['-c', driver], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const [first, second] = r.stdout.trim().split('\n');
  const c = openCheckpoint(family[2]!);
  const bytes = c.names().reduce((n, name) => n + c.info(name).byteLength, 0);
  c.close();
  assert.equal(first, `${bytes} True True`, 'every byte of the files read, every parameter equal to the file\'s');
  assert.match(second!, /refused: the candidate has no tensor for 1 parameters of the model held \(unknown/);
});
