import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildAtomically } from '../src/checkpoint/atomic.ts';
import { tempDir } from './helpers/tmp.ts';

const dir = tempDir('evomerge-atomic-');

test('a failed atomic build leaves the existing folder untouched and no temporary folder behind', async () => {
  const target = join(dir, 'atomic');
  mkdirSync(target);
  writeFileSync(join(target, 'keep.txt'), 'old');
  await assert.rejects(buildAtomically(target, async (tmp) => {
    writeFileSync(join(tmp, 'half.txt'), 'new');
    throw new Error('boom');
  }), /boom/);
  assert.equal(readFileSync(join(target, 'keep.txt'), 'utf8'), 'old');
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('atomic')), ['atomic']);
  await buildAtomically(target, async (tmp) => writeFileSync(join(tmp, 'new.txt'), 'new'));
  assert.deepEqual(readdirSync(target), ['new.txt']);
});
