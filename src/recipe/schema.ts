/**
 * The recipe: a plain JSON object naming the method, the base, the sources (whole models, or
 * slices of layers for frankenmerges), parameter settings in mergekit's grammar, output dtype and
 * seed. One zod schema validates it and gives its type. Field names follow mergekit's
 * configuration (mergekit/config.py) where it has one, so import and export are direct.
 */
import { z } from 'zod';

/** A scalar, or a gradient: a list interpolated over the layer index within a slice. */
export const ScalarOrGradientSchema = z.union([
  z.number(),
  z.boolean(),
  z.string(),
  z.array(z.number()).min(1),
  z.array(z.union([z.number(), z.boolean(), z.string()])).min(1),
]);

/** `{filter, value}`: applies when `filter` is absent, `*`, or a substring of the tensor name. */
export const ConditionalSchema = z.strictObject({
  filter: z.string().nullish(),
  value: ScalarOrGradientSchema,
});

export const ParamSettingSchema = z.union([ScalarOrGradientSchema, z.array(ConditionalSchema).min(1), ConditionalSchema]);
export type ParamSetting = z.infer<typeof ParamSettingSchema>;

export const ParamSettingsSchema = z.record(z.string(), ParamSettingSchema);
export type ParamSettings = z.infer<typeof ParamSettingsSchema>;

export const SourceSchema = z.strictObject({
  /** A checkpoint path (Hugging Face folder or .safetensors file), or a LoRA adapter folder for LoRA methods. */
  model: z.string().min(1),
  parameters: ParamSettingsSchema.optional(),
});
export type RecipeSource = z.infer<typeof SourceSchema>;

export const SliceSourceSchema = z.strictObject({
  model: z.string().min(1),
  /** [start, end): the layers taken from this model. */
  layer_range: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
  parameters: ParamSettingsSchema.optional(),
});

export const SliceSchema = z.strictObject({
  sources: z.array(SliceSourceSchema).min(1),
  base_model: z.string().min(1).optional(),
  parameters: ParamSettingsSchema.optional(),
});
export type RecipeSlice = z.infer<typeof SliceSchema>;

export const DTYPE_NAMES = ['float32', 'float16', 'bfloat16'] as const;
export const DTypeNameSchema = z.enum(DTYPE_NAMES);
export type DTypeName = (typeof DTYPE_NAMES)[number];

export const RecipeSchema = z
  .strictObject({
    version: z.literal(1).default(1),
    method: z.string().min(1),
    base: z.string().min(1).nullish(),
    sources: z.array(SourceSchema).min(1).optional(),
    slices: z.array(SliceSchema).min(1).optional(),
    parameters: ParamSettingsSchema.optional(),
    /** mergekit's `dtype` (the dtype it computes in); evomerge computes in float32 and records it. */
    dtype: DTypeNameSchema.nullish(),
    /** The dtype of the written tensors; default: the base's (or first source's) dtype. */
    out_dtype: DTypeNameSchema.nullish(),
    /** Where tokenizer files come from: `base` (default), or a model path. */
    tokenizer_source: z.string().min(1).nullish(),
    /** Seed of random masks (DARE, DELLA). */
    seed: z.number().int().nonnegative().default(0),
  })
  .refine((r) => (r.sources ? 1 : 0) + (r.slices ? 1 : 0) === 1, { message: 'a recipe needs exactly one of sources (whole models) or slices (layer ranges)' });

export type Recipe = z.infer<typeof RecipeSchema>;
export type RecipeInput = z.input<typeof RecipeSchema>;

export const DTYPE_TO_SAFETENSORS = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' } as const;
