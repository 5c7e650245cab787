#!/usr/bin/env python3
"""A PyTorch command evaluator for Llama-family checkpoint folders: cross-entropy on a text,
with its gradient by autograd, over evomerge's evaluator protocol (src/eval/protocol.ts).

Items are fixed-length windows of `--context` tokens of the text (a short tail is dropped);
each window's value is the mean negative log-likelihood of its tokens 2..T given the tokens
before (causal-LM cross-entropy), and the metric `nll` is the mean over windows (minimise it).
On request:

- an item subset: `offset`/`count` (`--offset`, `--count`) score positions offset..offset+count-1
  of a permutation of the windows seeded by `seed` (0 when absent), the same for every request;
  `limit` keeps the first N windows. Every answer carries "partial": {"count", "sum", "sum_sq"}
  over the windows' values;
- the gradient: `gradient` (`--gradient PATH`) writes dLoss/dtensor for every tensor of the
  folder as float32 safetensors, and "loss" is `nll` over the windows scored (loss
  "supervised"), or the mean entropy of the next-token distribution there (loss "entropy").

The model: by default a plain Llama forward written here (RMSNorm, rotary embeddings with
rope_theta in the rotate-half layout of Hugging Face's Llama, grouped-query attention, SwiGLU,
tied embeddings when lm_head.weight is absent; projection biases are used when present), so
the script needs only torch and numpy. `--hf` builds the model with transformers'
AutoModelForCausalLM instead (any architecture transformers knows; its parameters are named as
the folder's tensors). Adapt `build_model` for other families, and `--dtype` and `--device`
for large models (a GPU: `--device cuda`; evomerge sets CUDA_VISIBLE_DEVICES per slot).

Text: `--text FILE` tokenized by the folder's tokenizer (the `tokenizers` or `transformers`
package), or `--tokens FILE`, a JSON list of token ids, when neither is installed.

One-shot:   causal_lm_torch.py --model DIR --tokens F [--gradient PATH --loss L ...]
Persistent: causal_lm_torch.py --serve --tokens F (hello, then one answer per request line)
"""
import argparse
import json
import math
import os

import numpy as np
import torch

from evomerge_evaluator import add_request_args, read_folder, run, write_safetensors


# ---------------------------------------------------------------- the model

def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class PlainLlama:
    """The Llama forward (Touvron et al. 2023) over named parameter tensors `p`."""

    def __init__(self, config, p):
        self.c, self.p = config, p
        self.layers = int(config["num_hidden_layers"])
        self.heads = int(config["num_attention_heads"])
        self.kv = int(config.get("num_key_value_heads") or self.heads)
        self.hidden = int(config["hidden_size"])
        self.head_dim = int(config.get("head_dim") or self.hidden // self.heads)
        self.eps = float(config.get("rms_norm_eps", 1e-6))
        self.theta = float(config.get("rope_theta", 10000.0))

    def lin(self, x, name):
        y = x @ self.p[f"{name}.weight"].T
        b = self.p.get(f"{name}.bias")
        return y if b is None else y + b

    def logits(self, ids):
        p, B, T = self.p, ids.shape[0], ids.shape[1]
        h = p["model.embed_tokens.weight"][ids]
        inv = 1.0 / (self.theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float64) / self.head_dim))
        ang = torch.outer(torch.arange(T, dtype=torch.float64), inv)
        cos = torch.cat((ang, ang), -1).cos().to(h.dtype)
        sin = torch.cat((ang, ang), -1).sin().to(h.dtype)
        mask = torch.full((T, T), float("-inf"), dtype=h.dtype).triu(1)
        for i in range(self.layers):
            a = f"model.layers.{i}"
            x = rms_norm(h, p[f"{a}.input_layernorm.weight"], self.eps)
            q = self.lin(x, f"{a}.self_attn.q_proj").view(B, T, self.heads, self.head_dim).transpose(1, 2)
            k = self.lin(x, f"{a}.self_attn.k_proj").view(B, T, self.kv, self.head_dim).transpose(1, 2)
            v = self.lin(x, f"{a}.self_attn.v_proj").view(B, T, self.kv, self.head_dim).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            rep = self.heads // self.kv
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + mask, dim=-1)
            o = (att @ v).transpose(1, 2).reshape(B, T, self.heads * self.head_dim)
            h = h + self.lin(o, f"{a}.self_attn.o_proj")
            x = rms_norm(h, p[f"{a}.post_attention_layernorm.weight"], self.eps)
            g = self.lin(x, f"{a}.mlp.gate_proj")
            h = h + self.lin(torch.nn.functional.silu(g) * self.lin(x, f"{a}.mlp.up_proj"), f"{a}.mlp.down_proj")
        h = rms_norm(h, p["model.norm.weight"], self.eps)
        head = p.get("lm_head.weight", p["model.embed_tokens.weight"])
        return h @ head.T


def build_model(folder, args):
    """(forward(ids) -> logits, {tensor name: leaf tensor with requires_grad}) for the folder."""
    dtype = getattr(torch, args.dtype)
    if args.hf:
        from transformers import AutoModelForCausalLM  # optional: only with --hf
        model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=dtype).to(args.device)
        params = dict(model.named_parameters())
        return (lambda ids: model(input_ids=ids).logits), params
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    params = {}
    for name, v in read_folder(folder, np.float32, non_float="keep").items():
        if v.dtype == np.float32:
            params[name] = torch.tensor(v, dtype=dtype, device=args.device, requires_grad=True)
    return PlainLlama(config, params).logits, params


# ---------------------------------------------------------------- items and requests

def load_tokens(args, folder):
    if args.tokens:
        with open(args.tokens) as f:
            return [int(t) for t in json.load(f)]
    with open(args.text, encoding="utf-8") as f:
        text = f.read()
    try:
        from tokenizers import Tokenizer
        return Tokenizer.from_file(os.path.join(folder, "tokenizer.json")).encode(text).ids
    except ImportError:
        from transformers import AutoTokenizer
        return AutoTokenizer.from_pretrained(folder)(text)["input_ids"]


class Scorer:
    def __init__(self, args):
        self.args = args
        self.windows = None
        self.orders = {}

    def items(self, folder, limit, seed, offset, count):
        if self.windows is None:
            ids = load_tokens(self.args, folder)
            T = self.args.context
            n = len(ids) // T
            if n == 0:
                raise ValueError(f"the text has {len(ids)} tokens, fewer than one window of {T}")
            self.windows = torch.tensor(ids[: n * T], dtype=torch.long).view(n, T)
        n = len(self.windows) if limit is None else min(int(limit), len(self.windows))
        if offset is None and count is None:
            return list(range(n))
        if (n, seed) not in self.orders:
            self.orders[(n, seed)] = np.random.default_rng(0 if seed is None else int(seed)).permutation(n).tolist()
        offset = int(offset or 0)
        count = n - offset if count is None else int(count)
        if offset < 0 or count < 0 or offset + count > n:
            raise ValueError(f"items {offset}..{offset + count - 1} are outside the {n} windows")
        return self.orders[(n, seed)][offset:offset + count]

    def answer(self, req):
        idx = self.items(req["model"], req.get("limit"), req.get("seed"), req.get("offset"), req.get("count"))
        forward, params = build_model(req["model"], self.args)
        want = bool(req.get("gradient"))
        per_window, entropies = [], []
        with torch.set_grad_enabled(want):
            total = 0.0
            for s in range(0, len(idx), self.args.batch_size):
                ids = self.windows[idx[s:s + self.args.batch_size]].to(self.args.device)
                # float32 at least for the softmax (float64 with --dtype float64, as the tests use)
                logp = torch.log_softmax(forward(ids)[:, :-1].to(torch.promote_types(torch.float32, getattr(torch, self.args.dtype))), dim=-1)
                nll = -logp.gather(-1, ids[:, 1:, None])[..., 0].mean(dim=1)  # per window
                ent = -(logp.exp() * logp).sum(-1).mean(dim=1)
                per_window += nll.detach().cpu().tolist()
                entropies += ent.detach().cpu().tolist()
                if want:
                    part = (ent if req.get("loss") == "entropy" else nll).sum() / len(idx)
                    part.backward()  # gradients add up over batches: the loss is their sum
                    total += float(part)
        v = np.asarray(per_window, dtype=np.float64)
        out = {"nll": float(v.mean()) if len(v) else 0.0, "perplexity": float(math.exp(v.mean())) if len(v) else 0.0,
               "samples": len(idx), "partial": {"count": len(idx), "sum": float(v.sum()), "sum_sq": float((v * v).sum())}}
        if want:
            write_safetensors(req["gradient"], {n: (t.grad if t.grad is not None else torch.zeros_like(t)).detach().float().cpu().numpy() for n, t in params.items()})
            out["loss"] = total
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_request_args(ap)
    ap.add_argument("--text")
    ap.add_argument("--tokens")
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--hf", action="store_true")
    args = ap.parse_args()
    if not (args.text or args.tokens):
        raise SystemExit("give --text FILE or --tokens FILE")
    torch.manual_seed(0)
    scorer = Scorer(args)
    run(args, scorer.answer, ["gradient", "subset"])


if __name__ == "__main__":
    main()
