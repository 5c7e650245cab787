/**
 * Box bounds, kept apart from the optimizers' cores (as evosax and the CyberAgent `cmaes`
 * package keep theirs): the `bounds` option every optimizer takes, its resolution into one
 * interval per gene, and the smooth transform through which CMA-ES searches a box.
 *
 * GA, NSGA-II and random search sample and vary inside the box directly. CMA-ES samples an
 * unbounded Gaussian and maps each point into the box with pycma's
 * `transformations.BoxConstraintsLinQuadTransformation` (pycma 4.x, github.com/CMA-ES/pycma):
 * the identity in the interior, quadratic within a margin of each bound, and periodic
 * (reflecting) beyond, so the internal Gaussian lives on R^n while every genome lies in [lo, hi].
 */
import { z } from 'zod';
import { OptimizerOptionsError } from './types.ts';

/** One interval per gene. */
export interface Box {
  lo: number[];
  hi: number[];
}

/** The `bounds` option: a common box [lo, hi] or one pair per dimension. */
export const boundsSchema = z.union([z.tuple([z.number(), z.number()]), z.array(z.tuple([z.number(), z.number()]))]);

/** Per-dimension box from `[lo, hi]` or a list of pairs; validated against `dim`. */
export function resolveBounds(
  id: string,
  dim: number,
  bounds: readonly [number, number] | ReadonlyArray<readonly [number, number]> | undefined,
  fallback: readonly [number, number] | null,
): Box | null {
  if (bounds === undefined) {
    if (!fallback) return null;
    bounds = fallback;
  }
  let pairs: Array<readonly [number, number]>;
  if (typeof bounds[0] === 'number') {
    const b = bounds as readonly [number, number];
    pairs = Array.from({ length: dim }, () => b);
  } else {
    pairs = (bounds as ReadonlyArray<readonly [number, number]>).slice();
    if (pairs.length !== dim) {
      throw new OptimizerOptionsError(id, `bounds has ${pairs.length} pairs but the genome has ${dim} dimensions`);
    }
  }
  const lo = pairs.map((p) => p[0]);
  const hi = pairs.map((p) => p[1]);
  for (let i = 0; i < dim; i++) {
    if (!(lo[i]! < hi[i]!) || !Number.isFinite(lo[i]!) || !Number.isFinite(hi[i]!)) {
      throw new OptimizerOptionsError(id, `bounds[${i}] = [${lo[i]}, ${hi[i]}] must be finite with lo < hi`);
    }
  }
  return { lo, hi };
}

// ---------------------------------------------------------------------------------------------
// pycma's BoxConstraintsLinQuadTransformation, one coordinate at a time

function margins(lo: number, hi: number): [number, number] {
  // pycma: al = min((u - l)/20, (1 + |l|)/20), au likewise with |u|
  return [Math.min((hi - lo) / 20, (1 + Math.abs(lo)) / 20), Math.min((hi - lo) / 20, (1 + Math.abs(hi)) / 20)];
}

export function boxTransform(x: number, lo: number, hi: number): number {
  const [al, au] = margins(lo, hi);
  let y = x;
  // fold into [lo - al, hi + au] by reflection with period 2 (hi - lo + al + au)
  const xlow = lo - 2 * al - (hi - lo) / 2;
  const xup = hi + 2 * au + (hi - lo) / 2;
  const r = 2 * (hi - lo + al + au);
  if (y < xlow) y += r * (1 + Math.floor((xlow - y) / r));
  if (y > xup) y -= r * (1 + Math.floor((y - xup) / r));
  if (y < lo - al) y += 2 * (lo - al - y);
  if (y > hi + au) y -= 2 * (y - hi - au);
  if (y < lo + al) y = lo + (y - (lo - al)) ** 2 / 4 / al;
  else if (y > hi - au) y = hi - (y - (hi + au)) ** 2 / 4 / au;
  return Math.min(hi, Math.max(lo, y));
}

/** Inverse of `boxTransform` on [lo, hi] (used to start the internal mean at x0). */
export function boxTransformInverse(y: number, lo: number, hi: number): number {
  const [al, au] = margins(lo, hi);
  if (y < lo + al) return lo - al + 2 * Math.sqrt(al * Math.max(0, y - lo));
  if (y > hi - au) return hi + au - 2 * Math.sqrt(au * Math.max(0, hi - y));
  return y;
}

/** The genome of an internal CMA-ES point: its box transform, or a copy of it without a box. */
export function toBox(box: Box | null, x: readonly number[]): number[] {
  return box ? x.map((v, i) => boxTransform(v, box.lo[i]!, box.hi[i]!)) : x.slice();
}

/** The internal point of a genome (the inverse transform), or a copy of it without a box. */
export function fromBox(box: Box | null, g: readonly number[]): number[] {
  return box ? g.map((v, i) => boxTransformInverse(v, box.lo[i]!, box.hi[i]!)) : g.slice();
}
