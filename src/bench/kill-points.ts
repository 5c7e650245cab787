/**
 * Kill points for `evomerge bench faults`, preloaded into the evomerge CLI it kills
 * (`node --import kill-points.mjs src/cli/bin.mjs ...`, see ./faults.ts runCli). EVOMERGE_BENCH_KILL
 * holds `{ "phase": P, "at": k }`: on the k-th call of a store write the process sends itself
 * SIGKILL either inside the write's transaction, before it commits (`record`: a candidate's
 * result; `state`: a step's optimizer state, told marks and new candidates), or just after it
 * committed (`recorded`, `stepped`); `merge-finished` kills after a merged folder is complete,
 * before its rename. The store and the checkpoint writer are patched here, before the CLI loads,
 * so production code carries no kill points of its own and the bench does not import the CLI.
 */
import { CheckpointWriter } from '../checkpoint/index.ts';
import { RunStore } from '../store/index.ts';

interface KillPoint {
  /** `merge-finished`: after a merged folder is complete in its staging folder, before its rename. */
  phase: 'record' | 'recorded' | 'state' | 'stepped' | 'merge-finished';
  at: number;
}

function killNow(): never {
  process.kill(process.pid, 'SIGKILL');
  // SIGKILL to oneself is delivered at once; block so that nothing else runs meanwhile
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
  throw new Error('SIGKILL was not delivered');
}

const spec = process.env.EVOMERGE_BENCH_KILL ? (JSON.parse(process.env.EVOMERGE_BENCH_KILL) as KillPoint) : null;
if (spec?.phase === 'merge-finished') {
  const proto = CheckpointWriter.prototype as unknown as Record<string, (this: CheckpointWriter, ...args: unknown[]) => unknown>;
  const finish = proto.finish!;
  let calls = 0;
  proto.finish = function (this: CheckpointWriter, ...args: unknown[]) {
    finish.apply(this, args);
    if (++calls === spec.at) killNow();
  };
} else if (spec) {
  const proto = RunStore.prototype as unknown as Record<string, (this: RunStore, ...args: unknown[]) => unknown>;
  const method = spec.phase === 'record' || spec.phase === 'recorded' ? 'recordResult' : 'commitStep';
  const original = proto[method]!;
  let calls = 0;
  proto[method] = function (this: RunStore, ...args: unknown[]) {
    calls++;
    if (calls !== spec.at) return original.apply(this, args);
    if (spec.phase === 'record' || spec.phase === 'state') {
      return this.transaction(() => {
        original.apply(this, args);
        killNow();
      });
    }
    original.apply(this, args);
    return killNow();
  };
}
