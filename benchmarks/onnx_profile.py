"""Where an ONNX file's time goes: ONNX Runtime's profiler, kernel time summed per operator type.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/onnx_profile.py FILE.onnx [FILE.onnx ...] --batch 32 --seq 128

Inputs are made from each file's own input list: integer inputs named like an attention mask or token type get
ones / zeros, other integer inputs token ids in [1000, 20000), float inputs standard-normal values; a dynamic
dimension is `--batch` when it is the first, else `--seq`. `--runs` profiled runs after one warm-up, one thread
by default (what the benchmarks' ratios compare). Run under benchmarks/as_avx2 for the AVX2 kernels.
"""

from __future__ import annotations

import argparse
import collections
import json
import os

import numpy as np
import onnxruntime as ort

# Nodes that run a subgraph (karuku's int8 attention is an If): the nodes inside are profiled themselves, so the
# container's own time would count them twice.
CONTAINERS = {"If", "Loop", "Scan"}


def feeds(sess: ort.InferenceSession, batch: int, seq: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for inp in sess.get_inputs():
        shape = [d if isinstance(d, int) else (batch if i == 0 else seq) for i, d in enumerate(inp.shape)]
        if "int" in inp.type:
            name = inp.name.lower()
            x = (np.ones(shape) if "mask" in name else np.zeros(shape) if "type" in name
                 else rng.integers(1000, 20000, shape))
            out[inp.name] = x.astype(np.int64 if "int64" in inp.type else np.int32)
        else:
            out[inp.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def profile(path: str, batch: int, seq: int, runs: int, threads: int) -> dict:
    sess = profiled_session(path, threads)
    return {"file": path, **op_times(sess, feeds(sess, batch, seq), runs)}


def _options(threads: int) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    so.enable_profiling = True
    return so


def profiled_session(model: str | bytes, threads: int = 1) -> ort.InferenceSession:
    """A CPU session of `model` (a path or the file's bytes) with ONNX Runtime's profiler on, for `op_times`."""
    return ort.InferenceSession(model, _options(threads), providers=["CPUExecutionProvider"])


def op_times(sess: ort.InferenceSession, feed: dict[str, np.ndarray], runs: int) -> dict:
    """Kernel time per operator type over `runs` runs after one warm-up, in mean ms per run; ends the session's
    profiling. Events are told apart by time, not node name: nodes inside an If's branches may share a name
    (the empty one), and a container's own time (which holds its branch's) is left out."""
    for _ in range(runs + 1):  # the first run warms up and is not counted
        sess.run(None, feed)
    trace = sess.end_profiling()
    with open(trace) as f:
        events = json.load(f)
    os.remove(trace)
    warm_end = min(e["ts"] + e["dur"] for e in events if e.get("name") == "model_run")
    us, count = collections.Counter(), collections.Counter()
    for e in events:
        if (e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= warm_end
                and e["args"]["op_name"] not in CONTAINERS):
            us[e["args"]["op_name"]] += e["dur"]
            count[e["args"]["op_name"]] += 1
    return {"total_ms": sum(us.values()) / runs / 1000,
            "ops": {k: {"ms": v / runs / 1000, "nodes": count[k] // runs} for k, v in us.most_common()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128, help="size of any other dynamic dimension")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    for f in args.files:
        r = profile(f, args.batch, args.seq, args.runs, args.threads)
        top = ", ".join(f"{k} {v['ms']:.0f} ms ({v['nodes']})" for k, v in list(r["ops"].items())[:10])
        print(f"{f}: {r['total_ms']:.0f} ms per run; {top}", flush=True)


if __name__ == "__main__":
    main()
