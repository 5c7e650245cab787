#!/usr/bin/env python3
"""
A reference for evomerge's mergekit parity tests: merges computed in numpy (float32), written
from a reading of mergekit's code, not from evomerge's: the config grammar and planning
(mergekit/config.py `evaluate_setting`, `ConfigReader.parameter`; mergekit/plan.py
`normalize_config`, `plan_module`, `plan_slice`, `plan_tensor`), the methods
(mergekit/merge_methods/*.py, mergekit/sparsify.py), embedding rectification
(mergekit/merge_methods/rectify_embed.py) and tokenizer merging (mergekit/tokenizer/build.py,
mergekit/tokenizer/embed.py), for Llama-shaped folders of float32 safetensors.

Input (stdin, JSON): {"jobs": [{"id", "config": <a mergekit config with local paths>, "out": <an
evomerge output folder written in float32>}]}. Output (stdout, JSON): per job the largest
absolute difference between each reference tensor and evomerge's, and the tensor names either
side lacks. Random methods (dare_*, della*) have no reference (mergekit's masks come from
torch's generator): such jobs report "skipped".
"""
import json
import math
import os
import struct
import sys

import numpy as np

F32 = np.float32

# ----------------------------------------------------------------------------------------------
# safetensors (https://github.com/huggingface/safetensors: 8-byte little-endian header length,
# a JSON header, then the data)


def read_safetensors_file(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[a:b]
        dt = info["dtype"]
        if dt == "F32":
            arr = np.frombuffer(raw, dtype="<f4")
        elif dt == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(F32)
        elif dt == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(F32)
        else:
            continue
        out[name] = arr.reshape(info["shape"]).astype(F32)
    return out


def read_folder(folder):
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        files = sorted(set(json.load(open(index))["weight_map"].values()))
    else:
        files = [f for f in os.listdir(folder) if f.endswith(".safetensors")]
    out = {}
    for f in files:
        out.update(read_safetensors_file(os.path.join(folder, f)))
    return out


_cache = {}


def tensors_of(model):
    if model not in _cache:
        _cache[model] = read_folder(model)
    return _cache[model]


def config_of(model):
    return json.load(open(os.path.join(model, "config.json")))


# ----------------------------------------------------------------------------------------------
# settings (mergekit/config.py)


def evaluate_setting(tensor_name, setting, t):
    if isinstance(setting, (bool, int, float, str)):
        return setting
    if isinstance(setting, list):
        if all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in setting):
            scaled = t * (len(setting) - 1)
            i0 = int(scaled)
            i1 = min(len(setting) - 1, i0 + 1)
            frac = scaled - i0
            return (1 - frac) * setting[i0] + frac * setting[i1]
        if all(isinstance(e, (bool, int, float, str)) for e in setting):
            return setting[int(t * (len(setting) - 1))]
        for cond in setting:
            f = cond.get("filter")
            if f is None or f == "*" or (tensor_name and f in tensor_name):
                return evaluate_setting(tensor_name, cond["value"], t)
        return None
    raise RuntimeError("unexpected setting %r" % (setting,))


def lookup(cfg, out_slice, tensor_name, t, name, model=None, default=None, required=False):
    """ConfigReader.parameter: the source's own, then the slice's, then the top level."""
    if out_slice is not None:
        if model is not None:
            for s in out_slice["sources"]:
                p = s.get("parameters") or {}
                if s["model"] == model and name in p:
                    v = evaluate_setting(tensor_name, p[name], t)
                    if v is not None:
                        return v
        p = out_slice.get("parameters") or {}
        if name in p:
            v = evaluate_setting(tensor_name, p[name], t)
            if v is not None:
                return v
    p = cfg.get("parameters") or {}
    if name in p:
        v = evaluate_setting(tensor_name, p[name], t)
        if v is not None:
            return v
    if required:
        raise RuntimeError("missing parameter %s for %s" % (name, tensor_name))
    return default


# method -> (global parameters {name: default}, per-model parameters {name: default}); REQ: required
REQ = object()
GTA_NORMALIZE = {"task_arithmetic": False, "ties": True, "breadcrumbs": False, "breadcrumbs_ties": False, "dare_ties": False, "dare_linear": False, "della": True, "della_linear": False}
METHODS = {
    "linear": ({"normalize": True}, {"weight": REQ}),
    "slerp": ({"t": REQ}, {}),
    "nuslerp": ({"nuslerp_row_wise": False, "nuslerp_flatten": True}, {"weight": REQ}),
    "multislerp": ({"normalize_weights": True, "eps": 1e-8}, {"weight": REQ}),
    "karcher": ({"max_iter": 10, "tol": 1e-5}, {}),
    "model_stock": ({"filter_wise": False}, {}),
    "nearswap": ({"t": REQ}, {}),
    "arcee_fusion": ({}, {}),
    "sce": ({"int8_mask": False, "select_topk": 1.0}, {}),
    "passthrough": ({}, {"scale": None}),
    "ram": ({"epsilon": 1e-5}, {}),
    "ramplus_tl": ({"r": 0.1, "alpha": 0.2, "epsilon": 1e-5}, {}),
}
for _m, _n in GTA_NORMALIZE.items():
    per = {"weight": REQ, "density": 1.0}
    if _m.startswith("breadcrumbs"):
        per["gamma"] = 0.01
    METHODS[_m] = ({"int8_mask": False, "normalize": _n, "rescale": False, "lambda": 1.0}, per)

RANDOM = {"dare_ties", "dare_linear", "della", "della_linear"}

LAYER_SUFFIXES = [
    "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
    "self_attn.o_proj.weight", "post_attention_layernorm.weight", "mlp.up_proj.weight", "mlp.gate_proj.weight",
    "mlp.down_proj.weight",
]
EMBEDS = {"model.embed_tokens.weight", "lm_head.weight"}

# ----------------------------------------------------------------------------------------------
# planning (mergekit/plan.py)


def normalize_config(cfg):
    base = cfg.get("base_model")
    if cfg.get("models"):
        srcs = []
        included = False
        for m in cfg["models"]:
            if base and m["model"] == base:
                included = True
            srcs.append({"model": m["model"], "layer_range": [0, config_of(m["model"])["num_hidden_layers"]], "parameters": m.get("parameters")})
        if base and not included:
            srcs.append({"model": base, "layer_range": [0, config_of(base)["num_hidden_layers"]]})
        return [{"sources": srcs}]
    return cfg["slices"]


def plan(cfg):
    """(output name, slice, [(model, input name)], t) for every tensor, in mergekit's order."""
    slices = normalize_config(cfg)
    tasks = []
    first = slices[0]
    tasks.append(("model.embed_tokens.weight", first, [(s["model"], "model.embed_tokens.weight") for s in first["sources"]], 0.0))
    cur = 0
    for sl in slices:
        n = sl["sources"][0]["layer_range"][1] - sl["sources"][0]["layer_range"][0]
        for idx in range(n):
            t = idx / (n - 1) if n > 1 else 1.0
            for suf in LAYER_SUFFIXES:
                ins = [(s["model"], "model.layers.%d.%s" % (s["layer_range"][0] + idx, suf)) for s in sl["sources"]]
                tasks.append(("model.layers.%d.%s" % (cur, suf), sl, ins, t))
            cur += 1
    last = slices[-1]
    # plan_module pairs [weight] * len(first slice's sources) with the last slice's models: zip
    # keeps the shorter; both ends read at t = 0
    for name in ["model.norm.weight", "lm_head.weight"]:
        ins = [(s["model"], name) for s in last["sources"]][: len(first["sources"])]
        tasks.append((name, last, ins, 0.0))
    return tasks


# ----------------------------------------------------------------------------------------------
# tokenizers (mergekit/tokenizer/build.py, embed.py) over tokenizer.json files


class Tok:
    def __init__(self, folder):
        self.folder = folder
        j = json.load(open(os.path.join(folder, "tokenizer.json")))
        v = j["model"]["vocab"]
        self.model = dict((e[0], i) for i, e in enumerate(v)) if isinstance(v, list) else dict(v)
        self.btype = j["model"]["type"]
        self.added = {}  # id -> dict
        for a in j.get("added_tokens", []):
            self.added[a["id"]] = dict(a)

    def vocab(self):
        v = dict(self.model)
        for a in self.added.values():
            v[a["content"]] = a["id"]
        return v

    def copy(self):
        c = Tok.__new__(Tok)
        c.folder, c.model, c.btype = self.folder, dict(self.model), self.btype
        c.added = {k: dict(v) for k, v in self.added.items()}
        return c

    def add(self, content, props=None):
        # the tokenizers library's add_tokens: a content already added is skipped (AddedToken
        # equality is by content); a vocabulary token keeps its id; a new one gets the next id
        if content == "" or any(a["content"] == content for a in self.added.values()):
            return
        if content in self.model:
            i = self.model[content]
        elif self.added:
            mx = max(self.added)
            i = mx + 1 if mx >= len(self.model) else len(self.model)
        else:
            i = len(self.model)
        p = {"single_word": False, "lstrip": False, "rstrip": False, "normalized": True, "special": False}
        if props:
            p.update({k: props[k] for k in p if k in props})
        p.update({"id": i, "content": content})
        self.added[i] = p

    def strip(self, vocab_size):
        unused = [t for t, i in self.vocab().items() if i >= vocab_size]
        if not unused:
            return
        assert self.btype == "BPE"
        self.added = {i: a for i, a in self.added.items() if i < vocab_size}
        for t in unused:
            self.model.pop(t, None)


def vocab_size_of(model, tok):
    return config_of(model).get("vocab_size") or len(tok.vocab())


def referenced(cfg):
    out = []
    if cfg.get("base_model"):
        out.append(cfg["base_model"])
    for m in cfg.get("models") or []:
        if m["model"] not in out:
            out.append(m["model"])
    for sl in cfg.get("slices") or []:
        for s in sl["sources"]:
            if s["model"] not in out:
                out.append(s["model"])
    return out


def build_tokenizer(cfg):
    tcfg = cfg.get("tokenizer")
    source = tcfg.get("source", "union") if tcfg else cfg.get("tokenizer_source")
    tokens = (tcfg or {}).get("tokens") or {}
    models = referenced(cfg)
    base = cfg.get("base_model") or models[0]
    btok = Tok(base)
    btok.strip(vocab_size_of(base, btok))
    toks = {base: btok}
    for m in models:
        if m != base and os.path.exists(os.path.join(m, "tokenizer.json")):
            toks[m] = Tok(m)
    if source == "base":
        out = btok.copy()
    elif source == "union":
        plain, added = [], {}
        for m in [base] + [x for x in models if x != base and x in toks]:
            t = toks[m]
            vs = config_of(m).get("vocab_size") or len(t.model)
            for tok, i in sorted(t.vocab().items(), key=lambda e: e[1]):
                if i < vs and tok not in plain:
                    plain.append(tok)
            for i in sorted(t.added):
                a = t.added[i]
                if i < vs and a["content"] not in added:
                    added[a["content"]] = a
        out = btok.copy()
        bv = btok.vocab()
        for tok in plain:
            if tok not in added and tok not in bv:
                out.add(tok)
        for a in added.values():
            out.add(a["content"], a)
    else:
        out = Tok(source)
    for t in tokens:
        out.add(t)
    vocab = out.vocab()
    perms = {}
    for m in models:
        mv = (toks.get(m) or btok).vocab()
        vs = config_of(m).get("vocab_size") or len(mv)
        p = {}
        for tok, i in vocab.items():
            j = mv.get(tok, -1)
            p[i] = j if j < vs else -1
        perms[m] = p
    pad = (tcfg or {}).get("pad_to_multiple_of")
    rows = len(vocab)
    if pad and rows % pad:
        rows = (rows // pad + 1) * pad
    return {"vocab": vocab, "perms": perms, "tokens": tokens, "base": base, "rows": rows, "orig": {m: t.vocab() for m, t in toks.items()}, "out": out}


def permuted_embeddings(info, tensors):
    """mergekit/tokenizer/embed.py PermutedEmbeddings.execute over {model: array}."""
    vocab, perms, base = info["vocab"], info["perms"], info["base"]
    models = list(tensors.keys())
    cols = tensors[models[0]].shape[1]
    cfgs = {k: dict(v) for k, v in info["tokens"].items()}
    average = set()
    for tok, i in vocab.items():
        if tok in cfgs:
            continue
        has = [perms[m][i] >= 0 for m in models]
        if sum(has) == 1:
            cfgs[tok] = {"source": models[has.index(True)]}
        elif sum(has) == 0:
            cfgs[tok] = {"source": {"kind": "zero"}}
        elif base in tensors and perms[base][i] >= 0:
            cfgs[tok] = {"source": base}
        else:
            average.add(tok)
    defaults = {}
    for tok, i in vocab.items():
        e = np.zeros(cols, dtype=F32)
        if tok in average:
            c = 0
            for m in models:
                if perms[m][i] >= 0:
                    e = (e + tensors[m][perms[m][i]]).astype(F32)
                    c += 1
            e = (e / F32(c)).astype(F32)
        else:
            s = cfgs[tok]["source"]
            if isinstance(s, dict) and s.get("kind") == "zero":
                pass
            elif isinstance(s, dict):
                row = s.get("token_id")
                if row is None:
                    row = info["orig"][s["model"]][s["token"]]
                e = tensors[s["model"]][row]
            else:
                if perms[s][i] < 0:
                    continue
                e = tensors[s][perms[s][i]]
        defaults[tok] = e
    out = {}
    for m in models:
        new = np.zeros((info["rows"], cols), dtype=F32)
        for tok, i in vocab.items():
            force = info["tokens"].get(tok, {}).get("force", False)
            if perms[m][i] >= 0 and not force:
                new[i] = tensors[m][perms[m][i]]
            elif tok in defaults:
                new[i] = defaults[tok]
        if info["rows"] > len(vocab):
            new[len(vocab):] = new[: len(vocab)].mean(axis=0, dtype=F32)
        out[m] = new
    return out


def rectify(tensors):
    """mergekit/merge_methods/rectify_embed.py: the largest common submatrix."""
    r = min(t.shape[0] for t in tensors)
    c = min(t.shape[1] for t in tensors)
    return [t[:r, :c] for t in tensors]


# ----------------------------------------------------------------------------------------------
# methods (mergekit/merge_methods/*.py, mergekit/sparsify.py), float32


def np_slerp(t, v0, v1, dot_threshold=0.9995, eps=1e-8):
    c0, c1 = v0.copy(), v1.copy()
    n0 = np.linalg.norm(v0)
    n1 = np.linalg.norm(v1)
    u0 = v0 / n0 if n0 > eps else v0
    u1 = v1 / n1 if n1 > eps else v1
    dot = np.sum(u0 * u1)
    if abs(dot) > dot_threshold:
        return (1 - t) * c0 + t * c1
    th0 = np.arccos(dot)
    s0 = np.sin(th0 - th0 * t) / np.sin(th0)
    s1 = np.sin(th0 * t) / np.sin(th0)
    return (s0 * c0 + s1 * c1).astype(F32)


def np_nuslerp(t, v0, v1, dim, flatten, eps=1e-8):
    shape = v0.shape
    if flatten:
        v0, v1 = v0.reshape(-1), v1.reshape(-1)
    elif dim != -1:
        v0, v1 = np.swapaxes(v0, dim, -1), np.swapaxes(v1, dim, -1)
    nz = lambda x: x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), F32(1e-7))
    cos = np.sum(nz(v0) * nz(v1), axis=-1, keepdims=True)
    th = np.arccos(np.clip(cos, -1, 1))
    s = np.sin(th)
    res = (np.sin((1 - t) * th) * v0 + np.sin(t * th) * v1) / s
    col = np.abs(s) < eps
    lin = (1 - t) * v0 + t * v1
    res = np.where(col, lin, res)
    if dim != -1 and not flatten:
        res = np.swapaxes(res, dim, -1)
    return res.reshape(shape).astype(F32)


def np_multislerp(xs, weights, base, normalize_weights, eps):
    x = np.stack(xs).astype(F32)
    if base is not None:
        x = x - base
    flat = x.reshape(x.shape[0], -1)
    w = np.array(weights, dtype=F32)
    if normalize_weights:
        w = w / w.sum()
    norms = np.linalg.norm(flat, axis=-1, keepdims=True)
    unit = flat / (norms + F32(eps))
    mean = (unit * w[:, None]).sum(0)
    mn = np.linalg.norm(mean)
    mean = mean / mn
    dots = (unit * mean).sum(-1, keepdims=True)
    tang = unit - dots * mean
    tr = (tang * w[:, None]).sum(0)
    tn = np.linalg.norm(tr) + F32(eps)
    res = mean * np.cos(tn) + tr * (np.sin(tn) / tn)
    res = res * (norms[:, 0] * w).sum()
    res = res.reshape(x.shape[1:])
    if base is not None:
        res = res + base
    return res.astype(F32)


def np_karcher(xs, max_iter, tol):
    if len(xs) == 1:
        return xs[0]
    alphas = [1.0 / len(xs)] * len(xs)
    norms, units = [], []
    for x in xs:
        n = float(np.linalg.norm(x))
        norms.append(n)
        units.append(np.zeros_like(x) if n == 0 else (x / F32(n)).astype(F32))
    valid = [i for i, n in enumerate(norms) if n > tol]
    if not valid:
        return np.zeros_like(xs[0])
    va = [alphas[i] for i in valid]
    na = [a / sum(va) for a in va]
    vu = [units[i] for i in valid]
    mean = np.zeros_like(vu[0])
    for a, u in zip(na, vu):
        mean = (mean + F32(a) * u).astype(F32)
    mn = float(np.linalg.norm(mean))
    mean = vu[0].copy() if mn < tol else (mean / F32(mn)).astype(F32)
    for _ in range(max_iter):
        tan = np.zeros_like(mean)
        for a, u in zip(na, vu):
            d = F32(np.clip(np.dot(mean.ravel(), u.ravel()), -1, 1))
            th = np.arccos(d)
            if th < tol:
                continue
            tan = (tan + F32(a) * (th / np.sin(th)) * (u - d * mean)).astype(F32)
        tnorm = np.linalg.norm(tan)
        if tnorm < tol:
            break
        mean = (np.cos(tnorm) * mean + np.sin(tnorm) * (tan / tnorm)).astype(F32)
        un = np.linalg.norm(mean)
        if un > tol:
            mean = (mean / un).astype(F32)
    scale = sum(a * n for a, n in zip(alphas, norms))
    return (F32(scale) * mean).astype(F32)


def magnitude(d, density):
    if density >= 1:
        return d
    k = int(density * d.size)
    order = np.argsort(-np.abs(d).ravel(), kind="stable")[:k]
    m = np.zeros(d.size, dtype=F32)
    m[order] = 1
    return d * m.reshape(d.shape)


def magnitude_outliers(d, density, gamma):
    if density >= 1:
        return d
    n = d.size
    target = int(density * n)
    ntop = int(gamma * n)
    nbot = n - target - ntop
    if nbot < 0:
        ntop += nbot
        nbot = 0
    idx = np.argsort(np.abs(d).ravel(), kind="stable")
    m = np.zeros(n, dtype=F32)
    m[idx[nbot:n - ntop]] = 1
    return d * m.reshape(d.shape)


def gta(method, base, xs, per, g):
    sparse = {"ties": "magnitude", "breadcrumbs": "outliers", "breadcrumbs_ties": "outliers"}.get(method)
    consensus = method in ("ties", "breadcrumbs_ties")
    if base.ndim == 2:
        xs = [x[: base.shape[0], : base.shape[1]] for x in xs]
    deltas = []
    for x, p in zip(xs, per):
        d = (x - base).astype(F32)
        if sparse == "magnitude":
            d = magnitude(d, p["density"])
        elif sparse == "outliers":
            d = magnitude_outliers(d, p["density"], p["gamma"])
        deltas.append(d)
    if not deltas:
        return base
    D = np.stack(deltas)
    W = np.array([p["weight"] for p in per], dtype=F32).reshape((-1,) + (1,) * base.ndim)
    WD = D * W
    if consensus:
        maj = np.where(WD.sum(0) >= 0, F32(1), F32(-1))
        mask = (np.sign(WD) == maj).astype(F32)
        mixed = (WD * mask).sum(0)
        div = (W * mask).sum(0)
        div[div == 0] = 1
    else:
        mixed = WD.sum(0)
        div = np.broadcast_to(W.sum(0), mixed.shape).copy()
        div[np.abs(div) < 1e-8] = 1
    if g["normalize"]:
        mixed = mixed / div
    mixed = mixed * F32(g["lambda"])
    return (base + mixed).astype(F32)


def model_stock(base, xs, filter_wise):
    shape = base.shape
    if filter_wise:
        w0 = base[None, :] if base.ndim == 1 else base
        ws = [x[None, :] if x.ndim == 1 else x for x in xs]
    else:
        w0 = base.ravel()
        ws = [x.ravel() for x in xs]
    off = [w - w0 for w in ws]
    cs = []
    for i in range(len(off)):
        for j in range(i + 1, len(off)):
            npd = np.linalg.norm(off[i], axis=-1) * np.linalg.norm(off[j], axis=-1)
            cs.append(np.clip((off[i] * off[j]).sum(-1) / np.maximum(npd, F32(1e-6)), -1, 1))
    c = np.stack(cs).mean(0)[..., None]
    n = len(ws)
    t = (n * c) / (1 + (n - 1) * c)
    avg = sum(ws) / F32(n)
    return (t * avg + (1 - t) * w0).reshape(shape).astype(F32)


def nearswap(t, v0, v1):
    with np.errstate(divide="ignore", invalid="ignore"):
        w = F32(t) / np.abs(v0 - v1)
    w = np.nan_to_num(w, nan=1.0, posinf=1.0, neginf=1.0)
    w = np.clip(w, 0, 1)
    return (w * v1 + (1 - w) * v0).astype(F32)


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def arcee_fusion(base, x):
    diff = np.abs(x - base)
    p = softmax(x) + F32(1e-8)
    q = softmax(base) + F32(1e-8)
    kl = np.sum(p * np.log(p / q), axis=-1)
    imp = (diff * np.expand_dims(kl, -1)).astype(F32)
    s = np.sort(imp.ravel())
    q1, med, q3 = (s[int(F32(f) * F32(s.size - 1))] for f in (0.25, 0.5, 0.75))
    thr = med + F32(1.5) * (q3 - q1)
    m = (imp >= thr).astype(F32)
    return (base + (x - base) * m).astype(F32)


def sce(base, xs, topk):
    D = np.stack([(x - base).astype(F32) for x in xs])
    if topk < 1:
        var = D.var(axis=0)
        k = int(abs(topk) * np.count_nonzero(var))
        mask = np.zeros(var.size, dtype=F32)
        if k > 0:
            mask[np.argsort(-np.abs(var).ravel(), kind="stable")[:k]] = 1
        D = D * mask.reshape(var.shape)[None]
    w = [float(np.sum(d.astype(np.float64) ** 2)) / d.size for d in D]
    s = sum(w)
    w = [1.0 / len(w)] * len(w) if s == 0 else [x / s for x in w]
    W = np.array(w, dtype=F32).reshape((-1,) + (1,) * base.ndim)
    maj = np.where(D.sum(0) >= 0, F32(1), F32(-1))
    e = (np.sign(D) == maj).astype(F32)
    ew = W * e
    mixed = (D * ew).sum(0)
    div = ew.sum(0)
    div[div == 0] = 1
    return (base + mixed / div).astype(F32)


def ram(base, xs, g, plus):
    tv = np.stack([(x - base).astype(F32) for x in xs]).reshape(len(xs), -1)
    nz = np.abs(tv) > g["epsilon"]
    cnt = nz.sum(0, keepdims=True)
    over = cnt > 1
    uniq = cnt == 1
    tz = tv * nz
    lam = np.ones((len(xs), 1), dtype=F32)
    if plus:
        shared = (nz & over).sum(1).astype(F32)
        unique = (uniq & nz).sum(1).astype(F32)
        rho = shared / np.maximum(unique, F32(g["epsilon"]))
        lam = (F32(1) + F32(g["r"]) * np.clip(rho, 0, F32(g["alpha"]))).astype(F32)[:, None]
    merged = ((tz * uniq * lam) + (tz * over / np.maximum(cnt, 1).astype(F32))).sum(0)
    return (base + merged.reshape(base.shape)).astype(F32)


def merge_tensor(method, g, inputs, base_model, per_model):
    """inputs: [(model, array)] in slice order; returns the merged array (float32)."""
    arrs = dict()
    order = []
    for m, a in inputs:
        if m not in arrs:
            arrs[m] = a
            order.append(m)
    others = [m for m in order if m != base_model]
    base = arrs.get(base_model)
    if method == "passthrough":
        m = order[0]
        s = per_model[m].get("scale")
        return arrs[m] if s is None else (arrs[m] * F32(s)).astype(F32)
    if method == "linear":
        ts = rectify([arrs[m] for m in order]) if arrs[order[0]].ndim == 2 else [arrs[m] for m in order]
        w = np.array([per_model[m]["weight"] for m in order], dtype=F32).reshape((-1,) + (1,) * ts[0].ndim)
        res = (w * np.stack(ts)).sum(0)
        return (res / w.sum(0)).astype(F32) if g["normalize"] else res.astype(F32)
    if method in ("slerp", "nearswap", "arcee_fusion"):
        if len(order) == 1:
            return arrs[order[0]]
        a, b = base, arrs[others[0]]
        if a.ndim == 2:
            a, b = rectify([a, b])
        if method == "slerp":
            return np_slerp(g["t"], a, b)
        if method == "nearswap":
            return nearswap(g["t"], a, b)
        return arcee_fusion(a, b)
    if method == "nuslerp":
        ws = [per_model[m]["weight"] for m in others]
        t = 0.5 if abs(sum(ws)) < 1e-6 else ws[1] / sum(ws)
        dim = 0 if g["nuslerp_row_wise"] else -1
        if base is not None:
            return (base + np_nuslerp(t, arrs[others[0]] - base, arrs[others[1]] - base, dim, g["nuslerp_flatten"])).astype(F32)
        return np_nuslerp(t, arrs[others[0]], arrs[others[1]], dim, g["nuslerp_flatten"])
    if method == "multislerp":
        return np_multislerp([arrs[m] for m in others], [per_model[m]["weight"] for m in others], base, g["normalize_weights"], g["eps"])
    if method == "karcher":
        return np_karcher([arrs[m] for m in order], int(g["max_iter"]), g["tol"])
    if method == "model_stock":
        return model_stock(base, [arrs[m] for m in others], g["filter_wise"])
    if method == "sce":
        return sce(base, [arrs[m] for m in others], g["select_topk"])
    if method in ("ram", "ramplus_tl"):
        return ram(base, [arrs[m] for m in others], g, method == "ramplus_tl")
    if method in GTA_NORMALIZE:
        return gta(method, base, [arrs[m] for m in others], [per_model[m] for m in others], g)
    raise RuntimeError("no reference for %s" % method)


def reference(cfg):
    method = cfg["merge_method"]
    gspec, pspec = METHODS[method]
    tok = build_tokenizer(cfg) if (cfg.get("tokenizer") or cfg.get("tokenizer_source")) else None
    out = {}
    for name, sl, ins, t in plan(cfg):
        base_model = sl.get("base_model") or cfg.get("base_model")
        g = {k: lookup(cfg, sl, name, t, k, None, None if d is REQ else d, d is REQ) for k, d in gspec.items()}
        per = {}
        for m, inner in ins:
            per[m] = {k: lookup(cfg, sl, inner, t, k, m, None if d is REQ else d, d is REQ and m != base_model) for k, d in pspec.items()}
        arrays = [(m, tensors_of(m)[inner]) for m, inner in ins]
        if tok is not None and name in EMBEDS:
            d = {}
            for m, a in arrays:
                d.setdefault(m, a)
            p = permuted_embeddings(tok, d)
            arrays = [(m, p[m]) for m, _ in arrays]
        out[name] = merge_tensor(method, g, arrays, base_model, per)
    return out, tok


def main():
    jobs = json.load(sys.stdin)["jobs"]
    results = []
    for job in jobs:
        cfg = job["config"]
        if cfg["merge_method"] in RANDOM:
            results.append({"id": job["id"], "skipped": "random masks (torch's generator)"})
            continue
        ref, tok = reference(cfg)
        got = read_folder(job["out"])
        diffs = {}
        for name, r in ref.items():
            g = got.get(name)
            if g is None or g.shape != r.shape:
                diffs[name] = None
                continue
            diffs[name] = float(np.max(np.abs(g.astype(np.float64) - r.astype(np.float64)))) if r.size else 0.0
        res = {
            "id": job["id"],
            "max": max([d for d in diffs.values() if d is not None] or [0.0]),
            "worst": max(diffs, key=lambda k: -1 if diffs[k] is None else diffs[k]) if diffs else None,
            "tensors": len(ref),
            "mismatched": sorted(k for k, d in diffs.items() if d is None),
            "missing": sorted(set(ref) - set(got)),
            "extra": sorted(set(got) - set(ref)),
            "by_tensor": {k: v for k, v in diffs.items() if job.get("details")},
        }
        if tok is not None:
            res["vocab"] = len(tok["vocab"])
            res["rows"] = tok["rows"]
            res["added"] = len(tok["out"].added)
        results.append(res)
    json.dump({"results": results}, sys.stdout)


if __name__ == "__main__":
    main()
