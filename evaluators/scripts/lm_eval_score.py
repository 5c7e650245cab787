#!/usr/bin/env python3
"""Score merged candidates with lm-evaluation-harness for evomerge's `command` evaluator.

Two forms (README.md, "Command evaluators" and "lm-eval at scale"):

- one-shot: `lm_eval_score.py --model DIR --task T ...` builds the model from DIR, runs the
  task through lm-eval's Python API and prints one JSON answer on stdout.
- persistent: `lm_eval_score.py --serve --task T ...` speaks evomerge's evaluator protocol
  (version 1, src/eval/protocol.ts): it prints its hello line, then answers one request line
  per candidate. The model is built once: from `--base DIR` before the hello line (evomerge
  starts the program when the search opens, so this build overlaps the first merge), else from
  the first candidate's folder; every later candidate's safetensors are copied into that
  model's tensors in place (its parameters on the GPU for `hf`; vLLM's `load_weights` for
  `vllm`), so a candidate costs a weight copy and the task, not a Python start, imports and a
  model build. A candidate whose config differs (a layer path of another length) gets the
  model rebuilt.

`--simulate SECONDS` replaces lm-eval by a stand-in task (used by the tests and by `evomerge
bench pipeline`): the candidate's tensors are really loaded into a model held in memory (torch
tensors on the CPU, or numpy arrays), then the task sleeps SECONDS and answers a checksum of
the loaded weights.

Everything but protocol lines goes to stderr: file descriptor 1 is pointed at stderr once the
protocol's own copy of it is taken, so nothing lm-eval or a library prints can break the
protocol. The program exits at the end of its stdin and when its parent process is gone.
"""
import argparse
import inspect
import json
import os
import sys
import threading
import time
import traceback

PROTOCOL_VERSION = 1


# --- safetensors, read by hand (no dependency for the simulated task) ----------------------


def safetensors_files(folder):
    """The checkpoint's shard files, in the index's order when there is one."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        return [os.path.join(folder, n) for n in sorted(set(weight_map.values()))]
    files = sorted(n for n in os.listdir(folder) if n.endswith(".safetensors"))
    if not files:
        raise ValueError(f"{folder} holds no .safetensors file")
    return [os.path.join(folder, n) for n in files]


def read_header(path):
    """(header without __metadata__, offset of the data section) of a safetensors file."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return header, 8 + n


def tensor_index(folder):
    """name -> (file, dtype, shape, start, end) for every tensor of the folder."""
    out = {}
    for path in safetensors_files(folder):
        header, base = read_header(path)
        for name, t in header.items():
            a, b = t["data_offsets"]
            out[name] = (path, t["dtype"], tuple(t["shape"]), base + a, base + b)
    return out


def read_config(folder):
    path = os.path.join(folder, "config.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        config = json.load(f)
    # fields that say nothing about the architecture
    for key in ("_name_or_path", "transformers_version", "torch_dtype", "dtype"):
        config.pop(key, None)
    return config


# --- models held in memory, loaded in place --------------------------------------------------


class ArrayModel:
    """A model held as one array per tensor (torch on the CPU, or numpy), for --simulate."""

    def __init__(self, framework):
        self.framework = framework
        self.tensors = {}
        self.shapes = {}

    def _empty(self, dtype, shape):
        if self.framework == "torch":
            import torch

            kind = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}.get(dtype)
            if kind is None:
                raise ValueError(f"dtype {dtype} is not held by the simulated model")
            return torch.empty(shape, dtype=kind)
        import numpy as np

        kind = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}.get(dtype)
        if kind is None:
            raise ValueError(f"dtype {dtype} is not held by the simulated model")
        return np.empty(shape, dtype=kind)

    def _bytes_view(self, t):
        """A writable byte view of a tensor's own memory."""
        if self.framework == "torch":
            return torch_bytes(t)
        return memoryview(t.reshape(-1).view("uint8"))

    def build(self, folder):
        index = tensor_index(folder)
        self.tensors = {name: self._empty(dtype, shape) for name, (_, dtype, shape, _, _) in index.items()}
        self.shapes = {name: (dtype, shape) for name, (_, dtype, shape, _, _) in index.items()}
        return self.load(folder)

    def load(self, folder):
        """Copies every tensor of the folder into the held one (readinto: one copy); returns bytes."""
        index = tensor_index(folder)
        if {n: (d, s) for n, (_, d, s, _, _) in index.items()} != self.shapes:
            raise ArchitectureChanged("the candidate's tensors differ in names, dtypes or shapes from the model held")
        total = 0
        by_file = {}
        for name, (path, _, _, start, end) in index.items():
            by_file.setdefault(path, []).append((start, end, name))
        for path, items in by_file.items():
            with open(path, "rb", buffering=0) as f:
                for start, end, name in sorted(items):
                    view = self._bytes_view(self.tensors[name])
                    if len(view) != end - start:
                        raise ValueError(f"tensor {name}: {end - start} bytes in the file, {len(view)} in the model")
                    f.seek(start)
                    done = 0
                    while done < len(view):
                        n = f.readinto(view[done:])
                        if not n:
                            raise ValueError(f"{path} ends inside tensor {name}")
                        done += n
                    total += done
        return total

    def checksum(self):
        """The sum of the first 4096 values of every tensor (as float64), in name order."""
        import numpy as np

        total = 0.0
        for name in sorted(self.tensors):
            t = self.tensors[name]
            if self.framework == "torch":
                v = t.reshape(-1)[:4096].float().numpy()
            else:
                raw = t.reshape(-1)[:4096]
                v = (raw.astype(np.uint32) << 16).view(np.float32) if raw.dtype == np.uint16 else raw.astype(np.float32)
            total += float(v.astype(np.float64).sum())
        return total


class ArchitectureChanged(Exception):
    """The candidate cannot be loaded into the model held: build another."""


def state_names(model):
    """The model's state tensors by name, and for each the names sharing its storage (tied weights)."""
    state = model.state_dict()
    by_storage = {}
    for name, t in state.items():
        by_storage.setdefault((t.data_ptr(), t.device.type), []).append(name)
    tied = {name: names for names in by_storage.values() for name in names}
    return state, tied


TORCH_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def torch_bytes(t):
    """A writable byte view of a contiguous CPU torch tensor's memory."""
    import torch

    flat = t.reshape(-1)
    size = t.element_size()
    as_int = flat.view({1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[size]) if t.dtype != torch.bool else flat.view(torch.uint8)
    return memoryview(as_int.numpy()).cast("B")


def read_into(f, start, view, what):
    f.seek(start)
    done = 0
    while done < len(view):
        n = f.readinto(view[done:])
        if not n:
            raise ValueError(f"the file ends inside tensor {what}")
        done += n


def torch_tensors(folder):
    """(name, CPU tensor) for every tensor of the folder, each read into a tensor of its own."""
    import torch

    for path in safetensors_files(folder):
        header, base = read_header(path)
        with open(path, "rb", buffering=0) as f:
            for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
                out = torch.empty(t["shape"], dtype=getattr(torch, TORCH_DTYPES[t["dtype"]]))
                read_into(f, base + t["data_offsets"][0], torch_bytes(out), name)
                yield name, out


def load_state_in_place(model, folder, prefix=""):
    """
    Copies a folder's safetensors into an existing torch module's parameters and buffers, on
    their device, without building anything: each tensor of the files overwrites the module's
    tensor of that name (or with the module's base-model prefix added or removed), read straight
    into it when it is a CPU tensor of the same dtype, else through a staging tensor and copy_
    (to the GPU, converting the dtype). Every parameter must be covered (directly or through a
    tied one), else ArchitectureChanged. Returns the bytes read.
    """
    import torch

    state, tied = state_names(model)

    def resolve(key):
        if key in state:
            return key
        if prefix and f"{prefix}.{key}" in state:
            return f"{prefix}.{key}"
        if prefix and key.startswith(f"{prefix}.") and key[len(prefix) + 1:] in state:
            return key[len(prefix) + 1:]
        raise ArchitectureChanged(f"tensor {key} of the candidate is not in the model held")

    covered = set()
    total = 0
    staging = {}
    with torch.no_grad():
        for path in safetensors_files(folder):
            header, base = read_header(path)
            with open(path, "rb", buffering=0) as f:
                for key, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
                    name = resolve(key)
                    dst = state[name]
                    shape = tuple(t["shape"])
                    if shape != tuple(dst.shape):
                        raise ArchitectureChanged(f"tensor {key} is {list(shape)} in the candidate but {list(dst.shape)} in the model held")
                    dtype = getattr(torch, TORCH_DTYPES[t["dtype"]])
                    start = base + t["data_offsets"][0]
                    if dst.device.type == "cpu" and dst.dtype == dtype and dst.is_contiguous():
                        read_into(f, start, torch_bytes(dst), key)
                    else:
                        # one staging buffer per dtype, as large as the largest tensor so far
                        n = dst.numel()
                        buf = staging.get(dtype)
                        if buf is None or buf.numel() < n:
                            buf = torch.empty(n, dtype=dtype, pin_memory=dst.device.type == "cuda")
                            staging[dtype] = buf
                        view = buf[:n]
                        read_into(f, start, torch_bytes(view), key)
                        dst.copy_(view.view(shape))
                        if dst.device.type == "cuda":
                            torch.cuda.synchronize(dst.device)  # the staging buffer is reused next
                    covered.update(tied.get(name, [name]))
                    total += dst.numel() * torch.empty((), dtype=dtype).element_size()
    params = {n for n, _ in model.named_parameters()}
    missing = sorted(params - covered)
    if missing:
        raise ArchitectureChanged(f"the candidate has no tensor for {len(missing)} parameters of the model held ({', '.join(missing[:3])} ...)")
    return total


# --- the weights side: build once, then load in place -----------------------------------------


class SimulatedHolder:
    def __init__(self, args):
        framework = args.framework
        if framework != "numpy":
            try:
                # imported before the hello line, as a real evaluator imports its framework
                import torch  # noqa: F401

                framework = "torch"
            except ImportError:
                if framework == "torch":
                    raise
                framework = "numpy"
        self.model = ArrayModel(framework)
        self.config = None

    def prepare(self, folder):
        """Build (first candidate, or another architecture) or load in place; returns 'build' or 'load'."""
        config = read_config(folder)
        if self.config is not None and config == self.config:
            try:
                self.model.load(folder)
                return "load"
            except ArchitectureChanged as e:
                print(f"rebuilding the model: {e}", file=sys.stderr)
        self.model.build(folder)
        self.config = config
        return "build"


class HfHolder:
    """A transformers model on the GPU (or CPU), wrapped once in lm-eval's HFLM."""

    def __init__(self, args):
        self.args = args
        self.lm = None
        self.model = None
        self.config = None

    def prepare(self, folder):
        config = read_config(folder)
        if self.lm is not None and config == self.config:
            try:
                load_state_in_place(self.model, folder, getattr(self.model, "base_model_prefix", ""))
                return "load"
            except ArchitectureChanged as e:
                print(f"rebuilding the model: {e}", file=sys.stderr)
        self.build(folder)
        self.config = config
        return "build"

    def build(self, folder):
        import torch
        import transformers
        from lm_eval.models.huggingface import HFLM

        self.lm = None
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        a = self.args
        dtype = "auto" if a.dtype == "auto" else getattr(torch, a.dtype)
        device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, torch_dtype=dtype, low_cpu_mem_usage=True, trust_remote_code=a.trust_remote_code)
        model.to(device)
        model.eval()
        if device == "cpu":
            # a CPU model may still view the (temporary) candidate file through a memory map: own the memory
            for p in model.parameters():
                p.data = p.data.clone()
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=a.trust_remote_code)
        # an already built model: HFLM takes its device from it
        self.lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=a.batch_size, max_batch_size=a.max_batch_size, trust_remote_code=a.trust_remote_code)
        self.model = model


def _vllm_load_folder(worker, folder):
    """Runs inside a vLLM worker (collective_rpc): the folder's tensors through the model's own load_weights."""
    worker.model_runner.model.load_weights(torch_tensors(folder))
    return True


class VllmHolder:
    """lm-eval's VLLM wrapper, built once; later candidates go through vLLM's load_weights."""

    def __init__(self, args):
        self.args = args
        self.lm = None
        self.config = None

    def prepare(self, folder):
        config = read_config(folder)
        if self.lm is not None and config == self.config:
            self.load(folder)
            return "load"
        self.build(folder)
        self.config = config
        return "build"

    def build(self, folder):
        from lm_eval.models.vllm_causallms import VLLM

        a = self.args
        if self.lm is not None:
            # another architecture: free the engine before building the next one
            del self.lm
            self.lm = None
            import gc

            gc.collect()
        self.lm = VLLM(pretrained=folder, dtype=a.dtype, batch_size=a.batch_size, gpu_memory_utilization=a.gpu_memory_utilization,
                       max_model_len=a.max_model_len, seed=a.seed if a.seed is not None else 1234, trust_remote_code=a.trust_remote_code)

    def load(self, folder):
        llm = self.lm.model
        if hasattr(llm, "collective_rpc"):
            # vLLM >= 0.7: a function run in every worker process
            llm.collective_rpc(_vllm_load_folder, args=(folder,))
        else:
            # the older in-process engine (vLLM 0.6 and earlier)
            _vllm_load_folder(llm.llm_engine.model_executor.driver_worker, folder)
        # cached prefixes hold keys and values of the previous weights
        if hasattr(llm, "reset_prefix_cache"):
            llm.reset_prefix_cache()


# --- the task side -------------------------------------------------------------------------


class LmEvalTask:
    """One lm-eval task through simple_evaluate, on the holder's LM, with a TaskManager indexed once."""

    def __init__(self, args):
        import lm_eval
        from lm_eval.tasks import TaskManager

        self.lm_eval = lm_eval
        self.args = args
        self.task_manager = TaskManager(include_path=args.include_path) if args.include_path else TaskManager()
        self.accepted = set(inspect.signature(lm_eval.simple_evaluate).parameters)

    def options(self, limit, seed):
        a = self.args
        kw = {"num_fewshot": a.num_fewshot, "limit": limit, "task_manager": self.task_manager, "log_samples": False}
        if a.apply_chat_template is not None:
            kw["apply_chat_template"] = True if a.apply_chat_template == "" else a.apply_chat_template
        if a.fewshot_as_multiturn:
            kw["fewshot_as_multiturn"] = True
        if a.system_instruction is not None:
            kw["system_instruction"] = a.system_instruction
        if a.gen_kwargs is not None:
            kw["gen_kwargs"] = a.gen_kwargs
        if seed is not None:
            kw.update(random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed)
        unknown = sorted(k for k in kw if k not in self.accepted)
        if unknown:
            raise RuntimeError(f"this lm-eval ({getattr(self.lm_eval, '__version__', '?')}) takes no {', '.join(unknown)}; upgrade it (pip install -U lm-eval) or drop the option")
        return kw

    def run(self, holder, req):
        a = self.args
        res = self.lm_eval.simple_evaluate(model=holder.lm, tasks=[a.task], **self.options(req.get("limit"), req.get("seed")))
        scores = res["results"][a.task]
        key = a.metric if a.metric in scores else f"{a.metric},none"
        if key not in scores:
            raise RuntimeError(f"task {a.task} reported no metric {a.metric} (it has: {', '.join(k for k in scores if '_stderr' not in k and k != 'alias')})")
        name = key.split(",")[0]
        out = {name: scores[key]}
        stderr_key = key.replace(name, f"{name}_stderr", 1)
        if isinstance(scores.get(stderr_key), (int, float)):
            out[f"{name}_stderr"] = scores[stderr_key]
        samples = res.get("n-samples", {}).get(a.task, {}).get("effective")
        if samples is not None:
            out["samples"] = samples
        return out


class SimulatedTask:
    """Stands in for a task on a GPU: sleeps a fixed time, then answers a checksum of the loaded weights."""

    def __init__(self, args):
        self.seconds = args.simulate

    def run(self, holder, req):
        time.sleep(self.seconds)
        return {"score": holder.model.checksum(), "tensors": len(holder.model.tensors)}


# --- the two forms ---------------------------------------------------------------------------


def make(args):
    if args.simulate is not None:
        return SimulatedHolder(args), SimulatedTask(args)
    holder = HfHolder(args) if args.backend == "hf" else VllmHolder(args)
    return holder, LmEvalTask(args)


def score(holder, task, req, stats):
    """Prepares the model with the candidate (build or load in place) and runs the task; the answer's fields."""
    t0 = time.perf_counter()
    how = holder.prepare(req["model"])
    t1 = time.perf_counter()
    out = task.run(holder, req)
    t2 = time.perf_counter()
    stats[how + "s"] += 1
    out.update({"load_seconds": t1 - t0, "score_seconds": t2 - t1, "builds": stats["builds"], "loads": stats["loads"]})
    return out


def watch_parent(parent):
    """Exits when the process that started this one is gone (the protocol asks for it)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def serve(args):
    # the protocol's own stdout; fd 1 itself goes to stderr, for every print of every library
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    threading.Thread(target=watch_parent, args=(os.getppid(),), daemon=True).start()
    holder, task = make(args)  # imports lm-eval (a missing one fails here, before the hello)
    stats = {"builds": 0, "loads": 0}
    if args.base:
        # the model of the family's base, built before the hello: the first candidate loads in place
        t0 = time.perf_counter()
        holder.prepare(args.base)
        stats["builds"] += 1
        print(f"built the model from {args.base} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    proto.write(json.dumps({"evomerge_evaluator": PROTOCOL_VERSION, "capabilities": []}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            answer = {"id": req["id"], **score(holder, task, req, stats)}
        except Exception as e:  # the candidate fails; the process stays for the next one
            traceback.print_exc()
            answer = {"id": req.get("id"), "error": f"{type(e).__name__}: {e}"}
        proto.write(json.dumps(answer) + "\n")
    return 0


def one_shot(args):
    out = sys.stdout
    sys.stdout = sys.stderr
    holder, task = make(args)
    limit = int(args.limit) if args.limit else None
    answer = score(holder, task, {"model": args.model, "limit": limit, "seed": args.seed}, {"builds": 0, "loads": 0})
    out.write(json.dumps(answer) + "\n")
    return 0


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--serve", action="store_true", help="persistent: speak evomerge's evaluator protocol on stdin and stdout")
    p.add_argument("--model", help="one-shot: the candidate's folder")
    p.add_argument("--base", default=None, metavar="DIR", help="persistent: build the model from this checkpoint (the family's base) before the hello line, so the first candidate is loaded in place too (give startup_timeout_s the time of a model build)")
    p.add_argument("--limit", default="", help="one-shot: items of the task (persistent: the request's limit)")
    p.add_argument("--seed", type=int, default=None, help="one-shot: lm-eval's seeds (persistent: the request's seed)")
    p.add_argument("--task", help="the lm-eval task (a name, or one from --include-path)")
    p.add_argument("--metric", default="acc_norm,none", help="lm-eval's metric key, e.g. acc_norm,none or exact_match,strict-match")
    p.add_argument("--include-path", default=None, help="a folder of task YAML files of your own (lm-eval's TaskManager include_path)")
    p.add_argument("--backend", choices=["hf", "vllm"], default="hf")
    p.add_argument("--dtype", default="bfloat16", help="auto, bfloat16, float16 or float32")
    p.add_argument("--device", default=None, help="hf: the torch device (default cuda when available; CUDA_VISIBLE_DEVICES picks the GPU)")
    p.add_argument("--batch-size", default="auto")
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--num-fewshot", type=int, default=None)
    p.add_argument("--apply-chat-template", nargs="?", const="", default=None, help="format prompts with the tokenizer's chat template (optionally a template name)")
    p.add_argument("--fewshot-as-multiturn", action="store_true", help="few-shot examples as a multi-turn conversation (with --apply-chat-template)")
    p.add_argument("--system-instruction", default=None)
    p.add_argument("--gen-kwargs", default=None, help="generation options for generate_until tasks, e.g. temperature=0,max_gen_toks=256")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.85, help="vllm: share of the GPU's memory it may take")
    p.add_argument("--max-model-len", type=int, default=None, help="vllm: longest sequence (less memory for the KV cache)")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--simulate", type=float, default=None, metavar="SECONDS", help="no lm-eval: load the weights into a model held in memory, then sleep SECONDS (tests, evomerge bench pipeline)")
    p.add_argument("--framework", choices=["auto", "torch", "numpy"], default="auto", help="--simulate: hold the model as torch tensors or numpy arrays")
    a = p.parse_args(argv)
    if a.simulate is None and not a.task:
        p.error("--task is required (or --simulate)")
    if not a.serve and not a.model:
        p.error("give --model DIR (one-shot) or --serve (persistent)")
    if a.base and not a.serve:
        p.error("--base is for --serve (persistent); the one-shot form builds its model from --model")
    if a.base and not os.path.isdir(a.base):
        p.error(f"--base {a.base}: no such folder (give the checkpoint folder of the family's base model)")
    return a


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    return serve(args) if args.serve else one_shot(args)


if __name__ == "__main__":
    sys.exit(main())
