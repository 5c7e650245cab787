/**
 * The data-flow-space genome of "Evolutionary Optimization of Model Merging Recipes" (Akiba et
 * al., Sakana AI 2024, section 3.2). The sources' layers are numbered 0..M-1 (source 0's first,
 * then source 1's, ...) and the whole sequence is repeated r times: T = M r slots in order.
 * - An indicator I in R^T: slot t (layer t mod M) is on the inference path when I_t > 0; the
 *   path keeps slot order.
 * - A scaling matrix W in R^{M x M}: W[i][j] multiplies the hidden state entering layer j when
 *   the previous step on the path was layer i (the paper's remedy for the distribution shift
 *   between layers of different models). The first step, fed by the embeddings, has scale 1.
 * The optimizer sees the box [0,1]^n: an indicator gene g stands for I = 2g - 1 (on when
 * g > 0.5), a scale gene for lo + g (hi - lo). The initial genome is the path of one source's
 * own layers at scale 1, so the search starts from a working model.
 */
import { InputError } from '../errors.ts';

export interface DfsSource {
  name: string;
  layers: number;
}

export interface DfsLayout {
  sources: readonly DfsSource[];
  /** r: how many times the sequence of all layers is repeated. */
  repetitions: number;
  /** Keep at most this many steps (the first ones in slot order); absent: no cap. */
  maxPathLength?: number;
  /** Bounds of the scales W. */
  scaleRange: readonly [number, number];
  /** Which source's own path is the initial genome. */
  initSource: number;
}

export interface DfsStep {
  source: number;
  layer: number;
  scale: number;
}

export interface DfsGeneInfo {
  kind: 'indicator' | 'scale';
  name: string;
}

export class DfsCodec {
  readonly layout: DfsLayout;
  /** M: total layers of the sources. */
  readonly totalLayers: number;
  /** T = M r. */
  readonly slots: number;
  readonly dimension: number;
  private readonly owner: Array<{ source: number; layer: number }>;

  constructor(layout: DfsLayout) {
    const { sources, repetitions, scaleRange, initSource, maxPathLength } = layout;
    if (sources.length === 0) throw new InputError('E_DFS_LAYOUT', 'a data-flow search needs at least one source model');
    for (const s of sources) {
      if (!Number.isInteger(s.layers) || s.layers < 1) throw new InputError('E_DFS_LAYOUT', `source '${s.name}' has ${s.layers} layers; each source needs at least one`);
    }
    if (!Number.isInteger(repetitions) || repetitions < 1) throw new InputError('E_DFS_LAYOUT', `repetitions must be a positive integer, got ${repetitions}`);
    if (!(scaleRange[0] <= scaleRange[1])) throw new InputError('E_DFS_LAYOUT', `scale range [${scaleRange.join(', ')}] is empty`);
    if (!Number.isInteger(initSource) || initSource < 0 || initSource >= sources.length) {
      throw new InputError('E_DFS_LAYOUT', `initial source ${initSource} is not one of the ${sources.length} sources`);
    }
    if (maxPathLength !== undefined && (!Number.isInteger(maxPathLength) || maxPathLength < 1)) {
      throw new InputError('E_DFS_LAYOUT', `maximum path length must be a positive integer, got ${maxPathLength}`);
    }
    this.layout = layout;
    this.owner = sources.flatMap((s, source) => Array.from({ length: s.layers }, (_, layer) => ({ source, layer })));
    this.totalLayers = this.owner.length;
    this.slots = this.totalLayers * repetitions;
    this.dimension = this.slots + this.totalLayers * this.totalLayers;
  }

  /** What each gene means, in genome order. */
  genes(): DfsGeneInfo[] {
    const name = (g: number) => `${this.layout.sources[this.owner[g]!.source]!.name}[${this.owner[g]!.layer}]`;
    const out: DfsGeneInfo[] = [];
    for (let t = 0; t < this.slots; t++) out.push({ kind: 'indicator', name: `on(slot ${t}: ${name(t % this.totalLayers)})` });
    for (let i = 0; i < this.totalLayers; i++) {
      for (let j = 0; j < this.totalLayers; j++) out.push({ kind: 'scale', name: `W(${name(i)} -> ${name(j)})` });
    }
    return out;
  }

  private scaleOf(g: number): number {
    const [lo, hi] = this.layout.scaleRange;
    return lo + Math.min(1, Math.max(0, g)) * (hi - lo);
  }

  private geneOfScale(s: number): number {
    const [lo, hi] = this.layout.scaleRange;
    return hi === lo ? 0.5 : Math.min(1, Math.max(0, (s - lo) / (hi - lo)));
  }

  /** The inference path a genome encodes. */
  decode(genome: readonly number[]): DfsStep[] {
    if (genome.length !== this.dimension) throw new InputError('E_GENOME', `a DFS genome has ${this.dimension} genes, got ${genome.length}`);
    const M = this.totalLayers;
    const steps: DfsStep[] = [];
    let previous = -1;
    const cap = this.layout.maxPathLength ?? Infinity;
    for (let t = 0; t < this.slots && steps.length < cap; t++) {
      if (!(2 * genome[t]! - 1 > 0)) continue;
      const g = t % M;
      const scale = previous < 0 ? 1 : this.scaleOf(genome[this.slots + previous * M + g]!);
      steps.push({ ...this.owner[g]!, scale });
      previous = g;
    }
    return steps;
  }

  /** One source's own layers in order at scale 1 (indicators well inside their side of 0.5). */
  initialGenome(): number[] {
    const genome = new Array<number>(this.dimension).fill(0.25);
    this.owner.forEach((o, g) => {
      if (o.source === this.layout.initSource) genome[g] = 0.75;
    });
    for (let k = this.slots; k < this.dimension; k++) genome[k] = this.geneOfScale(1);
    return genome;
  }
}
