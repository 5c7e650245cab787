#!/usr/bin/env python3
"""A small evaluator that speaks evomerge's evaluator protocol (src/eval/protocol.ts), for the
tests of persistent and one-shot command evaluators. Needs only numpy.

It scores a candidate folder by the mean of all its floating-point tensor values (F32, F16,
BF16), so the score is a function of the merged tensors alone. Its answer also reports what the
tests check: its pid, CUDA_VISIBLE_DEVICES, the `--gpu` argument it was given, and how many
requests this process answered, and with `--base DIR` (evomerge's `{base}`) the mean of that
folder's tensors, read once at start as a real evaluator builds its model there.

Faults for the tests, from EVAL_FAULTS (a comma-separated list of action@request-id):
(`*` for every request) crash (exit 3 before answering), hang (never answer), garbage (a line that is not JSON),
error (an answer with an error field), wrongid (an answer with another id), extra (an extra
line after the answer); `nohello` (no id) makes the persistent form exit before its hello.
EVAL_PID_DIR: each process writes an empty file named after its pid there.
EVAL_DELAY: seconds each scoring sleeps.
"""
import json
import os
import sys
import threading
import time

import numpy as np


def faults():
    out = {}
    for part in filter(None, os.environ.get("EVAL_FAULTS", "").split(",")):
        action, _, rid = part.partition("@")
        out[rid] = action
    return out


def folder_mean(folder):
    total, count = 0.0, 0
    for f in sorted(x for x in os.listdir(folder) if x.endswith(".safetensors")):
        with open(os.path.join(folder, f), "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(n))
            base = 8 + n
            for name in sorted(k for k in header if k != "__metadata__"):
                t = header[name]
                a, b = t["data_offsets"]
                fh.seek(base + a)
                raw = fh.read(b - a)
                if t["dtype"] == "F32":
                    v = np.frombuffer(raw, dtype="<f4")
                elif t["dtype"] == "F16":
                    v = np.frombuffer(raw, dtype="<f2").astype(np.float32)
                elif t["dtype"] == "BF16":
                    v = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
                else:
                    continue
                total += float(v.astype(np.float64).sum())
                count += v.size
    return total / max(count, 1)


def answer(req, served, gpu_arg, base_mean=None):
    delay = float(os.environ.get("EVAL_DELAY", "0") or 0)
    if delay:
        time.sleep(delay)
    cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
    return {
        "id": req.get("id"),
        "score": folder_mean(req["model"]),
        "pid": os.getpid(),
        "cuda": int(cuda) if cuda not in (None, "") and cuda.isdigit() else -1,
        "gpu_arg": int(gpu_arg) if gpu_arg.isdigit() else -1,
        "served": served,
        "limit": req.get("limit") if isinstance(req.get("limit"), int) else -1,
        "note": "a string field evomerge ignores",
        **({"base_mean": base_mean} if base_mean is not None else {}),
    }


def watch_parent():
    """Exit when the process that started us is gone (the protocol asks for it)."""
    parent = os.getppid()
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def main():
    args = sys.argv[1:]
    gpu_arg = args[args.index("--gpu") + 1] if "--gpu" in args else ""
    base_mean = folder_mean(args[args.index("--base") + 1]) if "--base" in args else None
    pid_dir = os.environ.get("EVAL_PID_DIR")
    if pid_dir:
        open(os.path.join(pid_dir, str(os.getpid())), "w").close()
    plan = faults()
    if "--serve" not in args:
        # the one-shot form: one request from the arguments, one answer on stdout
        model = args[args.index("--model") + 1]
        limit = args[args.index("--limit") + 1] if "--limit" in args else ""
        print(json.dumps(answer({"id": None, "model": model, "limit": int(limit) if limit else None}, 1, gpu_arg)))
        return 0
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints go to the log, never into the protocol
    threading.Thread(target=watch_parent, daemon=True).start()
    if "nohello" in plan.values():
        print("failing before the hello line", file=sys.stderr)
        return 4
    out.write(json.dumps({"evomerge_evaluator": 1, "capabilities": ["test-capability"]}) + "\n")
    out.flush()
    served = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        action = plan.get(str(req.get("id")), plan.get("*"))
        print(f"request {req.get('id')}: {action or 'score'}", file=sys.stderr, flush=True)
        if action == "crash":
            print("crashing on purpose", file=sys.stderr, flush=True)
            os._exit(3)
        if action == "hang":
            time.sleep(3600)
        if action == "garbage":
            out.write("this is not json\n")
            out.flush()
            continue
        served += 1
        if action == "error":
            reply = {"id": req["id"], "error": "the task could not be scored"}
        elif action == "wrongid":
            reply = {"id": "somebody-else", "score": 0}
        else:
            reply = answer(req, served, gpu_arg, base_mean)
        out.write(json.dumps(reply) + "\n")
        if action == "extra":
            out.write(json.dumps({"id": req["id"], "score": 1}) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
