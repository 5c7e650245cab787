/**
 * The numpy reference of the mergekit parity tests (test/helpers/mergekit_ref.py), run with
 * Debian's Python, which has numpy (python3-numpy, installed by .ci/run). The `python3` first
 * on PATH may be another one without it, so the interpreter is /usr/bin/python3 unless
 * EVOMERGE_PYTHON names one. A missing numpy fails the test with this message; it never skips.
 */
import { spawnSync } from 'node:child_process';

export const PYTHON = process.env.EVOMERGE_PYTHON ?? '/usr/bin/python3';
const SCRIPT = new URL('./mergekit_ref.py', import.meta.url).pathname;

/** Throws when the reference cannot run. */
export function requireNumpy(): void {
  const r = spawnSync(PYTHON, ['-c', 'import numpy'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(`the mergekit reference needs Python with numpy at ${PYTHON} (Debian: apt-get install python3-numpy; or set EVOMERGE_PYTHON): ${r.error?.message ?? r.stderr.trim()}`);
  }
}

export interface ReferenceJob {
  id: string;
  /** A mergekit config (as parsed from YAML) naming local folders. */
  config: unknown;
  /** evomerge's output folder, written in float32. */
  out: string;
  details?: boolean;
}

export interface ReferenceResult {
  id: string;
  skipped?: string;
  max: number;
  worst: string | null;
  tensors: number;
  mismatched: string[];
  missing: string[];
  extra: string[];
  by_tensor: Record<string, number | null>;
  vocab?: number;
  rows?: number;
  added?: number;
}

/** Run the reference over jobs; one result per job, in order. */
export function mergekitReference(jobs: readonly ReferenceJob[]): ReferenceResult[] {
  requireNumpy();
  const r = spawnSync(PYTHON, [SCRIPT], { input: JSON.stringify({ jobs }), encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`mergekit_ref.py failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { results: ReferenceResult[] }).results;
}
