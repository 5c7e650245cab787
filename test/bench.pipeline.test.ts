/**
 * `evomerge bench pipeline --small` checks the benchmark itself in seconds: both searches run
 * through lm_eval_score.py's simulated task (numpy), every candidate has all its phases, the
 * persistent evaluator loads in place after its first build while the one-shot one starts a
 * process per candidate, and every goal is stated as met or not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pipelineReport, runPipelineBench } from '../src/bench/pipeline.ts';
import { PYTHON, requireNumpy } from './helpers/numpy.ts';
import { tempDir } from './helpers/tmp.ts';

test('bench pipeline --small measures merge, write, load, scoring and idle time per candidate for a persistent and a one-shot evaluator', async () => {
  requireNumpy();
  const dir = tempDir('evomerge-bench-pipeline-');
  const r = await runPipelineBench({ dir, small: true, candidates: 3, workers: 1, scoreSeconds: 0.2, python: PYTHON, framework: 'numpy', keep: false, log: () => {} });
  assert.deepEqual(r.arms.map((a) => a.evaluator), ['persistent', 'one-shot']);
  for (const a of r.arms) {
    assert.equal(a.failed, 0);
    assert.equal(a.candidates.length, 3);
    for (const c of a.candidates) {
      for (const v of [c.merge, c.write, c.evaluatorLoad, c.loadReported, c.scoring, c.idle, c.wall]) assert.ok(Number.isFinite(v) && v >= -0.005, JSON.stringify(c));
      assert.ok(c.scoring >= 0.2, 'the simulated task sleeps S');
      assert.ok(c.wall >= c.scoring + c.merge);
    }
    assert.ok(a.busyFraction > 0 && a.busyFraction <= a.busyFractionActive && a.busyFractionActive <= 1.0001);
  }
  const [persistent, oneShot] = r.arms;
  // after its first candidate the persistent evaluator only reads weights into the model it holds
  assert.ok(persistent!.candidates.slice(1).every((c) => c.evaluatorLoad < Math.min(...oneShot!.candidates.map((x) => x.evaluatorLoad))), JSON.stringify(r.arms.map((a) => a.candidates.map((c) => c.evaluatorLoad))));
  assert.ok(r.copy.seconds > 0 && r.merge.seconds > 0);
  assert.equal(r.goals.length, 4);
  for (const g of r.goals) assert.equal(typeof g.met, 'boolean');
  const text = pipelineReport(r).join('\n');
  assert.match(text, /goal (met|NOT met): persistent evaluator: overhead beyond scoring under 10% of the one-shot evaluator's/);
  assert.match(text, /load average \(1 min\) during the run/);
});
