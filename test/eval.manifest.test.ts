import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { loadManifest, parseManifest } from '../src/eval/manifest.ts';
import { createEvaluator } from '../src/eval/evaluator.ts';
import { arithmeticItems, loadClassificationData, readCsvFile, readIdxFile, readJsonlFile } from '../src/eval/data.ts';

const base = {
  version: 1, kind: 'generate', family: 'llama', split: 'validation',
  data: { generator: { name: 'arithmetic', seed: 1, count: 10 } }, metric: { name: 'exact_match', direction: 'maximize' },
};

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'evomerge-eval-'));
}

test('every manifest shipped in evaluators/ parses', () => {
  for (const f of ['arith-generate', 'arith-generate-test', 'arith-choice', 'lm-eval-harness', 'lm-eval-persistent']) {
    const m = loadManifest(join('evaluators', `${f}.yaml`));
    assert.ok(m.id.length > 0);
  }
});

test('a manifest with a misspelled or wrong field is refused naming the field', () => {
  assert.throws(() => parseManifest({ ...base, limt: 5 }, 'x.yaml'), /x\.yaml: field .*'limt'/);
  assert.throws(() => parseManifest({ ...base, split: 'dev' }, 'x.yaml'), /field 'split'/);
  assert.throws(() => parseManifest({ ...base, metric: { name: 'exact_match', direction: 'up' } }, 'x.yaml'), /field 'metric\.direction'/);
  assert.throws(() => parseManifest({ ...base, kind: 'ranking' }, 'x.yaml'), /field 'kind'/);
  assert.throws(() => parseManifest({ ...base, data: { splits: { train: 'a.jsonl' } } }, 'x.yaml'), /data\.splits\.validation/);
  assert.throws(() => parseManifest({ ...base, data: undefined }, 'x.yaml'), /field 'data'/);
});

test('data paths resolve relative to the manifest, not the working directory', () => {
  const dir = tmp();
  try {
    writeFileSync(join(dir, 'items.jsonl'), '{"question":"1+1=","answer":"2"}\n');
    writeFileSync(join(dir, 'm.yaml'), 'version: 1\nkind: generate\nfamily: llama\nsplit: validation\ndata: { splits: { validation: items.jsonl } }\nmetric: { name: exact_match, direction: maximize }\n');
    const m = loadManifest(join(dir, 'm.yaml'));
    assert.equal(m.id, 'm');
    assert.equal(m.dir, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a test split is refused during search unless explicitly allowed, and allowed for a one-off eval', () => {
  const m = parseManifest({ ...base, split: 'test' }, 'x.yaml');
  assert.throws(() => createEvaluator(m, { purpose: 'search' }), { code: 'E_TEST_SPLIT' });
  assert.equal(createEvaluator(m, { purpose: 'search', allowTestSplit: true }).split, 'test');
  assert.equal(createEvaluator(m, { purpose: 'eval' }).split, 'test');
  assert.equal(createEvaluator(parseManifest(base, 'x.yaml'), { purpose: 'search' }).split, 'validation');
});

test('the arithmetic generator is seeded per split and its items are correct', () => {
  const opts = { seed: 3, count: 50, digits: 2, operations: ['+', '-', '*'] as Array<'+' | '-' | '*'> };
  const a = arithmeticItems(opts, 'validation');
  assert.deepEqual(arithmeticItems(opts, 'validation'), a);
  assert.notDeepEqual(arithmeticItems(opts, 'test'), a);
  for (const r of a) {
    const m = /^(\d+)([-+*])(\d+)=$/.exec(String(r.question))!;
    const x = Number(m[1]);
    const y = Number(m[3]);
    const want = m[2] === '+' ? x + y : m[2] === '-' ? x - y : x * y;
    assert.equal(r.answer, String(want));
    assert.ok(want >= 0);
    const choices = r.choices as string[];
    assert.equal(choices[r.gold as number], String(want));
    assert.equal(new Set(choices).size, 4);
  }
});

test('CSV with quotes, JSONL and gzipped IDX files read back what was written', () => {
  const dir = tmp();
  try {
    writeFileSync(join(dir, 'a.csv'), 'x,label,note\r\n1.5,2,"a, ""b"""\n3,0,\n');
    assert.deepEqual(readCsvFile(join(dir, 'a.csv')), [{ x: '1.5', label: '2', note: 'a, "b"' }, { x: '3', label: '0', note: '' }]);
    writeFileSync(join(dir, 'b.jsonl'), '{"a":1}\n\n{"a":2}\n');
    assert.deepEqual(readJsonlFile(join(dir, 'b.jsonl')), [{ a: 1 }, { a: 2 }]);
    writeFileSync(join(dir, 'bad.jsonl'), '{"a":1}\n{"a":\n');
    assert.throws(() => readJsonlFile(join(dir, 'bad.jsonl')), /line 2/);
    // IDX: magic 0 0 08 03, dims 2x2x3 big-endian, then 12 unsigned bytes
    const idx = Buffer.from([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3, ...Array.from({ length: 12 }, (_, i) => i * 20)]);
    writeFileSync(join(dir, 'img.idx.gz'), gzipSync(idx));
    const r = readIdxFile(join(dir, 'img.idx.gz'));
    assert.deepEqual(r.dims, [2, 2, 3]);
    assert.equal(r.data[11], 220);
    writeFileSync(join(dir, 'short.idx'), idx.subarray(0, 20));
    assert.throws(() => readIdxFile(join(dir, 'short.idx')), /need 12/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('classification data from CSV names the row and column of a bad value', () => {
  const dir = tmp();
  try {
    writeFileSync(join(dir, 'd.csv'), 'a,b,label\n1,2,0\n3,x,1\n');
    const m = parseManifest({ version: 1, kind: 'classification', family: 'residual-mlp', split: 'validation', data: { splits: { validation: 'd.csv' } }, metric: { name: 'accuracy', direction: 'maximize' } }, join(dir, 'm.yaml'));
    assert.throws(() => loadClassificationData(m as never, 'validation'), /row 3, column 'b'/);
    writeFileSync(join(dir, 'd.csv'), 'a,b,label\n1,2,0\n3,4,1\n');
    const d = loadClassificationData(m as never, 'validation');
    assert.deepEqual(Array.from(d.x), [1, 2, 3, 4]);
    assert.deepEqual(Array.from(d.y), [0, 1]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
