/**
 * Optimizer states are stored in run databases (one JSON per generation), so their format is a
 * file format: states written by an earlier version of the optimizers must resume. The fixture
 * test/helpers/optim-saved-states.json was written by the optimizers as they were at commit d4758c2
 * (before CMA-ES was split into core, TPA, termination, restarts and bounds): for each case a
 * state (some with a generation half told), the outcomes still due, the genomes of the next
 * three generations and the SHA-256 of the state after them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { optimizerForState, type BaseState, type Outcome } from '../src/optim/index.ts';

interface Saved {
  name: string;
  id: string;
  /** Outcomes of the pending proposals not told before the state was saved. */
  rest: Outcome[];
  /** Index of the next evaluation (the objective fails every 9th). */
  k: number;
  state: BaseState;
  next: number[][][];
  stateAfterSha256: string;
}

const saved = JSON.parse(readFileSync(new URL('./helpers/optim-saved-states.json', import.meta.url), 'utf8')) as Saved[];

/** The objective the fixture was written with. */
function fitness(g: readonly number[], k: number): number | null {
  if (k % 9 === 4) return null;
  return -g.reduce((a, x, i) => a + (1 + i) * (x - 0.3 - 0.1 * i) ** 2, 0);
}

test('the fixture holds states of every kind of optimizer state', () => {
  const kinds = new Set(saved.map((c) => c.state.kind));
  assert.deepEqual([...kinds].sort(), ['cmaes', 'ga', 'nsga2', 'random']);
});

for (const c of saved) {
  test(`${c.name}: a state saved by an earlier version resumes with the same proposals and states`, () => {
    const opt = optimizerForState(c.state);
    let state = c.state;
    if (c.rest.length) state = opt.tell(state, c.rest);
    let k = c.k;
    const got: number[][][] = [];
    for (let g = 0; g < c.next.length; g++) {
      const asked = opt.ask(state);
      got.push(asked.proposals.map((p) => p.genome));
      state = opt.tell(asked.state, asked.proposals.map((p) => ({ id: p.id, fitness: fitness(p.genome, k++) })));
    }
    assert.deepEqual(got, c.next);
    assert.equal(createHash('sha256').update(JSON.stringify(state)).digest('hex'), c.stateAfterSha256);
  });
}
