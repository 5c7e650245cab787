/**
 * The layering of src/ as src/README.md's table states it: a module imports only modules listed
 * above it (errors.ts and format.ts import nothing and may be imported by all; index.ts and cli/
 * sit on top), and no file imports itself back through others. Read from the sources' import
 * statements, type-only imports included for the layering.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src');

/** Modules in table order, lowest first, from src/README.md's "Layers" table. */
function layerOrder(): string[] {
  const text = readFileSync(join(SRC, 'README.md'), 'utf8');
  const section = text.slice(text.indexOf('## Layers'), text.indexOf('\n## ', text.indexOf('## Layers') + 1));
  return [...section.matchAll(/^\| `([a-z-]+)\/` \|/gm)].map((m) => m[1]!);
}

function sourceFiles(dir = SRC, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sourceFiles(p, out);
    else if (/\.(ts|mjs)$/.test(name)) out.push(p);
  }
  return out;
}

interface Edge { from: string; to: string; typeOnly: boolean }

function imports(file: string): Edge[] {
  const text = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: Edge[] = [];
  for (const m of text.matchAll(/^\s*(import|export)(\s+type)?\s[^;]*?from\s*['"](\.[^'"]+)['"]/gm)) out.push({ from: file, to: resolve(dirname(file), m[3]!), typeOnly: !!m[2] });
  // side-effect imports and dynamic imports
  for (const m of text.matchAll(/^\s*import\s*['"](\.[^'"]+)['"]/gm)) out.push({ from: file, to: resolve(dirname(file), m[1]!), typeOnly: false });
  for (const m of text.matchAll(/import\(\s*['"](\.[^'"]+)['"]\s*\)/g)) out.push({ from: file, to: resolve(dirname(file), m[1]!), typeOnly: false });
  return out;
}

const moduleOf = (file: string) => relative(SRC, file).split('/')[0]!;

test('src/README.md lists every module of src/ in its layer table, once', () => {
  const order = layerOrder();
  const dirs = readdirSync(SRC).filter((n) => statSync(join(SRC, n)).isDirectory()).sort();
  assert.deepEqual([...order].sort(), dirs);
  assert.equal(new Set(order).size, order.length);
});

/** Imports of a module listed below the importer, in words (empty: none). */
function upwardImports(edges: readonly Edge[], order: readonly string[]): string[] {
  const rank = (m: string) => order.indexOf(m);
  const bad: string[] = [];
  for (const e of edges) {
    const from = moduleOf(e.from);
    const to = moduleOf(e.to);
    if (to === from || to === 'errors.ts' || to === 'format.ts' || from === 'index.ts' || from === 'cli') continue;
    if (from === 'errors.ts' || from === 'format.ts') bad.push(`${relative(SRC, e.from)} imports ${relative(SRC, e.to)}, but ${from} imports nothing`);
    else if (rank(to) < 0 || rank(from) < 0) bad.push(`${relative(SRC, e.from)} -> ${relative(SRC, e.to)}: a module missing from the table`);
    else if (rank(to) > rank(from)) bad.push(`${relative(SRC, e.from)} imports ${relative(SRC, e.to)}: ${to} is listed below ${from}`);
  }
  return bad;
}

test('no module imports a module listed below it in src/README.md', () => {
  assert.deepEqual(upwardImports(sourceFiles().flatMap(imports), layerOrder()), []);
});

test('no source file imports itself back through others (type-only imports aside)', () => {
  const files = sourceFiles();
  const graph = new Map(files.map((f) => [f, imports(f).filter((e) => !e.typeOnly).map((e) => e.to).filter((t) => files.includes(t))]));
  const state = new Map<string, 1 | 2>();
  const cycles: string[] = [];
  const visit = (f: string, stack: string[]) => {
    state.set(f, 1);
    stack.push(f);
    for (const t of graph.get(f)!) {
      if (state.get(t) === 1) cycles.push(stack.slice(stack.indexOf(t)).concat(t).map((x) => relative(SRC, x)).join(' -> '));
      else if (!state.get(t)) visit(t, stack);
    }
    stack.pop();
    state.set(f, 2);
  };
  for (const f of files) if (!state.get(f)) visit(f, []);
  assert.deepEqual(cycles, []);
});

test('the layer check names an upward import and a module missing from the table', () => {
  const edges: Edge[] = [
    { from: join(SRC, 'tensor', 'x.ts'), to: join(SRC, 'search', 'engine.ts'), typeOnly: true },
    { from: join(SRC, 'search', 'engine.ts'), to: join(SRC, 'tensor', 'rng.ts'), typeOnly: false },
    { from: join(SRC, 'nowhere', 'y.ts'), to: join(SRC, 'tensor', 'rng.ts'), typeOnly: false },
  ];
  assert.deepEqual(upwardImports(edges, layerOrder()), [
    'tensor/x.ts imports search/engine.ts: search is listed below tensor',
    'nowhere/y.ts -> tensor/rng.ts: a module missing from the table',
  ]);
});
