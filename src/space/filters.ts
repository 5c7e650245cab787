/** A space's `ps.filters` resolved against the base's tensor names (see README, Search spaces). */
import { InputError } from '../errors.ts';

/**
 * Tensor kinds a space may name as filters, and the name substrings that stand for them, tried
 * in order: the first one some tensor of the base contains is used (Llama-family names first,
 * then GPT-2 style, then the residual MLP's).
 */
export const TENSOR_KINDS: Readonly<Record<string, readonly string[]>> = {
  attention: ['self_attn', 'attention', 'attn'],
  mlp: ['mlp', 'feed_forward', 'ffn', '.fc'],
  norm: ['norm', '_ln', '.ln_'],
};

/**
 * The space's filters as tensor-name substrings: a tensor kind (TENSOR_KINDS) becomes the
 * substring the base's tensors use for it; every filter must match some tensor of the base, since
 * the genes of one that matches nothing would change nothing.
 */
export function resolveFilters(filters: readonly string[], base: { tensors: Record<string, unknown> }, where: string): string[] {
  const names = Object.keys(base.tensors);
  const out = filters.map((f) => {
    const kind = TENSOR_KINDS[f];
    if (kind) {
      const sub = kind.find((s) => names.some((n) => n.includes(s)));
      if (!sub) throw new InputError('E_SPACE_FILTER', `ps.filters: no tensor of ${where} is of kind '${f}' (none contains ${kind.map((s) => `'${s}'`).join(', ')}); remove it from the filters`);
      return sub;
    }
    if (!names.some((n) => n.includes(f))) {
      throw new InputError('E_SPACE_FILTER', `ps.filters: '${f}' matches no tensor of ${where}, so its genes would change nothing; use a substring of its tensor names (see evomerge inspect ${where}) or a kind: ${Object.keys(TENSOR_KINDS).join(', ')}`);
    }
    return f;
  });
  const dup = out.find((f, i) => out.indexOf(f) !== i);
  if (dup !== undefined) throw new InputError('E_SPACE_FILTER', `ps.filters: '${dup}' is listed twice (a kind may stand for a substring also listed); each filter gets its own genes, list it once`);
  return out;
}
