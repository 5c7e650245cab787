"""What every evaluator script here shares: evomerge's evaluator protocol and safetensors I/O.

The protocol (README.md, "Command evaluators"; src/eval/protocol.ts is evomerge's side):
one-shot, a script gets the request's fields as arguments and prints one JSON answer; persistent
(`--serve`), it prints the hello line, then reads one request per line on stdin and answers each
on stdout with the request's id. An exception while answering fails that candidate only
(`{"id", "error"}`); the program stays up. A script is run by path, so this file, beside it, is
importable without installing anything.
"""
import json
import os
import struct
import sys

import numpy as np

PROTOCOL_VERSION = 1
FLOAT_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}
REQUEST_FIELDS = ("limit", "seed", "offset", "count", "gradient", "loss")


def read_safetensors(path, out, dtype=np.float32, non_float="error"):
    """Every tensor of one safetensors file into `out` (name -> array of `dtype`, shaped).

    BF16 is widened exactly (its bits are the top half of a float32). A tensor of another type is
    kept as raw bytes with `non_float="keep"`, and refused with `non_float="error"`.
    """
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        start = 8 + n
        for name, e in header.items():
            if name == "__metadata__":
                continue
            a, z = e["data_offsets"]
            f.seek(start + a)
            raw = f.read(z - a)
            if e["dtype"] == "BF16":
                v = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            elif e["dtype"] in FLOAT_DTYPES:
                v = np.frombuffer(raw, dtype=np.dtype(FLOAT_DTYPES[e["dtype"]]).newbyteorder("<"))
            elif non_float == "keep":
                out[name] = np.frombuffer(raw, dtype=np.uint8).reshape(e["shape"]).copy()
                continue
            else:
                raise ValueError(f"{path}: tensor {name} is {e['dtype']}, not a float type")
            out[name] = v.astype(dtype).reshape(e["shape"])


def read_folder(folder, dtype=np.float32, non_float="error"):
    """The tensors of a Hugging Face folder: model.safetensors, or the shards its index names."""
    tensors = {}
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            for name in sorted(set(json.load(f)["weight_map"].values())):
                read_safetensors(os.path.join(folder, name), tensors, dtype, non_float)
    else:
        read_safetensors(os.path.join(folder, "model.safetensors"), tensors, dtype, non_float)
    return tensors


def write_safetensors(path, tensors):
    """float32 tensors, in name order, with an 8-byte aligned header (the safetensors format),
    written to a side file and renamed, so a reader never sees half a file."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        b = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def add_request_args(ap):
    """--model and --serve, and the request's fields as one-shot arguments (--limit, --seed,
    --offset, --count, --gradient, --loss: the manifest's {limit} ... placeholders)."""
    ap.add_argument("--model", help="one-shot: the candidate's folder")
    ap.add_argument("--serve", action="store_true", help="persistent: speak evomerge's evaluator protocol on stdin and stdout")
    for k in REQUEST_FIELDS:
        ap.add_argument(f"--{k}")


def _number(s):
    return None if s in (None, "") else int(s)


def run(args, answer, capabilities):
    """Answer the one-shot request of `args`, or serve requests until stdin ends.

    `answer(request) -> dict of metrics` scores one candidate; `capabilities` are announced in the
    hello line (`gradient`, `subset`).
    """
    if not args.serve:
        if not args.model:
            raise SystemExit("give --model DIR, or --serve")
        req = {"model": args.model, "limit": _number(args.limit), "seed": _number(args.seed), "offset": _number(args.offset),
               "count": _number(args.count), "gradient": args.gradient or None, "loss": args.loss or None}
        print(json.dumps(answer(req)))
        return
    print(json.dumps({"evomerge_evaluator": PROTOCOL_VERSION, "capabilities": list(capabilities)}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            out = {"id": req["id"], **answer(req)}
        except Exception as e:  # the candidate fails with the reason; the program stays up
            out = {"id": req.get("id"), "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(out), flush=True)
