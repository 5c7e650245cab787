#!/usr/bin/env python3
"""A command evaluator for evomerge's residual-MLP classifier format, in numpy only.

It scores a checkpoint folder (config.json and model.safetensors, or a sharded folder with
model.safetensors.index.json; README, "Residual MLP classifier format") on one head: accuracy
over its items, and on request (evomerge's evaluator protocol, src/eval/protocol.ts):

- an item subset: `--offset O --count C` (persistent: the request's offset and count) scores
  positions O..O+C-1 of a fixed permutation of the items seeded by `--seed` (0 by default),
  the same for every request; every answer carries "partial": {"count", "sum", "sum_sq"} over
  the 0/1 correctness of the items it scored; `--limit N` keeps the first N items of the data file before
  the permutation (subset form `first` then scores the first N items of the file);
- the gradient: `--gradient PATH --loss supervised|entropy` writes dLoss/dtensor of every tensor
  as float32 safetensors (zeros for heads other than the scored one) and answers with "loss":
  the mean cross-entropy against the labels, or the mean Shannon entropy of the prediction
  (AdaMerging, Yang et al. ICLR 2024, eq. 2), over the items scored. Backpropagation is written
  out by hand below, in float64.

The forward is the format's (README; src/models/mlp.ts):
  h = input(x * input_scale + input_offset)
  h = h + fc2(act(fc1(norm_i(h))))            for each block i (pre-norm residual block)
  logits = heads.<head>(norm(h))
with every linear y = x W^T + b (W stored [out, in]) and LayerNorm with the biased variance.

Data: `--images F --labels F` (IDX files, as the vision zoos write them) or `--jsonl F`
(one object per line with an array under `--input-field`, default input, and an integer label
under `--label-field`, default label). Features are used as stored (the model's input_scale and
input_offset do the scaling).

One-shot:   mlp_numpy.py --model DIR --images F --labels F --head H [--offset O --count C]
            [--gradient PATH --loss L]; prints one JSON answer.
Persistent: mlp_numpy.py --serve --images F --labels F --head H; prints the hello line, then
            answers one request line from stdin per line (logs go to stderr).
"""
import argparse
import json
import math
import os
import struct

import numpy as np

from evomerge_evaluator import add_request_args, read_folder, run, write_safetensors


# ---------------------------------------------------------------- files

def read_idx(path):
    """An IDX array (magic 0 0 type ndim, big-endian dims, big-endian values) as float64 / int64."""
    with open(path, "rb") as f:
        b = f.read()
    if len(b) < 4 or b[0] != 0 or b[1] != 0:
        raise ValueError(f"{path} is not an IDX file")
    kind, ndim = b[2], b[3]
    dims = struct.unpack(">" + "I" * ndim, b[4:4 + 4 * ndim])
    types = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if kind not in types:
        raise ValueError(f"{path} has IDX type 0x{kind:02x}")
    data = np.frombuffer(b, dtype=types[kind], offset=4 + 4 * ndim, count=int(np.prod(dims)))
    return data.reshape(dims)


def load_data(args):
    if args.jsonl:
        xs, ys = [], []
        with open(args.jsonl) as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    xs.append(row[args.input_field])
                    ys.append(int(row[args.label_field]))
        return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.int64)
    if not (args.images and args.labels):
        raise SystemExit("give --jsonl, or --images and --labels")
    x = read_idx(args.images).astype(np.float64)
    return x.reshape(x.shape[0], -1), read_idx(args.labels).astype(np.int64).reshape(-1)


def load_model(folder):
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    tensors = read_folder(folder, np.float64)
    return config, tensors


# ---------------------------------------------------------------- the model and its backward

_erf = np.vectorize(math.erf, otypes=[np.float64])


def act(name, a):
    if name == "relu":
        return np.maximum(a, 0.0)
    if name == "tanh":
        return np.tanh(a)
    if name == "silu":
        return a / (1.0 + np.exp(-a))
    if name == "gelu":  # exact gelu, x Phi(x) (Hendrycks and Gimpel 2016)
        return 0.5 * a * (1.0 + _erf(a / math.sqrt(2.0)))
    raise ValueError(f"activation {name}")


def act_grad(name, a):
    """d act(a) / da."""
    if name == "relu":
        return (a > 0).astype(np.float64)
    if name == "tanh":
        return 1.0 - np.tanh(a) ** 2
    if name == "silu":
        s = 1.0 / (1.0 + np.exp(-a))
        return s + a * s * (1.0 - s)
    if name == "gelu":  # Phi(a) + a phi(a)
        return 0.5 * (1.0 + _erf(a / math.sqrt(2.0))) + a * np.exp(-0.5 * a * a) / math.sqrt(2.0 * math.pi)
    raise ValueError(f"activation {name}")


def layernorm(h, g, b, eps):
    mu = h.mean(axis=1, keepdims=True)
    var = ((h - mu) ** 2).mean(axis=1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = (h - mu) * rstd
    return xhat * g + b, (xhat, rstd)


def layernorm_back(dy, g, cache):
    """LayerNorm's backward: dg = sum dy xhat, db = sum dy, dx = rstd (dxhat - mean dxhat - xhat mean(dxhat xhat))."""
    xhat, rstd = cache
    dxhat = dy * g
    dx = rstd * (dxhat - dxhat.mean(axis=1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=1, keepdims=True))
    return dx, (dy * xhat).sum(axis=0), dy.sum(axis=0)


class Mlp:
    def __init__(self, config, w):
        self.c = config
        self.w = w
        self.blocks = int(config["num_blocks"])
        self.act = config.get("activation", "relu")
        self.norm = config.get("norm", "layernorm") == "layernorm"
        self.eps = float(config.get("layer_norm_eps", 1e-5))
        self.scale = float(config.get("input_scale", 1.0))
        self.offset = float(config.get("input_offset", 0.0))

    def forward(self, x, head):
        w, cache = self.w, {}
        x0 = x * self.scale + self.offset
        h = x0 @ w["input.weight"].T + w["input.bias"]
        cache["x0"] = x0
        for i in range(self.blocks):
            p = f"blocks.{i}"
            if self.norm:
                n, ln = layernorm(h, w[f"{p}.norm.weight"], w[f"{p}.norm.bias"], self.eps)
            else:
                n, ln = h, None
            a = n @ w[f"{p}.fc1.weight"].T + w[f"{p}.fc1.bias"]
            z = act(self.act, a)
            h = h + z @ w[f"{p}.fc2.weight"].T + w[f"{p}.fc2.bias"]
            cache[i] = (n, ln, a, z)
        f, lnf = layernorm(h, w["norm.weight"], w["norm.bias"], self.eps) if self.norm else (h, None)
        cache["f"], cache["lnf"] = f, lnf
        return f @ w[f"heads.{head}.weight"].T + w[f"heads.{head}.bias"], cache

    def backward(self, dlogits, cache, head):
        """dLoss/dtensor for every tensor, from dLoss/dlogits; heads other than `head` get zeros."""
        w = self.w
        g = {k: np.zeros_like(v) for k, v in w.items()}
        f = cache["f"]
        g[f"heads.{head}.weight"] = dlogits.T @ f
        g[f"heads.{head}.bias"] = dlogits.sum(axis=0)
        dh = dlogits @ w[f"heads.{head}.weight"]
        if self.norm:
            dh, g["norm.weight"], g["norm.bias"] = layernorm_back(dh, w["norm.weight"], cache["lnf"])
        for i in reversed(range(self.blocks)):
            p = f"blocks.{i}"
            n, ln, a, z = cache[i]
            g[f"{p}.fc2.weight"] = dh.T @ z
            g[f"{p}.fc2.bias"] = dh.sum(axis=0)
            da = (dh @ w[f"{p}.fc2.weight"]) * act_grad(self.act, a)
            g[f"{p}.fc1.weight"] = da.T @ n
            g[f"{p}.fc1.bias"] = da.sum(axis=0)
            dn = da @ w[f"{p}.fc1.weight"]
            if self.norm:
                dn, g[f"{p}.norm.weight"], g[f"{p}.norm.bias"] = layernorm_back(dn, w[f"{p}.norm.weight"], ln)
            dh = dh + dn  # the residual stream carries dh past the block
        g["input.weight"] = dh.T @ cache["x0"]
        g["input.bias"] = dh.sum(axis=0)
        return g


def loss_and_dlogits(logits, y, kind):
    """Mean cross-entropy (or mean prediction entropy) and its derivative with respect to the logits."""
    m = logits.max(axis=1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    p = np.exp(logp)
    b = logits.shape[0]
    if kind == "entropy":
        h = -(p * logp).sum(axis=1)
        # dH/dz_j = -p_j (log p_j + H)
        return h.mean(), -p * (logp + h[:, None]) / b
    onehot = np.zeros_like(p)
    onehot[np.arange(b), y] = 1.0
    return -(logp[np.arange(b), y]).mean(), (p - onehot) / b


# ---------------------------------------------------------------- requests

class Scorer:
    def __init__(self, args):
        self.args = args
        self.x, self.y = load_data(args)
        self.orders = {}

    def items(self, limit, seed, offset, count):
        n = len(self.y) if limit is None else min(int(limit), len(self.y))
        if offset is None and count is None:
            return np.arange(n)
        key = (n, seed)
        if key not in self.orders:
            self.orders[key] = np.random.default_rng(0 if seed is None else int(seed)).permutation(n)
        offset = int(offset or 0)
        count = n - offset if count is None else int(count)
        if offset < 0 or count < 0 or offset + count > n:
            raise ValueError(f"items {offset}..{offset + count - 1} are outside the {n} items")
        return self.orders[key][offset:offset + count]

    def answer(self, req):
        config, tensors = load_model(req["model"])
        head = self.args.head or config["heads"][0]["name"]
        if f"heads.{head}.weight" not in tensors:
            raise ValueError(f"the model has no head {head}")
        model = Mlp(config, tensors)
        idx = self.items(req.get("limit"), req.get("seed"), req.get("offset"), req.get("count"))
        logits, cache = model.forward(self.x[idx], head)
        hits = (logits.argmax(axis=1) == self.y[idx]).astype(np.float64)
        out = {"accuracy": float(hits.mean()) if len(idx) else 0.0, "samples": int(len(idx))}
        # the sums multi-fidelity adds over rungs (correctness is 0/1, so sum_sq = sum)
        out["partial"] = {"count": int(len(idx)), "sum": float(hits.sum()), "sum_sq": float(hits.sum())}
        if req.get("gradient"):
            loss, dlogits = loss_and_dlogits(logits, self.y[idx], req.get("loss") or "supervised")
            grads = model.backward(dlogits, cache, head)
            write_safetensors(req["gradient"], {k: v.astype(np.float32) for k, v in grads.items()})
            out["loss"] = float(loss)
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_request_args(ap)
    ap.add_argument("--images")
    ap.add_argument("--labels")
    ap.add_argument("--jsonl")
    ap.add_argument("--input-field", default="input")
    ap.add_argument("--label-field", default="label")
    ap.add_argument("--head")
    args = ap.parse_args()
    scorer = Scorer(args)
    run(args, scorer.answer, ["gradient", "subset"])


if __name__ == "__main__":
    main()
