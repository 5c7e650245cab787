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

/**
 * Where a token's embedding row comes from (mergekit/tokenizer/config.py): a model (its row for
 * the same token), a given row of a model (`model_token`, by id or by token), or zeros.
 */
export const TokenSourceSchema = z.union([
  z.string().min(1),
  z.strictObject({ kind: z.literal('model_token'), model: z.string().min(1), token_id: z.number().int().nonnegative().nullish(), token: z.string().nullish() })
    .refine((s) => (s.token_id != null ? 1 : 0) + (s.token != null ? 1 : 0) === 1, { message: 'a model_token source takes exactly one of token_id or token' }),
  z.strictObject({ kind: z.literal('zero') }),
]);
export type TokenSource = z.infer<typeof TokenSourceSchema>;

export const TokenizerSchema = z.strictObject({
  source: z.string().min(1).default('union'),
  /** Tokens added to the vocabulary (when new) and where their rows come from; `force` overrides a model's own row. */
  tokens: z.record(z.string(), z.strictObject({
    // mergekit fails on an entry without a source (tokenizer/embed.py compute_default_embedding)
    source: TokenSourceSchema,
    force: z.boolean().default(false),
  })).nullish(),
  /** Rows padded up to a multiple of this; padding rows are the mean of the token rows. */
  pad_to_multiple_of: z.number().int().positive().nullish(),
});
export type TokenizerSettings = z.infer<typeof TokenizerSchema>;

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
    /**
     * The output vocabulary (mergekit's `tokenizer_source`): `base`, `union` or a model path. When
     * set, every embedding-like tensor (rows are tokens) is laid out in that vocabulary before the
     * merge, as mergekit does (src/merge/vocab.ts). Absent: the base's tokenizer files are copied and
     * embeddings of different sizes are cut to their common rows (mergekit's legacy behaviour).
     */
    tokenizer_source: z.string().min(1).nullish(),
    /** mergekit's `tokenizer:` block (source, tokens, pad_to_multiple_of); excludes tokenizer_source. */
    tokenizer: TokenizerSchema.nullish(),
    /** A chat template for the output tokenizer: `auto`, `chatml`, or a Jinja template. */
    chat_template: z.string().min(1).nullish(),
    /** Seed of random masks (DARE, DELLA). */
    seed: z.number().int().nonnegative().default(0),
  })
  .refine((r) => (r.sources ? 1 : 0) + (r.slices ? 1 : 0) === 1, { message: 'a recipe needs exactly one of sources (whole models) or slices (layer ranges)' })
  .refine((r) => !(r.tokenizer_source && r.tokenizer), { message: 'give tokenizer_source or a tokenizer block, not both (mergekit refuses both too)', path: ['tokenizer'] });

export type Recipe = z.infer<typeof RecipeSchema>;
export type RecipeInput = z.input<typeof RecipeSchema>;

export const DTYPE_TO_SAFETENSORS = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' } as const;
