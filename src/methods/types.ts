/**
 * The contract of a merge method: declared once as data (id, title, reference, parameters with
 * scope, range and default) plus one pure per-tensor function over Float32Array data.
 * Validation, `evomerge methods`, recipe checking, mergekit export and the search genome all read
 * these declarations; nothing lists a method's parameters a second time.
 */
import type { HalfSource } from '../tensor/wasm-half.ts';

export type ParamValue = number | boolean | string;

export interface ParamSpec {
  /** The name as mergekit spells it, so recipes export to mergekit YAML. */
  readonly name: string;
  /** `global`: one value per tensor; `per-model`: one value per source model per tensor. */
  readonly scope: 'global' | 'per-model';
  readonly type: 'number' | 'boolean' | 'enum';
  /** Valid values (inclusive) for numbers; out-of-range values are refused before merging. */
  readonly range?: readonly [number, number];
  /** Default bounds for an evolutionary search of this parameter (numbers only). */
  readonly search?: readonly [number, number];
  /** The choices of an `enum` parameter. */
  readonly values?: readonly string[];
  /** The default; absent means the parameter is required. `null` means "unset" (e.g. passthrough scale). */
  readonly default?: ParamValue | null;
  /** False for evomerge-only parameters that mergekit does not know: export refuses a non-default value. */
  readonly mergekit?: boolean;
  readonly doc: string;
}

/** The factors of one LoRA adapter for one base tensor: delta = scale * B @ A, B [out, rank], A [rank, in]. */
export interface LoraFactorsInput {
  readonly a: Float32Array;
  readonly b: Float32Array;
  readonly rank: number;
  readonly scale: number;
  readonly outFeatures: number;
  readonly inFeatures: number;
  /** The update scale * B A already materialised in the base tensor's layout (factors stored transposed, e.g. embeddings). */
  readonly delta?: Float32Array;
}

/** Everything one tensor's merge reads. Arrays are read, never written. */
export interface TensorInput {
  /** The output tensor name (it seeds random masks and matches parameter filters). */
  readonly name: string;
  readonly shape: readonly number[];
  /** The base model's tensor, for methods with a base; null otherwise. */
  readonly base: Float32Array | null;
  /** The models merged (the base excluded when the method uses a base), in recipe order. */
  readonly models: readonly Float32Array[];
  /** Stable index of each model in the recipe, for random streams (defaults to position). */
  readonly modelIndex?: readonly number[];
  /** LoRA factors per model for LoRA-composition methods (null: that adapter leaves the tensor alone). */
  readonly lora?: ReadonlyArray<LoraFactorsInput | null>;
  /**
   * The same tensors as stored, when base and models are all stored in one half-precision dtype
   * and the method reads it (`MergeMethod.readsHalf`): a method may compute from these bits
   * without a float32 copy of any input (gta.ts DARE). `base` and `models` are then decoded only
   * when first read.
   */
  readonly half?: HalfInput;
  /**
   * The models' arrays are the caller's scratch, read for this call only (a pooled reader's), so
   * the method may overwrite them: the task-vector engine then computes large deltas in place
   * instead of in buffers of its own (gta.ts). Absent or false: inputs are never written.
   */
  readonly scratchModels?: boolean;
}

/** Half-precision bits of a tensor task's inputs (TensorInput.half), read block by block on demand. */
export interface HalfInput {
  readonly dtype: 'BF16' | 'F16';
  readonly base: HalfSource | null;
  readonly models: readonly HalfSource[];
}

export interface MergeContext {
  /** The merge seed: random masks come from streams seeded by (seed, tensor name, model index). */
  readonly seed: string | number;
}

export type ResolvedParams = Readonly<Record<string, ParamValue | null>>;

export interface MergeMethod {
  readonly id: string;
  readonly title: string;
  /** Paper or source, as a URL plus a short citation. */
  readonly reference: string;
  /** `required`: the base is its own input; `optional`: used when given; `none`: the base, when given, is just another model. */
  readonly requiresBase: 'required' | 'optional' | 'none';
  /** How many models (besides a required/optional base) the method takes. */
  readonly minModels: number;
  readonly maxModels: number;
  /** The mergekit `merge_method` id, or null where mergekit has no such method. */
  readonly mergekitId: string | null;
  /** Whether outputs depend on the seed (random masks). */
  readonly random: boolean;
  /** Whether `merge` reads TensorInput.half when given (else it is not read for it). */
  readonly readsHalf?: boolean;
  /** Whether sources are LoRA adapters of the base (LoRA composition). */
  readonly lora?: boolean;
  readonly params: readonly ParamSpec[];
  /** Notes on exactness: quirks of the source kept or options that differ. */
  readonly notes?: readonly string[];
  /**
   * Merge one tensor. `global` holds every global parameter (defaults filled), `perModel[j]`
   * every per-model parameter of models[j]. Writes into `out` when given (length of the tensor).
   */
  merge(input: TensorInput, global: ResolvedParams, perModel: readonly ResolvedParams[], ctx: MergeContext, out?: Float32Array): Float32Array;
}
