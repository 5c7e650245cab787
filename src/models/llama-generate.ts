/**
 * Greedy decoding for a Llama-family path (a model's own layers or a data-flow merge): the prompt
 * runs once, then one token at a time against a KV cache per step of the path (keys and values of
 * the positions already seen), until EOS, `maxTokens`, or `stop`.
 */
import { tf } from './backend.ts';
import type { LlamaConfig } from './llama-config.ts';
import { llamaHidden, type KvCache, type LlamaPath } from './llama-forward.ts';

/** Token ids generated after `prompt` (already checked against the vocabulary), without the EOS that ended them. */
export async function generateGreedy(model: LlamaPath & { readonly config: LlamaConfig }, prompt: readonly number[], options: { maxTokens: number; stop?: (generated: readonly number[]) => boolean }): Promise<number[]> {
  const eos = new Set(model.config.eosTokenIds);
  const generated: number[] = [];
  let caches: Array<KvCache | null> = model.path.map((step) => ({
    k: tf.zeros([1, step.layer.config.kvHeads, 0, model.config.headDim]) as tf.Tensor4D,
    v: tf.zeros([1, step.layer.config.kvHeads, 0, model.config.headDim]) as tf.Tensor4D,
  }));
  const free = (cs: Array<KvCache | null>) => cs.forEach((c) => c && (c.k.dispose(), c.v.dispose()));
  try {
    let input = [...prompt];
    let pos = 0;
    for (let n = 0; n < options.maxTokens; n++) {
      const T = input.length;
      const prev = caches;
      // tidy frees every intermediate; the argmax and the grown caches come back out of it.
      const flat = tf.tidy(() => {
        const r = llamaHidden(model, tf.tensor1d(input, 'int32'), 1, T, pos, prev);
        const last = tf.slice(r.x, [T - 1, 0], [1, -1]);
        const logits = tf.matMul(last, model.headEnds.head);
        return [tf.argMax(logits, 1), ...r.caches.flatMap((c) => [c!.k, c!.v])];
      });
      free(prev);
      const next = flat[0]!;
      caches = model.path.map((_, i) => ({ k: flat[1 + 2 * i] as tf.Tensor4D, v: flat[2 + 2 * i] as tf.Tensor4D }));
      const id = (await next.data())[0]!;
      next.dispose();
      pos += T;
      if (eos.has(id)) break;
      generated.push(id);
      if (options.stop?.(generated)) break;
      input = [id];
    }
  } finally {
    free(caches);
  }
  return generated;
}
