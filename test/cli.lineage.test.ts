import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lineageChain, modelCard, reportData } from '../src/report/index.ts';
import { tempDir } from './helpers/tmp.ts';
import { cmaesRun } from './helpers/cmaes-run.ts';

const bin = new URL('../src/cli/bin.mjs', import.meta.url).pathname;
const dir = tempDir();
// 70 generations of 8, each child listing the 5 fittest of the generation before (as CMA-ES does)
const cma = cmaesRun(dir, { generations: 70, lambda: 8, mu: 5 });
cma.store.close();
const { db, ids } = cma;
const target = ids[69]![3]!;
// the fittest parent of every candidate is the first of the generation before
const expectedChain = [target, ...Array.from({ length: 69 }, (_, i) => ids[68 - i]![0]!)];
// generations 0..68 each give their 5 parents
const ANCESTORS = 69 * 5;

function lineage(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, 'lineage', 'cma', ...args, '--db', db], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trimEnd().split('\n');
}

const rowsOf = (lines: string[]) => lines.filter((l) => /^\s*\d/.test(l));

test('lineage prints the chain of fittest parents, one line per generation with operator and fitness, without a growing indent', () => {
  const lines = lineage(String(target));
  const rows = rowsOf(lines);
  assert.equal(rows.length, 70, 'one line per generation, past the 64 steps the old graph walk stopped at');
  assert.deepEqual(rows.map((r) => Number(r.trim().split(/\s+/)[2])), expectedChain);
  assert.equal(new Set(rows.map((r) => /^\s*/.exec(r)![0].length)).size, 1, 'every row starts in the same column');
  assert.ok(lines.every((l) => l.length <= 100), 'fits 100 columns');
  const [first, last] = [rows[0]!.trim().split(/\s+/), rows.at(-1)!.trim().split(/\s+/)];
  // candidate 3 of generation 69 scores 69 + 1/5; it has 5 parents
  assert.deepEqual(first, ['0', '69', String(target), 'sample', '69.2000', '5']);
  assert.deepEqual(last, ['0', '0', String(ids[0]![0]), 'init', '0.5000', '-']);
  assert.match(lines.join('\n'), new RegExp(`${ANCESTORS} ancestors in all`));
  assert.match(lines.at(-1)!, new RegExp(`evomerge lineage cma ${target} --full`));
});

test('lineage --full lists every ancestor once at its nearest depth, nearest first, and says nothing was cut', () => {
  const lines = lineage(String(target), '--full');
  const rows = rowsOf(lines).map((r) => r.trim().split(/\s+/));
  assert.equal(rows.length, 1 + ANCESTORS);
  assert.equal(new Set(rows.map((r) => r[3])).size, rows.length, 'each candidate once');
  const depthOf = new Map(rows.map((r) => [Number(r[3]), Number(r[0])]));
  for (let g = 0; g < 69; g++) for (let k = 0; k < 5; k++) assert.equal(depthOf.get(ids[g]![k]!), 69 - g);
  assert.equal(rows[0]!.slice(6).join(' '), ids[68]!.slice(0, 5).join(', '), "the candidate's parents");
  assert.doesNotMatch(lines.join('\n'), /cut at/);
});

test('lineage --depth N stops the graph there and says how much it left out and how to see it', () => {
  const lines = lineage(String(target), '--depth', '10');
  const rows = rowsOf(lines);
  assert.equal(rows.length, 1 + 10 * 5);
  const text = lines.join('\n');
  assert.match(text, new RegExp(`cut at depth 10 \\(--depth 10\\): ${ANCESTORS - 50} of the ${ANCESTORS} ancestors are not listed`));
  assert.match(text, /5 candidates at depth 10 have parents not listed; a larger --depth lists more/);
});

test('lineage --json keeps the whole graph with each entry\'s parents, and gives the chain and the cut', () => {
  const out = JSON.parse(lineage(String(target), '--json').join('\n'));
  assert.equal(out.run, 'cma');
  assert.equal(out.candidate, target);
  assert.equal(out.maxDepth, null);
  assert.equal(out.cut, null);
  assert.deepEqual(out.chain, expectedChain);
  assert.equal(out.lineage.length, 1 + ANCESTORS);
  assert.deepEqual(out.lineage[0], { id: target, depth: 0, stage: 0, generation: 69, operator: 'sample', fitness: 69.2, state: 'done', parents: ids[68]!.slice(0, 5).map((id) => ({ id, operator: 'sample' })) });
  const cut = JSON.parse(lineage(String(target), '--json', '--depth', '10').join('\n'));
  assert.equal(cut.maxDepth, 10);
  assert.deepEqual(cut.cut, { depth: 10, frontier: ids[59]!.slice(0, 5) });
});

test('lineage --full shortens a long parent list with +N more and says so', () => {
  const wide = cmaesRun(dir, { name: 'wide', generations: 3, lambda: 10, mu: 8 });
  wide.store.close();
  const r = spawnSync(process.execPath, [bin, 'lineage', 'wide', String(wide.ids[2]![0]), '--full', '--db', wide.db], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`${wide.ids[1]!.slice(0, 6).join(', ')} \\+2 more`));
  assert.match(r.stdout, /parent lists longer than 6 are shortened \(\+N more\) on 9 lines; --json lists every parent/);
});

test('the model card shows at most 50 steps of the chain and says how many it left out and where the chain ends', () => {
  const { store, run } = cmaesRun(dir, { name: 'card', generations: 70 });
  try {
    const id = store.best(run.id, 1)[0]!.id;
    const { chain, ancestors, cut } = lineageChain(store, id);
    assert.equal(chain.length, 50);
    assert.equal(ancestors, ANCESTORS);
    assert.equal(cut!.steps, 20);
    assert.equal(cut!.oldest.generation, 0);
    const card = modelCard({ store, run, candidate: store.candidate(id)!, recipe: null, dfs: null, stacked: null, scores: { validation: [], test: null }, skipped: [] });
    assert.match(card, new RegExp(`${ANCESTORS} ancestor\\(s\\) in the run\\. The chain of fittest parents \\(from each candidate to its fittest parent\\), its first 50 steps:`));
    assert.match(card, new RegExp(`The chain goes on for 20 more step\\(s\\), back to candidate ${cut!.oldest.id} \\(stage 0, generation 0\\); this card shows 50\\. \`evomerge lineage card ${id}\` prints it whole\\.`));
    // the report's chart takes the whole chain and every other ancestor
    const d = reportData(store, run);
    assert.equal(d.lineage!.chain.length, 70);
    assert.equal(d.lineage!.chain.length - 1 + d.lineage!.ancestors.length, ANCESTORS);
  } finally {
    store.close();
  }
});

test('a short chain on the card says nothing about a cut', () => {
  const { store, run } = cmaesRun(dir, { name: 'short', generations: 4 });
  try {
    const id = store.best(run.id, 1)[0]!.id;
    assert.equal(lineageChain(store, id).cut, null);
    const card = modelCard({ store, run, candidate: store.candidate(id)!, recipe: null, dfs: null, stacked: null, scores: { validation: [], test: null }, skipped: [] });
    assert.match(card, /15 ancestor\(s\) in the run\. The chain of fittest parents \(from each candidate to its fittest parent\):/);
    assert.doesNotMatch(card, /goes on/);
  } finally {
    store.close();
  }
});
