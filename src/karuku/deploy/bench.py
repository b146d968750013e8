"""ONNX Runtime latency and throughput of an ONNX file, input shape read from the graph."""

from __future__ import annotations

import math
import os

import numpy as np

from karuku.errors import KarukuError
from karuku.io.paths import regular_file
from karuku.measure.onnx_runtime import session
from karuku.measure.timing import time_call

_DTYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}


def exactness_note(path: str | os.PathLike) -> str | None:
    """A warning when an int8 file made by karuku stores a representation this CPU does not compute exactly."""
    import onnx

    from karuku.cpu import detect
    from karuku.quant.representation import REPRESENTATIONS, exact_on

    try:
        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except Exception:  # noqa: BLE001 — not ours to judge; bench_onnx reports unloadable files
        return None
    rep, here = meta.get("karuku.representation"), detect().target
    if rep in REPRESENTATIONS and not exact_on(rep, here):
        return (f"{path} stores {rep} (made for {meta.get('karuku.target_isa')}); this CPU ({here}) saturates its "
                f"u8 x s8 products, so its outputs can differ from the integer engine's: re-export with "
                f"--target-isa {here} for figures that mean something")
    return None


def bench_onnx(path: str | os.PathLike, threads: int | None = None, batches: tuple[int, ...] = (1, 64),
               runs: int = 50) -> list[dict]:
    """One row per batch size: median / p90 latency (ms) and samples per second (`threads`: this process's)."""
    from karuku.measure.inputs import MAX_INPUT_BYTES
    from karuku.threads import current_threads

    path = regular_file(path, "ONNX file")
    threads = threads or current_threads()
    try:
        sess = session(path, threads)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise KarukuError(f"{path} is not a loadable ONNX model ({str(exc).splitlines()[0][:200]})") from None
    if len(sess.get_inputs()) != 1:
        raise KarukuError(f"{path} has {len(sess.get_inputs())} inputs; karuku benchmarks models with one input")
    inp = sess.get_inputs()[0]
    dims = inp.shape[1:]
    if any(not isinstance(d, int) or d < 1 for d in dims):
        raise KarukuError(f"{path}: input '{inp.name}' has symbolic or empty dimensions {inp.shape} beyond the batch")
    dtype = _DTYPES.get(inp.type)
    if dtype is None:
        raise KarukuError(f"{path}: unsupported input type {inp.type}")
    rng = np.random.default_rng(0)
    rows = []
    for b in batches:
        if isinstance(inp.shape[0], int) and inp.shape[0] != b:
            continue  # a fixed batch dimension: only that batch size runs
        size = b * math.prod(dims) * np.dtype(dtype).itemsize
        if size > MAX_INPUT_BYTES:
            raise KarukuError(f"{path}: one batch of {b} inputs {tuple(dims)} would take {size / 2**30:,.1f} GiB",
                              f"karuku times inputs of at most {MAX_INPUT_BYTES >> 20} MiB per batch")
        x = rng.standard_normal((b, *dims)).astype(np.float32).astype(dtype)
        t = time_call(lambda x=x: sess.run(None, {inp.name: x}), warmup=5, runs=runs)
        rows.append({"batch": b, "median_ms": t.median_ms, "p90_ms": t.p90_ms, "per_s": t.throughput(b),
                     "runs": t.runs, "threads": threads})
    return rows
