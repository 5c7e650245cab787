/**
 * An independent Llama-family forward pass in float64 with plain loops, for the tests only.
 * Written from the papers and the transformers semantics, sharing no code with src/models/:
 * RMSNorm, rotate-half RoPE with its scalings, grouped-query causal attention with an optional
 * sliding window, SwiGLU, tied or separate head.
 */
import { Rng } from '../../src/tensor/rng.ts';

export interface RefConfig {
  architectures: string[];
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  rms_norm_eps: number;
  rope_theta: number;
  max_position_embeddings: number;
  tie_word_embeddings: boolean;
  rope_scaling?: Record<string, unknown> | null;
  sliding_window?: number | null;
  use_sliding_window?: boolean;
  max_window_layers?: number;
  [k: string]: unknown;
}

/** Random weights under Hugging Face names ([out, in] linear layout), reproducible from `seed`. */
export function randomLlamaWeights(c: RefConfig, seed: number): Map<string, Float32Array> {
  const rng = Rng.seeded(seed);
  const m = new Map<string, Float32Array>();
  const D = c.hidden_size / c.num_attention_heads;
  const mk = (name: string, n: number, scale: number, offset = 0) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = offset + scale * rng.normal();
    m.set(name, a);
  };
  const H = c.hidden_size;
  const I = c.intermediate_size;
  mk('model.embed_tokens.weight', c.vocab_size * H, 1);
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    mk(p + 'input_layernorm.weight', H, 0.1, 1);
    mk(p + 'post_attention_layernorm.weight', H, 0.1, 1);
    mk(p + 'self_attn.q_proj.weight', c.num_attention_heads * D * H, 0.3);
    mk(p + 'self_attn.k_proj.weight', c.num_key_value_heads * D * H, 0.3);
    mk(p + 'self_attn.v_proj.weight', c.num_key_value_heads * D * H, 0.3);
    mk(p + 'self_attn.o_proj.weight', H * c.num_attention_heads * D, 0.3);
    if (c.architectures[0] === 'Qwen2ForCausalLM') {
      mk(p + 'self_attn.q_proj.bias', c.num_attention_heads * D, 0.3);
      mk(p + 'self_attn.k_proj.bias', c.num_key_value_heads * D, 0.3);
      mk(p + 'self_attn.v_proj.bias', c.num_key_value_heads * D, 0.3);
    }
    mk(p + 'mlp.gate_proj.weight', I * H, 0.3);
    mk(p + 'mlp.up_proj.weight', I * H, 0.3);
    mk(p + 'mlp.down_proj.weight', H * I, 0.3);
  }
  mk('model.norm.weight', H, 0.1, 1);
  if (!c.tie_word_embeddings) mk('lm_head.weight', c.vocab_size * H, 0.3);
  return m;
}

/** Rotary angle frequencies for head size d at a sequence of length n (transformers rope utils). */
function frequencies(c: RefConfig, d: number, n: number): number[] {
  const s = c.rope_scaling ?? null;
  const kind = s ? String(s.rope_type ?? s.type) : 'default';
  let theta = c.rope_theta;
  if (kind === 'dynamic' && n > c.max_position_embeddings) {
    const f = Number(s!.factor);
    theta = theta * Math.pow(f * n / c.max_position_embeddings - (f - 1), d / (d - 2));
  }
  const out: number[] = [];
  for (let k = 0; k < d; k += 2) {
    let w = Math.pow(theta, -k / d);
    if (kind === 'linear') w = w / Number(s!.factor);
    if (kind === 'llama3') {
      const f = Number(s!.factor);
      const lo = Number(s!.low_freq_factor);
      const hi = Number(s!.high_freq_factor);
      const L = Number(s!.original_max_position_embeddings);
      const wavelength = 2 * Math.PI / w;
      if (wavelength < L / hi) {
        // high frequencies are kept
      } else if (wavelength > L / lo) {
        w = w / f;
      } else {
        const a = (L / wavelength - lo) / (hi - lo);
        w = (1 - a) * w / f + a * w;
      }
    }
    out.push(w);
  }
  return out;
}

function matvec(w: Float32Array, rows: number, cols: number, x: number[], bias?: Float32Array): number[] {
  const y = new Array<number>(rows).fill(0);
  for (let r = 0; r < rows; r++) {
    let s = bias ? bias[r]! : 0;
    for (let k = 0; k < cols; k++) s += w[r * cols + k]! * x[k]!;
    y[r] = s;
  }
  return y;
}

function rms(x: number[], w: Float32Array, eps: number): number[] {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * inv * w[i]!);
}

/** Logits [T][V] of a whole sequence, float64. `scales[l]` multiplies the state entering layer l. */
export function referenceLogits(c: RefConfig, w: Map<string, Float32Array>, ids: number[], scales?: number[]): number[][] {
  const H = c.hidden_size;
  const nh = c.num_attention_heads;
  const nkv = c.num_key_value_heads;
  const D = H / nh;
  const T = ids.length;
  const g = (n: string) => w.get(n)!;
  const freqs = frequencies(c, D, T);
  const rotate = (v: number[], pos: number): number[] => {
    const r = v.slice();
    for (let i = 0; i < D / 2; i++) {
      const a = pos * freqs[i]!;
      r[i] = v[i]! * Math.cos(a) - v[i + D / 2]! * Math.sin(a);
      r[i + D / 2] = v[i + D / 2]! * Math.cos(a) + v[i]! * Math.sin(a);
    }
    return r;
  };
  let xs: number[][] = ids.map((id) => Array.from(g('model.embed_tokens.weight').subarray(id * H, (id + 1) * H)));
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    const sc = scales?.[l] ?? 1;
    xs = xs.map((x) => x.map((v) => v * sc));
    let win: number | null = null;
    if (c.sliding_window) {
      if (c.architectures[0] === 'MistralForCausalLM') win = c.sliding_window;
      if (c.architectures[0] === 'Qwen2ForCausalLM' && c.use_sliding_window && l >= (c.max_window_layers ?? 0)) win = c.sliding_window;
    }
    const hs = xs.map((x) => rms(x, g(p + 'input_layernorm.weight'), c.rms_norm_eps));
    const qs = hs.map((h, t) => {
      const q = matvec(g(p + 'self_attn.q_proj.weight'), nh * D, H, h, w.get(p + 'self_attn.q_proj.bias'));
      const out: number[][] = [];
      for (let head = 0; head < nh; head++) out.push(rotate(q.slice(head * D, head * D + D), t));
      return out;
    });
    const ks = hs.map((h, t) => {
      const k = matvec(g(p + 'self_attn.k_proj.weight'), nkv * D, H, h, w.get(p + 'self_attn.k_proj.bias'));
      const out: number[][] = [];
      for (let head = 0; head < nkv; head++) out.push(rotate(k.slice(head * D, head * D + D), t));
      return out;
    });
    const vs = hs.map((h) => {
      const v = matvec(g(p + 'self_attn.v_proj.weight'), nkv * D, H, h, w.get(p + 'self_attn.v_proj.bias'));
      const out: number[][] = [];
      for (let head = 0; head < nkv; head++) out.push(v.slice(head * D, head * D + D));
      return out;
    });
    const next: number[][] = [];
    for (let t = 0; t < T; t++) {
      const concat: number[] = [];
      for (let head = 0; head < nh; head++) {
        const kvh = Math.floor(head / (nh / nkv));
        const visible: number[] = [];
        for (let j = 0; j <= t; j++) if (win === null || t - j < win) visible.push(j);
        const scores = visible.map((j) => {
          let s = 0;
          for (let d = 0; d < D; d++) s += qs[t]![head]![d]! * ks[j]![kvh]![d]!;
          return s / Math.sqrt(D);
        });
        const mx = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - mx));
        const z = e.reduce((a, b) => a + b, 0);
        const o = new Array<number>(D).fill(0);
        visible.forEach((j, idx) => {
          for (let d = 0; d < D; d++) o[d]! += (e[idx]! / z) * vs[j]![kvh]![d]!;
        });
        concat.push(...o);
      }
      const attn = matvec(g(p + 'self_attn.o_proj.weight'), H, nh * D, concat);
      const x1 = xs[t]!.map((v, i) => v + attn[i]!);
      const h2 = rms(x1, g(p + 'post_attention_layernorm.weight'), c.rms_norm_eps);
      const gate = matvec(g(p + 'mlp.gate_proj.weight'), c.intermediate_size, H, h2);
      const up = matvec(g(p + 'mlp.up_proj.weight'), c.intermediate_size, H, h2);
      const act = gate.map((a, i) => (a / (1 + Math.exp(-a))) * up[i]!);
      const down = matvec(g(p + 'mlp.down_proj.weight'), H, c.intermediate_size, act);
      next.push(x1.map((v, i) => v + down[i]!));
    }
    xs = next;
  }
  const headW = c.tie_word_embeddings ? g('model.embed_tokens.weight') : g('lm_head.weight');
  return xs.map((x) => matvec(headW, c.vocab_size, H, rms(x, g('model.norm.weight'), c.rms_norm_eps)));
}
