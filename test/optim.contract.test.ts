/**
 * One contract suite, run against every optimizer: seeded reproducibility, identical proposals
 * after a JSON round trip of the state (in this process and in another), bounds, failures never
 * best, lineage fields, and rejection of outcomes that were never asked.
 *
 * The optimizers covered come from the registry's one list (src/optim/registry.ts): each runs the
 * suite with its default options, and with the hand-written cases below that name its id. A newly
 * registered optimizer is therefore covered without editing this file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { getOptimizer, listOptimizers, optimizerIds, type BaseState, type Optimizer, type Outcome, type Proposal } from '../src/optim/index.ts';

interface Case {
  name: string;
  id: string;
  dim: number;
  options: Record<string, unknown>;
  /** Tell outcomes in reverse order and in two partial batches. */
  shuffled?: boolean;
}

/** Hand-written cases: options that reach the variants (restarts, TPA, gene types, initial points). */
const handWritten: Case[] = [
  { name: 'cmaes', id: 'cmaes', dim: 4, options: { bounds: [0, 1], sigma0: 0.6 }, shuffled: true },
  { name: 'cmaes with BIPOP restarts', id: 'cmaes', dim: 3, options: { bounds: [0, 1], restarts: 'bipop', tolfun: 1e-2, tolflatfitness: 0 } },
  { name: 'sep-cmaes', id: 'sep-cmaes', dim: 6, options: { bounds: [[0, 1], [0, 1], [0, 1], [-2, 2], [-2, 2], [0, 10]], restarts: 'ipop', tolfun: 1e-2 } },
  { name: 'generational ga', id: 'ga', dim: 5, options: { popsize: 8 } },
  { name: 'steady-state ga', id: 'ga', dim: 5, options: { popsize: 8, mode: 'steady-state', crossover: 'uniform', mutation: 'gaussian' }, shuffled: true },
  { name: 'ga with integer and binary genes', id: 'ga', dim: 4, options: { popsize: 6, bounds: [[0, 10], [0, 1], [0, 1], [-3, 3]], geneTypes: ['integer', 'binary', 'real', 'integer'] } },
  { name: 'nsga2', id: 'nsga2', dim: 4, options: { popsize: 8 }, shuffled: true },
  { name: 'random', id: 'random', dim: 3, options: { batch: 5 }, shuffled: true },
  // warm start: more initial points than one generation holds, some outside the box
  { name: 'cmaes with initial points', id: 'cmaes', dim: 4, options: { bounds: [0, 1], restarts: 'ipop', tolfun: 1e-2, initial: pts(4, 11) }, shuffled: true },
  { name: 'sep-cmaes (TPA) with initial points', id: 'sep-cmaes', dim: 5, options: { stepSize: 'tpa', initial: pts(5, 3) } },
  { name: 'ga with initial points', id: 'ga', dim: 5, options: { popsize: 8, initial: pts(5, 3) } },
  { name: 'steady-state ga with initial points', id: 'ga', dim: 5, options: { popsize: 8, mode: 'steady-state', initial: pts(5, 10) }, shuffled: true },
  { name: 'nsga2 with initial points', id: 'nsga2', dim: 4, options: { popsize: 8, initial: pts(4, 2) } },
  { name: 'random with initial points', id: 'random', dim: 3, options: { batch: 5, initial: pts(3, 7) }, shuffled: true },
];

/** Every registered optimizer, in registry order: its default options first, then its hand-written cases. */
const cases: Case[] = listOptimizers().flatMap((o) => [
  { name: `${o.id} with its default options`, id: o.id, dim: 3, options: {} },
  ...handWritten.filter((c) => c.id === o.id),
]);

/** Whether a proposal's genome is one of the case's initial points (clamped into the box). */
function isInitial(c: Case, p: Proposal): boolean {
  const init = (c.options.initial ?? []) as number[][];
  const b = boundsOf(c);
  return init.some((q) => q.every((v, i) => Math.min(b[i]![1], Math.max(b[i]![0], v)) === p.genome[i]));
}

/** `count` fixed points of length `dim`; every third has values outside [0, 1] (to be clamped). */
function pts(dim: number, count: number): number[][] {
  return Array.from({ length: count }, (_, k) => Array.from({ length: dim }, (_, i) => (k % 3 === 2 ? (i % 2 ? 1.7 : -0.4) : ((k * 7 + i * 3) % 10) / 10)));
}

function boundsOf(c: Case): Array<[number, number]> {
  const b = (c.options.bounds ?? [0, 1]) as [number, number] | Array<[number, number]>;
  return typeof b[0] === 'number' ? Array.from({ length: c.dim }, () => b as [number, number]) : (b as Array<[number, number]>);
}

/** A deterministic objective with failures: every 7th proposal fails (null), every 11th is NaN. */
function evaluate(p: Proposal, k: number): Outcome {
  const f = -p.genome.reduce((a, x, i) => a + (x - 0.3 - 0.05 * i) ** 2, 0);
  if (k % 7 === 3) return { id: p.id, fitness: null };
  if (k % 11 === 5) return { id: p.id, fitness: Number.NaN };
  return { id: p.id, fitness: f, objectives: [f, -p.genome.reduce((a, x) => a + (x - 0.8) ** 2, 0)] };
}

interface Trace {
  proposals: Proposal[];
  outcomes: Outcome[];
  states: string[];
}

/** Runs `steps` ask/tell rounds; `roundTrip` passes the state through JSON at every step. */
function drive(opt: Optimizer, c: Case, seed: string, steps: number, roundTrip: boolean): Trace {
  const rt = <T>(s: T): T => (roundTrip ? (JSON.parse(JSON.stringify(s)) as T) : s);
  let state: BaseState = rt(opt.init(c.dim, c.options, seed));
  const trace: Trace = { proposals: [], outcomes: [], states: [] };
  for (let step = 0; step < steps && !opt.isDone(state); step++) {
    const asked = opt.ask(state);
    state = rt(asked.state);
    const outs = asked.proposals.map((p) => evaluate(p, trace.proposals.length + asked.proposals.indexOf(p)));
    trace.proposals.push(...asked.proposals);
    trace.outcomes.push(...outs);
    if (c.shuffled) {
      const rev = outs.slice().reverse();
      const half = Math.ceil(rev.length / 2);
      state = rt(opt.tell(state, rev.slice(0, half)));
      trace.states.push(JSON.stringify(state));
      state = rt(opt.tell(state, rev.slice(half)));
    } else {
      state = rt(opt.tell(state, outs));
    }
    trace.states.push(JSON.stringify(state));
  }
  return trace;
}

for (const c of cases) {
  const opt = getOptimizer(c.id);

  test(`${c.name}: the same seed gives the same proposals, another seed different ones`, () => {
    const a = drive(opt, c, 'seed-1', 12, false);
    const b = drive(opt, c, 'seed-1', 12, false);
    const other = drive(opt, c, 'seed-2', 2, false);
    assert.ok(a.proposals.length > 0);
    assert.deepEqual(b.proposals, a.proposals);
    // the first own sample (initial points are the same for every seed)
    const own = (t: Trace) => t.proposals.find((p) => p.operator !== 'init' || !isInitial(c, p))!;
    assert.notDeepEqual(own(other).genome, own(a).genome);
  });

  test(`${c.name}: a JSON round trip of the state at every step changes nothing`, () => {
    const plain = drive(opt, c, 'rt', 12, false);
    const tripped = drive(opt, c, 'rt', 12, true);
    assert.deepEqual(tripped.proposals, plain.proposals);
    assert.deepEqual(tripped.states, plain.states);
  });

  test(`${c.name}: every proposal lies inside the bounds and has the gene types asked for`, () => {
    const b = boundsOf(c);
    const types = c.options.geneTypes as string[] | undefined;
    const t = drive(opt, c, 'bounds', 30, false);
    for (const p of t.proposals) {
      assert.equal(p.genome.length, c.dim);
      p.genome.forEach((x, i) => {
        assert.ok(x >= b[i]![0] && x <= b[i]![1], `${p.id}[${i}] = ${x} outside [${b[i]}]`);
        if (types?.[i] === 'integer') assert.ok(Number.isInteger(x), `${p.id}[${i}] = ${x} is not an integer`);
        if (types?.[i] === 'binary') assert.ok(x === 0 || x === 1, `${p.id}[${i}] = ${x} is not binary`);
      });
    }
  });

  test(`${c.name}: failed and NaN outcomes never become the best`, () => {
    let state = opt.init(c.dim, c.options, 'fail');
    let bestTold = -Infinity;
    let k = 0;
    for (let step = 0; step < 10 && !opt.isDone(state); step++) {
      const asked = opt.ask(state);
      // the failures are the points that would otherwise be the best ones
      const outs = asked.proposals.map((p) => {
        k++;
        if (k % 3 === 0) return { id: p.id, fitness: null };
        if (k % 3 === 1) return { id: p.id, fitness: Number.NaN };
        const f = -(k % 5) - 1;
        bestTold = Math.max(bestTold, f);
        return { id: p.id, fitness: f };
      });
      state = opt.tell(asked.state, outs);
      if (state.best) {
        assert.ok(Number.isFinite(state.best.fitness));
        assert.equal(state.best.fitness, bestTold);
      }
    }
    assert.ok(state.best !== null);
  });

  test(`${c.name}: a run told only failures for 40 steps never reports done (no budget is set)`, () => {
    // failures are stored as equal values inside some optimizers: they must never read as a
    // plateau, a converged population or a stagnating one
    let state = opt.init(c.dim, c.options, 'all-failed');
    for (let step = 0; step < 40; step++) {
      const asked = opt.ask(state);
      assert.ok(asked.proposals.length > 0 || step > 0, 'asks something');
      state = opt.tell(asked.state, asked.proposals.map((p, k) => ({ id: p.id, fitness: k % 2 ? null : Number.NaN })));
      assert.equal(opt.isDone(state), null, `done after step ${step}`);
    }
    assert.equal(state.best, null);
  });

  test(`${c.name}: proposals carry unique ids, known parents and an operator`, () => {
    const t = drive(opt, c, 'lineage', 15, false);
    const seen = new Set<string>();
    for (const p of t.proposals) {
      assert.equal(typeof p.id, 'string');
      assert.ok(!seen.has(p.id), `duplicate id ${p.id}`);
      assert.ok(Array.isArray(p.parentIds));
      for (const q of p.parentIds) assert.ok(seen.has(q), `${p.id} names parent ${q} that was never proposed before it`);
      assert.ok(['sample', 'crossover', 'mutation', 'elite', 'restart', 'init'].includes(p.operator), p.operator);
      seen.add(p.id);
    }
    assert.ok(t.proposals.some((p) => p.parentIds.length > 0) || c.id === 'random', 'some proposal has parents');
  });

  test(`${c.name}: an outcome for an id that was never asked is refused with E_OPTIM_OUTCOME`, () => {
    const asked = opt.ask(opt.init(c.dim, c.options, 'x'));
    assert.throws(() => opt.tell(asked.state, [{ id: 'nope', fitness: 1 }]), (e: Error & { code?: string }) => e.code === 'E_OPTIM_OUTCOME');
  });
}

test('every optimizer continues identically in another process from a JSON state', () => {
  const inputs = cases.map((c) => {
    const opt = getOptimizer(c.id);
    const t = drive(opt, c, 'xproc', 4, false);
    const state = JSON.parse(t.states[t.states.length - 1]!) as BaseState;
    return { id: c.id, state, expected: opt.ask(state).proposals };
  });
  const script = `
    import { getOptimizer } from './src/optim/index.ts';
    let s = ''; process.stdin.on('data', (d) => (s += d)).on('end', () => {
      const inputs = JSON.parse(s);
      process.stdout.write(JSON.stringify(inputs.map((i) => getOptimizer(i.id).ask(i.state).proposals)));
    });`;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    input: JSON.stringify(inputs.map(({ id, state }) => ({ id, state }))),
    cwd: new URL('..', import.meta.url),
    encoding: 'utf8',
  });
  const got = JSON.parse(out) as Proposal[][];
  inputs.forEach((inp, i) => {
    assert.ok(inp.expected.length > 0 || inp.id === 'nsga2' || inp.id.includes('cma'), `case ${i} asked nothing`);
    assert.deepEqual(got[i], inp.expected, `case ${cases[i]!.name}`);
  });
});

test('every hand-written contract case names a registered optimizer', () => {
  const unknown = handWritten.filter((c) => !optimizerIds.includes(c.id)).map((c) => `${c.name} (${c.id})`);
  assert.deepEqual(unknown, [], `cases for optimizers that are not in src/optim/registry.ts: ${unknown.join(', ')}`);
});

test('an unknown optimizer id is refused with the list of known ones', () => {
  assert.throws(() => getOptimizer('pso'), (e: Error & { code?: string }) => e.code === 'E_OPTIM_UNKNOWN' && /cmaes/.test(e.message));
});

test('invalid options are refused with E_OPTIM_OPTIONS naming the field', () => {
  assert.throws(() => getOptimizer('cmaes').init(3, { popsize: 1 }, 1), (e: Error & { code?: string }) => e.code === 'E_OPTIM_OPTIONS' && /popsize/.test(e.message));
  assert.throws(() => getOptimizer('ga').init(2, { bounds: [[0, 1]] }, 1), (e: Error & { code?: string }) => e.code === 'E_OPTIM_OPTIONS' && /bounds/.test(e.message));
  assert.throws(() => getOptimizer('cmaes').init(2, { bounds: [0, 1], x0: [0.5, 2] }, 1), (e: Error & { code?: string }) => e.code === 'E_OPTIM_OPTIONS' && /x0\[1\]/.test(e.message));
});

test('a misspelt option is refused with the list of the optimizer\'s options, not silently ignored', () => {
  for (const id of optimizerIds) {
    assert.throws(
      () => getOptimizer(id).init(3, { sigma: 0.3 }, 1),
      (e: Error & { code?: string }) => e.code === 'E_OPTIM_OPTIONS' && /"sigma"/.test(e.message) && /the options of/.test(e.message),
      id,
    );
  }
  assert.throws(() => getOptimizer('cmaes').init(3, { stepsize: 'tpa' }, 1), /stepSize/);
});

test('a search-space optimizer block is validated by the schema of the optimizer it names', async () => {
  const { optimizerSpecSchema } = await import('../src/optim/index.ts');
  const ok = optimizerSpecSchema.parse({ id: 'ga', options: { popsize: 12, mode: 'steady-state' } });
  assert.equal(ok.id, 'ga');
  assert.equal((ok.options as { tournamentSize: number }).tournamentSize, 2, 'defaults are filled in');
  assert.equal(optimizerSpecSchema.parse({ id: 'cmaes' }).id, 'cmaes');
  assert.equal(optimizerSpecSchema.safeParse({ id: 'ga', options: { popsize: 1 } }).success, false);
  assert.equal(optimizerSpecSchema.safeParse({ id: 'pso' }).success, false);
});

test('the optimizer block\'s schema has one branch per registered optimizer, each filling in that optimizer\'s default options', async () => {
  const { optimizerSpecSchema } = await import('../src/optim/index.ts');
  for (const o of listOptimizers()) {
    const spec = optimizerSpecSchema.parse({ id: o.id });
    assert.equal(spec.id, o.id);
    assert.deepEqual(spec.options, o.optionsSchema.parse(o.defaultOptions), o.id);
  }
  assert.equal((optimizerSpecSchema.parse({ id: 'sep-cmaes' }).options as { separable: boolean }).separable, true);
  assert.equal((optimizerSpecSchema.parse({ id: 'cmaes' }).options as { separable: boolean }).separable, false);
});

test('initial points are asked first, verbatim (clamped into the box), with operator init', () => {
  const init = pts(3, 3);
  const clamp = (p: number[]) => p.map((v) => Math.min(1, Math.max(0, v)));
  for (const id of optimizerIds) {
    const opt = getOptimizer(id);
    const asked = opt.ask(opt.init(3, { initial: init }, 's'));
    for (let k = 0; k < init.length; k++) {
      assert.deepEqual(asked.proposals[k]!.genome, clamp(init[k]!), `${id} proposal ${k}`);
      assert.equal(asked.proposals[k]!.operator, 'init', `${id} proposal ${k}`);
    }
    assert.ok(asked.proposals.length > init.length, `${id} also proposes its own samples`);
    // the same seed without initial points: the optimizer's own samples, none equal to them
    const plain = opt.ask(opt.init(3, {}, 's'));
    assert.notDeepEqual(plain.proposals[0]!.genome, clamp(init[0]!));
  }
});

test('an initial point of the wrong length is refused with E_OPTIM_OPTIONS naming its index', () => {
  for (const id of optimizerIds) {
    assert.throws(
      () => getOptimizer(id).init(3, { initial: [[0.1, 0.2, 0.3], [0.5, 0.5]] }, 1),
      (e: Error & { code?: string }) => e.code === 'E_OPTIM_OPTIONS' && /initial\[1\]/.test(e.message),
      id,
    );
  }
});

test('cmaes: more initial points than lambda spill over into the next generations, and a restart does not inject them again', () => {
  const opt = getOptimizer('cmaes');
  const init = pts(2, 13); // lambda = 4 + floor(3 ln 2) = 6
  let state = opt.init(2, { initial: init, restarts: 'ipop', maxiter: 4 }, 'spill');
  const seen: Proposal[][] = [];
  for (let g = 0; g < 8 && !opt.isDone(state); g++) {
    const asked = opt.ask(state);
    seen.push(asked.proposals);
    state = opt.tell(asked.state, asked.proposals.map((p) => ({ id: p.id, fitness: -p.genome.reduce((a, x) => a + x * x, 0) })));
  }
  const clamp = (p: number[]) => p.map((v) => Math.min(1, Math.max(0, v)));
  const firstInit = seen.slice(0, 3).flat().filter((p) => p.operator === 'init').map((p) => p.genome);
  assert.deepEqual(firstInit, init.map(clamp));
  assert.equal(seen[0]!.length, 6);
  assert.equal(seen[2]!.filter((p) => p.operator === 'init').length, 1);
  // generation 4 is the first of the restarted run (maxiter 4): restart samples only
  assert.ok(seen[4]!.every((p) => p.operator === 'restart'), seen[4]!.map((p) => p.operator).join());
});
