"""ONNX Runtime fp32 batch-64 throughput of checkpoints, timed side by side in one process.

    .venv/bin/python benchmarks/pruning_speed.py runs/pruning/lenet300.safetensors \\
        runs/pruning/lenet300-pruned92.safetensors

Interleaved rounds (machine noise hits every model alike), median of all runs; prints one JSON
line with samples/s, the ratio to the first checkpoint, parameters, nonzeros and dense MACs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from karuku.io.checkpoint import load_model
from karuku.measure import export_bytes, session, totals
from karuku.measure.onnx_runtime import run


def side_by_side(models: dict, shape: tuple[int, ...], rounds: int = 7, runs: int = 15,
                 threads: int = 2) -> dict[str, float]:
    """Batch-64 samples/s per model, each timed `runs` times in each of `rounds` interleaved rounds."""
    x = np.random.default_rng(0).standard_normal((64, *shape)).astype(np.float32)
    sessions = {k: session(export_bytes(m, shape), threads=threads) for k, m in models.items()}
    for s in sessions.values():
        for _ in range(5):
            run(s, x)
    samples: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(rounds):
        for k, s in sessions.items():
            for _ in range(runs):
                t0 = time.perf_counter()
                run(s, x)
                samples[k].append(time.perf_counter() - t0)
    return {k: 64 / statistics.median(v) for k, v in samples.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    args = ap.parse_args()
    models, shape = {}, None
    for path in args.checkpoints:
        model, ckpt = load_model(path)
        models[path], shape = model, tuple(ckpt.spec.input_shape)
    thr = side_by_side(models, shape, rounds=args.rounds, threads=args.threads)
    first = args.checkpoints[0]
    out = {}
    for path, model in models.items():
        t = totals(model, shape)
        out[path] = {"ort_b64_per_s": round(thr[path]), "ratio": round(thr[path] / thr[first], 3),
                     "params": t.params, "nonzeros": t.nonzeros, "macs": t.macs}
    from karuku.cpu import detect

    out["cpu"] = detect().summary()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
