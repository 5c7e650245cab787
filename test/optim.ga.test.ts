import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  crowdingDistance, dominates, ga, nonDominatedSort, nsga2, polynomialMutation, randomSearch, sbxPair, cmaes,
  type BaseState, type GaState, type Nsga2State, type Optimizer,
} from '../src/optim/index.ts';

const close = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

test('bounded SBX gives the hand-computed children', () => {
  // y1=0.2, y2=0.6, eta=1, u=0.3: beta=2, alpha=1.75, bq=sqrt(0.525); beta=3, alpha=17/9, bq=sqrt(0.3*17/9)
  const [c1, c2] = sbxPair(0.6, 0.2, 0, 1, 1, 0.3);
  close(c1, 0.5 * (0.8 - Math.sqrt(0.525) * 0.4), 1e-12, 'c1');
  close(c1, 0.255086232, 1e-8, 'c1 numeric');
  close(c2, 0.5 * (0.8 + Math.sqrt((0.3 * 17) / 9) * 0.4), 1e-12, 'c2');
  close(c2, 0.550554531, 1e-8, 'c2 numeric');
  assert.deepEqual(sbxPair(0.4, 0.4, 0, 1, 15, 0.7), [0.4, 0.4], 'equal parents are kept');
});

test('bounded polynomial mutation gives the hand-computed value and stays in the box', () => {
  // y=0.5, eta=1, u=0.25: val = 0.5 + 0.5 * 0.5^2 = 0.625, dq = sqrt(0.625) - 1
  close(polynomialMutation(0.5, 0, 1, 1, 0.25), 0.5 + Math.sqrt(0.625) - 1, 1e-12, 'u <= 0.5');
  // y=0.5, eta=1, u=0.75: val = 0.5 + 0.5 * 0.25 = 0.625, dq = 1 - sqrt(0.625)
  close(polynomialMutation(0.5, 0, 1, 1, 0.75), 0.5 + 1 - Math.sqrt(0.625), 1e-12, 'u > 0.5');
  for (const u of [0, 1e-9, 0.5, 0.999999]) {
    const y = polynomialMutation(0.999, 0, 1, 20, u);
    assert.ok(y >= 0 && y <= 1);
  }
});

test('a steady-state GA proposes one child per finished evaluation and accepts outcomes in any order', () => {
  let s: GaState = ga.init(3, { popsize: 6, mode: 'steady-state' }, 'ss');
  const first = ga.ask(s);
  assert.equal(first.proposals.length, 6);
  s = first.state;
  assert.equal(ga.ask(s).proposals.length, 0, 'nothing finished, nothing new');
  // two evaluations finish, out of order
  s = ga.tell(s, [{ id: first.proposals[4]!.id, fitness: 1 }, { id: first.proposals[1]!.id, fitness: 2 }]);
  const next = ga.ask(s);
  assert.equal(next.proposals.length, 2);
  for (const p of next.proposals) for (const q of p.parentIds) assert.ok([first.proposals[4]!.id, first.proposals[1]!.id].includes(q));
  s = next.state;
  s = ga.tell(s, [{ id: next.proposals[0]!.id, fitness: 5 }]);
  assert.equal(ga.ask(s).proposals.length, 1);
  assert.equal(s.best!.fitness, 5);
});

test('a steady-state GA keeps its population size by replacing the worst member', () => {
  let s: GaState = ga.init(2, { popsize: 4, mode: 'steady-state' }, 'replace');
  let a = ga.ask(s);
  s = ga.tell(a.state, a.proposals.map((p, i) => ({ id: p.id, fitness: i === 0 ? null : i })));
  a = ga.ask(s);
  s = ga.tell(a.state, a.proposals.map((p) => ({ id: p.id, fitness: 10 })));
  assert.equal(s.population.length, 4);
  assert.ok(s.population.every((m) => m.fitness !== null), 'the failed member left first');
});

test('a generational GA keeps its elite and respects integer genes', () => {
  let s: GaState = ga.init(3, { popsize: 8, elitism: 2, bounds: [[0, 5], [0, 5], [0, 1]], geneTypes: ['integer', 'integer', 'real'] }, 'gen');
  let bestSeen = -Infinity;
  for (let g = 0; g < 6; g++) {
    const a = ga.ask(s);
    for (const p of a.proposals) assert.ok(Number.isInteger(p.genome[0]) && Number.isInteger(p.genome[1]));
    s = ga.tell(a.state, a.proposals.map((p) => ({ id: p.id, fitness: -((p.genome[0]! - 3) ** 2) - (p.genome[1]! - 1) ** 2 - p.genome[2]! })));
    const popBest = Math.max(...s.population.map((m) => m.fitness ?? -Infinity));
    assert.ok(popBest >= bestSeen, 'the best member survives');
    bestSeen = popBest;
  }
});

function run(opt: Optimizer, options: object, budget: number, seed: string, f: (x: number[]) => number): number {
  let s: BaseState = opt.init(8, options, seed);
  while (s.evaluations < budget && !opt.isDone(s)) {
    const a = opt.ask(s);
    if (a.proposals.length === 0) break;
    s = opt.tell(a.state, a.proposals.map((p) => ({ id: p.id, fitness: f(p.genome) })));
  }
  return s.best!.fitness;
}

test('CMA-ES and both GA modes beat random search on the same budget', () => {
  const f = (x: number[]) => -x.reduce((t, v, i) => t + (i + 1) * (v - 0.7) ** 2, 0);
  for (const seed of ['a', 'b']) {
    const random = run(randomSearch, { batch: 16 }, 800, seed, f);
    const c = run(cmaes, { bounds: [0, 1] }, 800, seed, f);
    const g = run(ga, { popsize: 20 }, 800, seed, f);
    const ss = run(ga, { popsize: 20, mode: 'steady-state' }, 800, seed, f);
    assert.ok(c > random && g > random && ss > random, `seed ${seed}: random ${random}, cmaes ${c}, ga ${g}, steady ${ss}`);
    assert.ok(c > -1e-4, `cmaes ${c}`);
  }
});

test('non-dominated sorting and crowding distances match a hand-worked example', () => {
  // maximised: A(1,5) B(2,4) C(3,3) E(2,2) D(1,1) F(0,0), and a failure
  const objs = [[1, 5], [2, 4], [3, 3], [1, 1], [2, 2], [0, 0], null];
  assert.deepEqual(nonDominatedSort(objs), [[0, 1, 2], [4], [3], [5], [6]]);
  // front {A,B,C}: extremes infinite; B = (3-1)/(3-1) + (5-3)/(5-3) = 2
  assert.deepEqual(crowdingDistance(objs, [0, 1, 2]), [Infinity, 2, Infinity]);
  assert.ok(dominates([1, 1], null) && !dominates(null, [0, 0]) && !dominates([1, 2], [2, 1]));
});

test('NSGA-II spreads a Pareto front of two conflicting objectives and keeps it in the state', () => {
  let s: Nsga2State = nsga2.init(2, { popsize: 20 }, 'front');
  for (let g = 0; g < 80; g++) {
    const a = nsga2.ask(s);
    s = nsga2.tell(a.state, a.proposals.map((p, i) => {
      if (i % 9 === 4) return { id: p.id, fitness: null };
      const [x, y] = p.genome as [number, number];
      const objectives = [-(x * x) - y * y, -((x - 1) ** 2) - (y - 1) ** 2];
      return { id: p.id, fitness: objectives[0]!, objectives };
    }));
  }
  assert.ok(s.paretoFront.length >= 10, `front size ${s.paretoFront.length}`);
  for (const m of s.paretoFront) {
    assert.ok(m.objectives !== null);
    for (const o of s.paretoFront) assert.ok(!dominates(o.objectives, m.objectives));
  }
  // Pareto-optimal points lie on the segment x = y in [0, 1]; the front has come close to it
  const off = s.paretoFront.map((m) => Math.abs(m.genome[0]! - m.genome[1]!));
  assert.ok(off.reduce((a, b) => a + b, 0) / off.length < 0.08, `mean distance ${off}`);
  const xs = s.paretoFront.map((m) => m.genome[0]!);
  assert.ok(Math.max(...xs) - Math.min(...xs) > 0.7, 'the front is spread');
});
