/**
 * A small fast generator for the per-element draws of random pruning (DARE, DELLA).
 *
 * xoshiro128** (Blackman and Vigna, "Scrambled linear pseudorandom number generators", 2018,
 * https://prng.di.unimi.it/xoshiro128starstar.c): 128 bits of state, period 2^128 - 1, four
 * 32-bit operations per draw. seedrandom's generators cost a closure call and float arithmetic
 * per number, several times slower in the inner loop of a 16M-element mask; this stream is still
 * fully determined by `deriveSeed` (src/tensor/rng.ts): its state is the first 128 bits of the
 * SHA-256 seed string, so a mask depends only on (seed, tensor name, model index).
 */
import { deriveSeed } from './rng.ts';

export class FastRng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** From a hex seed string of at least 32 hex digits (as `deriveSeed` returns). */
  constructor(hexSeed: string) {
    if (!/^[0-9a-f]{32}/i.test(hexSeed)) throw new RangeError('FastRng needs a hex seed of at least 128 bits');
    this.s0 = parseInt(hexSeed.slice(0, 8), 16) | 0;
    this.s1 = parseInt(hexSeed.slice(8, 16), 16) | 0;
    this.s2 = parseInt(hexSeed.slice(16, 24), 16) | 0;
    this.s3 = parseInt(hexSeed.slice(24, 32), 16) | 0;
    // the all-zero state is the one fixed point of xoshiro; SHA-256 makes it astronomically unlikely
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** The stream of one (seed, tensor, model) triple. */
  static forTensor(seed: string | number, tensorName: string, modelIndex: number, purpose = 'mask'): FastRng {
    return new FastRng(deriveSeed('evomerge-merge', purpose, seed, tensorName, modelIndex));
  }

  /** Uniform uint32. */
  nextU32(): number {
    const s1 = this.s1;
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** The four state words (for kernels that step the generator inline). */
  getState(): [number, number, number, number] {
    return [this.s0, this.s1, this.s2, this.s3];
  }

  setState(s: readonly [number, number, number, number]): void {
    [this.s0, this.s1, this.s2, this.s3] = s;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  nextFloat(): number {
    return this.nextU32() * 2.3283064365386963e-10; // 2^-32
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * The uint32 threshold for a Bernoulli(p) draw compared as `nextU32() < threshold`:
 * P(keep) = floor(p * 2^32) / 2^32, exact to 2^-32. p >= 1 always keeps (threshold 2^32).
 */
export function bernoulliThreshold(p: number): number {
  if (!(p > 0)) return 0;
  if (p >= 1) return 4294967296;
  return Math.floor(p * 4294967296);
}

/**
 * The 31-bit threshold for a Bernoulli(p) draw decided as `(nextU32() >>> 1) < threshold`:
 * P(keep) = floor(p * 2^31) / 2^31, exact to 2^-31. p >= 1 always keeps (threshold 2^31).
 */
export function bernoulliThreshold31(p: number): number {
  if (!(p > 0)) return 0;
  if (p >= 1) return 2147483648;
  return Math.floor(p * 2147483648);
}
