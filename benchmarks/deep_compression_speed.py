"""Codec speed: encode and decode throughput (MB/s of dense fp32 weights) and time to load a packed lenet5.

    .venv/bin/python benchmarks/deep_compression_speed.py [--krk runs/dc/lenet5-paper/model.krk]

Without --krk it builds a lenet5 pruned to the paper's per-layer rates (66/12/8/19 % kept)
with random weights and shares it (conv 8 bits, fc 5 bits), so the figures need no training.
Each figure is the median of --runs timed runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

from karuku.codec import ClusterConfig, cluster, pack_state
from karuku.codec.krk import from_bytes, load_packed
from karuku.models.spec import ModelSpec

KEEP = {"conv1": 0.66, "conv2": 0.12, "fc1": 0.08, "fc2": 0.19}


def median_s(fn, runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds (CPU time is the steadier figure on a shared machine)."""
    wall, cpu = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def synthetic() -> tuple[dict[str, torch.Tensor], ModelSpec, dict]:
    torch.manual_seed(0)
    spec = ModelSpec(name="lenet5", input_shape=(1, 28, 28), num_classes=10)
    model = spec.build()
    with torch.no_grad():
        for name, keep in KEEP.items():
            w = model.get_submodule(name).weight
            w[w.abs() <= w.abs().flatten().kthvalue(int((1 - keep) * w.numel())).values] = 0
    sharing = cluster(model, ClusterConfig(bits=5, layer_bits={"conv*": 8}))
    return model.state_dict(), spec, {"cluster": sharing.meta()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--krk", type=Path, help="a packed model to time (default: a synthetic lenet5)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.krk:
        packed = from_bytes(args.krk.read_bytes())
        state, spec, meta = packed.tensors, packed.spec, dict(packed.meta)
        source = str(args.krk)
    else:
        state, spec, meta = synthetic()
        source = "synthetic lenet5 (paper's per-layer rates, random weights)"
    shared = [n for n, t in state.items() if t.dim() >= 2]
    dense_mb = sum(state[n].numel() * 4 for n in shared) / 1e6
    data = pack_state(state, spec, meta).data
    encode = median_s(lambda: pack_state(state, spec, meta), args.runs)
    decode = median_s(lambda: from_bytes(data), args.runs)
    path = Path("runs/dc/speed.krk")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    load = median_s(lambda: load_packed(path), args.runs)
    model, _ = load_packed(path)
    assert isinstance(model, nn.Module)
    # first load in a fresh process (imports done before the clock starts)
    code = ("import time; from karuku.codec import load_packed; t = time.perf_counter(); "
            f"load_packed({str(path)!r}); print(time.perf_counter() - t)")
    cold = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    print(f"source: {source}; {len(data):,} B packed; shared weights {dense_mb:.3f} MB dense fp32; "
          f"threads {args.threads}; median of {args.runs}")
    print("| step | wall (median) | CPU (median) | MB/s of dense fp32, by wall / by CPU |")
    print("|---|---:|---:|---:|")
    for label, (wall, cpu) in (("encode (pack_state)", encode), ("decode (parse, check, dense tensors)", decode),
                               ("load packed model (read, decode, build, load weights)", load)):
        print(f"| {label} | {wall * 1e3:.1f} ms | {cpu * 1e3:.1f} ms | {dense_mb / wall:.1f} / {dense_mb / cpu:.1f} |")
    print(f"| first load in a fresh process (after imports) | {cold * 1e3:.1f} ms | | |")


if __name__ == "__main__":
    main()
