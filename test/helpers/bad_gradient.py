"""A one-shot command evaluator that writes a malformed gradient file, for test/refine.command.test.ts.

Usage: bad_gradient.py MODEL_DIR GRADIENT_PATH MODE, MODE one of shape, missing, nan, f16,
extra, garbage, none, noloss. It writes a zero gradient for every tensor of the model but for
the defect MODE names in blocks.0.fc1.weight, and prints {"loss": 1.0}.
"""
import json
import struct
import sys

import numpy as np


def header_of(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


def write(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, (dtype, arr) in sorted(tensors.items()):
        b = arr.astype(dtype).tobytes()
        header[name] = {"dtype": "F32" if dtype == "<f4" else "F16", "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


model, path, mode = sys.argv[1], sys.argv[2], sys.argv[3]
if not path:  # a scoring request: no gradient asked
    print(json.dumps({"accuracy": 0.5}))
    sys.exit(0)
tensors = {name: ("<f4", np.zeros(e["shape"])) for name, e in header_of(model + "/model.safetensors").items() if name != "__metadata__"}
target = "blocks.0.fc1.weight"
if mode == "shape":
    tensors[target] = ("<f4", np.zeros(tensors[target][1].shape[0]))
elif mode == "missing":
    del tensors[target]
elif mode == "nan":
    a = np.zeros(tensors[target][1].shape)
    a.flat[3] = np.nan
    tensors[target] = ("<f4", a)
elif mode == "f16":
    tensors[target] = ("<f2", tensors[target][1])
elif mode == "extra":
    tensors["blocks.9.fc1.weight"] = ("<f4", np.zeros(3))
if mode == "garbage":
    with open(path, "wb") as f:
        f.write(b"not a safetensors file at all")
elif mode != "none":
    write(path, tensors)
print(json.dumps({"accuracy": 0.5} if mode == "noloss" else {"accuracy": 0.5, "loss": 1.0}))
