import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { getMethod } from '../src/methods/index.ts';
import { SourceSet, planRecipe, computeTensor } from '../src/merge/index.ts';
import { recipeToMergekit } from '../src/recipe/index.ts';
import { MultiMethodCodec, PsCodec } from '../src/space/ps.ts';
import { buildTinyZoo } from '../src/zoo/tiny.ts';
import { openCheckpoint } from '../src/checkpoint/index.ts';
import { tempDir } from './helpers/tmp.ts';

const zoo = buildTinyZoo(join(tempDir(), 'zoo'), 5);

function codec(over: Partial<ConstructorParameters<typeof PsCodec>[0]> = {}) {
  return new PsCodec({
    method: getMethod('task_arithmetic'), base: zoo.base, models: zoo.models, modelNames: ['math', 'chat'],
    layers: 4, layersPerGroup: 2, filters: ['mlp'], evolve: { weight: [0, 1] }, fixed: { lambda: 1 }, seed: 0, ...over,
  });
}

test('one gene per (layer group, model, filter slot, evolving parameter), derived from the registry', () => {
  const c = codec();
  assert.equal(c.dimension, 2 * 2 * 2);
  assert.equal(c.geneNames()[0], 'layers 0-1 / math / mlp / weight');
  assert.equal(c.geneNames()[7], 'layers 2-3 / chat / * / weight');
  const ties = codec({ method: getMethod('ties'), evolve: ['weight', 'density'], filters: [] });
  assert.equal(ties.dimension, 2 * 2 * 2);
  const withGlobal = codec({ evolve: { weight: [0, 1], lambda: [0.5, 1.5] }, fixed: {} });
  assert.equal(withGlobal.dimension, 2 * (2 + 2 * 2), 'global parameters get a gene per group and filter slot');
});

test('a decoded recipe merges each layer group with its own weights (checked by hand)', () => {
  const c = codec();
  // math: group 0 mlp 0.5, group 0 other 1; group 1: 0 / 0.25. chat: group 0: 0 / 0.5; group 1: 1 / 1
  const genome = [0.5, 1, 0, 0.5, 0, 0.25, 1, 1];
  const recipe = c.decode(genome);
  assert.equal(recipe.slices!.length, 2);
  const sources = new SourceSet();
  try {
    const plan = planRecipe(recipe, sources);
    const reader = sources.reader();
    const base = openCheckpoint(zoo.base);
    const [math, chat] = zoo.models.map((m) => openCheckpoint(m));
    const expect = (name: string, wm: number, wc: number) => {
      const task = plan.tasks.find((t) => t.name === name)!;
      const got = computeTensor(task, plan.method, reader, 0);
      const b = base.readFloat32(name);
      const m = math!.readFloat32(name);
      const h = chat!.readFloat32(name);
      for (let i = 0; i < b.length; i++) {
        const want = b[i]! + wm * (m[i]! - b[i]!) + wc * (h[i]! - b[i]!);
        assert.ok(Math.abs(got[i]! - want) < 1e-5, `${name}[${i}]: ${got[i]} vs ${want}`);
      }
    };
    expect('model.layers.1.mlp.up_proj.weight', 0.5, 0);
    expect('model.layers.0.self_attn.q_proj.weight', 1, 0.5);
    expect('model.layers.2.mlp.down_proj.weight', 0, 1);
    expect('model.layers.3.self_attn.o_proj.weight', 0.25, 1);
  } finally {
    sources.close();
  }
});

test('the default genome stands for the method defaults, and recipes export to mergekit', () => {
  const c = codec({ evolve: { weight: [0, 2] } });
  assert.ok(c.initialGenome().every((g) => g === 0.5), 'weight has no default in the registry, so genes start at the centre of their bounds');
  const mk = recipeToMergekit(c.decode(c.initialGenome()));
  assert.equal(mk.merge_method, 'task_arithmetic');
  assert.ok(Array.isArray(mk.slices));
});

test('bad spaces are refused naming the parameter', () => {
  assert.throws(() => codec({ evolve: ['nope'] }), /has no parameter 'nope'/);
  assert.throws(() => codec({ method: getMethod('ties'), evolve: { density: [-0.5, 1] } }), /inside its valid range \[0, 1\]/);
  assert.throws(() => codec({ evolve: ['weight'], fixed: { weight: 1 } }), /both evolved and fixed/);
  assert.throws(() => codec().decode([0.5]), /8 genes, got 1/);
});

test('a set of methods to choose among adds one categorical gene before each method\'s genes', () => {
  const c = new MultiMethodCodec({
    methods: [getMethod('task_arithmetic'), getMethod('ties')], base: zoo.base, models: zoo.models,
    layers: 4, layersPerGroup: 4, filters: [], evolve: { weight: [0, 1], density: [0.2, 1] }, fixed: { lambda: 1 }, seed: 0,
  });
  // both declare weight and density per model, as mergekit's generalized task arithmetic does
  assert.equal(c.dimension, 1 + 4 + 4, 'selector, then (weight, density) x 2 models for each method');
  const genes = [0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5];
  assert.equal(c.decode(genes).method, 'task_arithmetic');
  assert.equal(c.decode([0.99, ...genes.slice(1)]).method, 'ties');
  assert.equal(c.decode([0.99, 0, 0, 0, 0, 1, 0, 0, 0]).slices![0]!.sources[1]!.parameters!.weight, 1, 'the ties block follows the task_arithmetic block');
  assert.equal(c.decode(c.initialGenome()).method, 'task_arithmetic');
  assert.throws(() => new MultiMethodCodec({ methods: [getMethod('linear'), getMethod('ties')], base: zoo.base, models: zoo.models, layers: 4, layersPerGroup: 4, filters: [], evolve: ['epsilon'], fixed: {}, seed: 0 }), /belongs to none of the methods/);
});

test('kept tensors come from their owner whatever the genes say, and the rest still follows the genes', () => {
  for (const method of ['ties', 'task_arithmetic', 'linear']) {
    const c = codec({ method: getMethod(method), keep: [{ filter: 'lm_head', owner: 1 }], fixed: method === 'linear' ? {} : { lambda: 0.7 } });
    const genome = new Array(c.dimension).fill(0.3);
    const recipe = c.decode(genome);
    const sources = new SourceSet();
    try {
      const plan = planRecipe(recipe, sources);
      const reader = sources.reader();
      const chat = openCheckpoint(zoo.models[1]!);
      const head = computeTensor(plan.tasks.find((t) => t.name === 'lm_head.weight')!, plan.method, reader, 0);
      const want = chat.readFloat32('lm_head.weight');
      for (let i = 0; i < want.length; i++) {
        const tol = method === 'task_arithmetic' ? 1e-6 : 0;
        assert.ok(Math.abs(head[i]! - want[i]!) <= tol, `${method}: lm_head[${i}] ${head[i]} vs ${want[i]}`);
      }
      const other = computeTensor(plan.tasks.find((t) => t.name === 'model.layers.0.mlp.up_proj.weight')!, plan.method, reader, 0);
      assert.notDeepEqual(Array.from(other.slice(0, 8)), Array.from(chat.readFloat32('model.layers.0.mlp.up_proj.weight').slice(0, 8)));
    } finally {
      sources.close();
    }
  }
  assert.throws(() => codec({ method: getMethod('breadcrumbs'), keep: [{ filter: 'lm_head', owner: 0 }] }), /cannot express/);
});

test('a fixed recipe becomes the genome of the space that expresses it, lambda folded into weights where the merge allows', async () => {
  const { baselineGenomes } = await import('../src/space/baselines.ts');
  const layout = { base: 'b', models: ['m1', 'm2'], layers: 4, layersPerGroup: 2, filters: ['attn'], seed: 0 };
  // task arithmetic without normalisation: base + lambda sum w tau, so lambda 0.3 with w = 1 is w = 0.3 at the space's lambda 1
  const ta = new PsCodec({ ...layout, method: getMethod('task_arithmetic'), evolve: { weight: [0, 1] }, fixed: { lambda: 1 } });
  const g = ta.encode({ global: { lambda: 0.3 }, perModel: { weight: 1 } });
  assert.ok(Array.isArray(g));
  assert.equal(g.length, ta.dimension);
  for (const v of g) assert.ok(Math.abs(v - 0.3) < 1e-12);
  const slice = ta.decode(g).slices![1]!;
  assert.deepEqual(slice.sources[1]!.parameters!.weight, [{ filter: 'attn', value: 0.3 }, { value: 0.3 }]);
  assert.match(String(ta.encode({ global: { lambda: 2 }, perModel: { weight: 1 } })), /weight = 2 lies outside its bounds \[0, 1\]/);
  // TIES normalises: lambda cannot fold; density evolves in [0.1, 1]: 0.5 is gene (0.5 - 0.1) / 0.9
  const ties = new PsCodec({ ...layout, method: getMethod('ties'), evolve: { weight: [0, 2], density: [0.1, 1] }, fixed: {} });
  const t = ties.encode({ global: {}, perModel: { weight: 1, density: 0.5 } }) as number[];
  const names = ties.geneNames();
  names.forEach((n, i) => assert.ok(Math.abs(t[i]! - (n.endsWith('weight') ? 0.5 : 0.4 / 0.9)) < 1e-12, n));
  assert.match(String(ties.encode({ global: { lambda: 0.5 }, perModel: { weight: 1, density: 0.5 } })), /lambda = 0.5, but the space has lambda = 1/);
  // the customary recipes each space can express
  assert.deepEqual(baselineGenomes(ta).map((b) => b.label), ['task_arithmetic lambda=0.3', 'task_arithmetic lambda=0.5', 'task_arithmetic lambda=1']);
  assert.deepEqual(baselineGenomes(ties).map((b) => b.label), ['ties density=0.5']);
  const multi = new MultiMethodCodec({ ...layout, methods: [getMethod('task_arithmetic'), getMethod('ties')], evolve: { weight: [0, 1], density: [0.1, 1] }, fixed: {} });
  const both = baselineGenomes(multi);
  assert.deepEqual(both.map((b) => b.label), ['task_arithmetic lambda=0.3', 'task_arithmetic lambda=0.5', 'task_arithmetic lambda=1', 'ties density=0.5']);
  assert.equal(multi.decode(both[3]!.genome).method, 'ties');
  assert.equal(multi.decode(both[0]!.genome).method, 'task_arithmetic');
});

test('layer anchors: few genes per (model, filter, parameter), each layer group interpolated between its neighbouring anchors (checked by hand)', () => {
  // 4 layers, one per group, 2 anchors: groups sit at t = 0, 1/3, 2/3, 1 of the anchor list
  const c = codec({ layersPerGroup: 1, filters: [], layerAnchors: 2 });
  assert.equal(c.dimension, 2 * 2, '2 anchors x 2 models');
  assert.deepEqual(c.geneNames(), ['anchor 1/2 (layer group 0 of 0-3) / math / * / weight', 'anchor 1/2 (layer group 0 of 0-3) / chat / * / weight', 'anchor 2/2 (layer group 3 of 0-3) / math / * / weight', 'anchor 2/2 (layer group 3 of 0-3) / chat / * / weight']);
  // math: 0 at the first anchor, 0.9 at the last: 0, 0.3, 0.6, 0.9 over the groups; chat 1 -> 0.4: 1, 0.8, 0.6, 0.4
  const recipe = c.decode([0, 1, 0.9, 0.4]);
  const weights = recipe.slices!.map((s) => s.sources.slice(1).map((x) => x.parameters!.weight));
  assert.deepEqual(weights, [[0, 1], [0.3, 0.8], [0.6, 0.6], [0.9, 0.4]]);
  // 32 layers, TIES weight and density per model: 192 genes a layer each, 24 at 4 anchors
  const deep = (over: Partial<ConstructorParameters<typeof PsCodec>[0]>) => new PsCodec({ method: getMethod('ties'), base: 'b', models: ['m1', 'm2', 'm3'], layers: 32, layersPerGroup: 1, filters: [], evolve: ['weight', 'density'], fixed: {}, seed: 0, ...over });
  assert.equal(deep({}).dimension, 32 * 3 * 2);
  const anchored = deep({ layerAnchors: 4 });
  assert.equal(anchored.dimension, 4 * 3 * 2);
  // a uniform recipe stays uniform, and fixed recipes still encode
  const g = anchored.encode({ global: {}, perModel: { weight: 1, density: 0.5 } });
  assert.ok(Array.isArray(g));
  const last = anchored.decode(g).slices![31]!.sources[1]!.parameters!;
  assert.equal(last.density, 0.5);
  assert.throws(() => deep({ layerAnchors: 33 }), /layer_anchors is 33, but it must be an integer from 2 to the number of layer groups \(32 here/);
  assert.throws(() => deep({ layerAnchors: 1 }), /layer_anchors is 1/);
});

test('tensor kinds in filters become the substrings the sources use, and a filter matching no tensor is refused', async () => {
  const { resolveFilters } = await import('../src/space/index.ts');
  const llama = { tensors: Object.fromEntries(['model.layers.0.self_attn.q_proj.weight', 'model.layers.0.mlp.up_proj.weight', 'model.layers.0.input_layernorm.weight', 'model.norm.weight'].map((n) => [n, {}])) };
  const mlp = { tensors: Object.fromEntries(['input.weight', 'blocks.0.fc1.weight', 'blocks.0.fc2.bias', 'blocks.0.norm.weight', 'heads.digits.weight'].map((n) => [n, {}])) };
  assert.deepEqual(resolveFilters(['attention', 'mlp', 'norm'], llama, 'base'), ['self_attn', 'mlp', 'norm']);
  assert.deepEqual(resolveFilters(['mlp', 'norm', 'fc2'], mlp, 'base'), ['.fc', 'norm', 'fc2']);
  assert.throws(() => resolveFilters(['attention'], mlp, '/zoo/base'), /no tensor of \/zoo\/base is of kind 'attention'/);
  assert.throws(() => resolveFilters(['q_projection'], llama, '/m'), /'q_projection' matches no tensor of \/m, so its genes would change nothing/);
  assert.throws(() => resolveFilters(['mlp', 'mlp'], llama, '/m'), /'mlp' is listed twice/);
});
