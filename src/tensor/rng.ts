/**
 * Named, seeded random streams whose whole state is plain JSON (seedrandom with `state: true`).
 *
 * Every random choice in evomerge comes from such a stream: an optimizer keeps its stream's
 * state inside its own JSON state, and a merge derives a fresh stream per (seed, tensor, model)
 * with `deriveSeed`, so any tensor can be recomputed alone, in any order, on any worker.
 */
import { createHash } from 'node:crypto';
import seedrandom from 'seedrandom';

export type RngAlgorithm = 'arc4' | 'alea' | 'xor128' | 'xorwow' | 'xorshift7' | 'xor4096' | 'tychei';

export interface RngState {
  algorithm: RngAlgorithm;
  /** seedrandom's own state object for the algorithm. */
  state: object;
  /** The second Box-Muller normal, kept so a restored stream continues exactly. */
  spare: number | null;
}

type Prng = { (): number; state(): object };
type Factory = (seed: string | undefined, options: { state: boolean | object }) => Prng;

function factory(algorithm: RngAlgorithm): Factory {
  if (algorithm === 'arc4') return seedrandom as unknown as Factory;
  const f = (seedrandom as unknown as Record<string, Factory>)[algorithm];
  if (!f) throw new RangeError(`unknown RNG algorithm '${algorithm}'`);
  return f;
}

/** SHA-256 of the parts (joined unambiguously), as hex: a seed string for a derived stream. */
export function deriveSeed(...parts: ReadonlyArray<string | number | bigint>): string {
  const h = createHash('sha256');
  for (const p of parts) {
    const s = String(p);
    h.update(`${s.length}:${s};`);
  }
  return h.digest('hex');
}

export class Rng {
  private readonly prng: Prng;
  private readonly algorithm: RngAlgorithm;
  private spare: number | null;

  private constructor(prng: Prng, algorithm: RngAlgorithm, spare: number | null) {
    this.prng = prng;
    this.algorithm = algorithm;
    this.spare = spare;
  }

  /** A new stream from a seed. `alea` is the default: fast, and its state is four numbers. */
  static seeded(seed: string | number, algorithm: RngAlgorithm = 'alea'): Rng {
    return new Rng(factory(algorithm)(String(seed), { state: true }), algorithm, null);
  }

  /** The stream exactly where `state` left it. */
  static fromState(state: RngState): Rng {
    const prng = factory(state.algorithm)('', { state: structuredClone(state.state) });
    return new Rng(prng, state.algorithm, state.spare);
  }

  /** Serialisable state; restoring it continues the same sequence. */
  state(): RngState {
    return { algorithm: this.algorithm, state: this.prng.state(), spare: this.spare };
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.prng();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.prng() * n);
  }

  /**
   * Fills `out` with independent standard normals, much faster than calling `normal()` per value
   * (CMA-ES draws lambda x n of them per generation). Four uniforms from this stream seed a
   * transient xoshiro128** generator (Blackman and Vigna 2018, https://prng.di.unimi.it/),
   * whose output feeds Marsaglia's polar method (Marsaglia and Bray 1964). The stream advances
   * by exactly four draws per call and the Box-Muller spare is untouched, so the result is a
   * pure function of the state: a restored stream fills the same values.
   */
  fillNormal(out: Float64Array): Float64Array {
    let s0 = (this.prng() * 4294967296) >>> 0;
    let s1 = (this.prng() * 4294967296) >>> 0;
    let s2 = (this.prng() * 4294967296) >>> 0;
    let s3 = (this.prng() * 4294967296) >>> 0;
    if ((s0 | s1 | s2 | s3) === 0) s0 = 0x9e3779b9;
    const len = out.length;
    let i = 0;
    let u = 0;
    let have = false;
    while (i < len) {
      // xoshiro128** step, inlined: this loop is the hot path of CMA-ES sampling
      const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
      const t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = rotl(s3, 11);
      // a uniform in (-1, 1) from 32 bits (the polar method needs no more resolution)
      const x = (r + 0.5) * (2 / 4294967296) - 1;
      if (!have) {
        u = x;
        have = true;
        continue;
      }
      have = false;
      const q = u * u + x * x;
      if (q >= 1) continue;
      const f = Math.sqrt((-2 * Math.log(q)) / q);
      out[i++] = u * f;
      if (i < len) out[i++] = x * f;
    }
    return out;
  }

  /** Standard normal by the Box-Muller transform (both values used). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.prng();
    const v = this.prng();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
