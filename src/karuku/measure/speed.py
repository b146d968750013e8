"""Latency and throughput of a model in torch and in ONNX Runtime, through the one timer (`timing`)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from karuku.errors import KarukuError
from karuku.measure import inputs, onnx_runtime
from karuku.measure.timing import Engine, Speed, time_engines


def torch_engine(model: nn.Module, input_shape) -> Engine:
    """The model in eager PyTorch, inference mode; `input_shape`: what it takes (a shape, a `inputs.Signature`
    or example inputs)."""
    model.eval()
    sig = inputs.signature(model, input_shape)

    def make(batch: int):
        xs = sig.random(batch)

        def call():
            with torch.inference_mode():
                return sig.call(model, xs)

        return call

    return make


def onnx_engine(onnx_bytes: bytes, input_shape, threads: int | None = None, model: nn.Module | None = None) -> Engine:
    """An ONNX file in ONNX Runtime with `threads` intra-op threads, fed by input name (`model`: whose registered
    inputs an input shape stands for)."""
    sess = onnx_runtime.session(onnx_bytes, threads)
    sig = inputs.signature(model, input_shape)
    taken = {i.name for i in sess.get_inputs()}
    missing = taken - set(sig.names)
    if missing:
        raise KarukuError(f"the ONNX file takes inputs {sorted(missing)} the signature ({sig.describe()}) lacks",
                          "give inputs that name every input of the file")

    def make(batch: int):
        # an input the model ignores is not in the exported file: only the file's own are fed
        feed = {n: x.numpy() for n, x in zip(sig.names, sig.random(batch)) if n in taken}
        return lambda: sess.run(None, feed)

    return make


def latency(model: nn.Module | None, input_shape, threads: int | None = None,
            engines: Iterable[str] = ("torch", "onnxruntime"), runs: int = 30, onnx_bytes: bytes | None = None,
            rounds: int = 1) -> dict[str, Speed]:
    """Batch-1 latency and batch-64 throughput per engine with `threads` threads.

    `input_shape`: what the model takes (a shape, a `inputs.Signature` or example inputs). `onnxruntime` runs
    `onnx_bytes` (default: the model's fp32 export); `threads` default: this process's.
    """
    from karuku.threads import current_threads

    threads = threads or current_threads()
    engines = tuple(engines)
    sig = inputs.signature(model, input_shape)
    if sig.batch_bytes(64) > inputs.MAX_INPUT_BYTES:
        raise KarukuError(f"a batch of 64 inputs {sig.describe()} would take {sig.batch_bytes(64) >> 20:,} MiB",
                          f"karuku times inputs of at most {inputs.MAX_INPUT_BYTES >> 20} MiB per batch")
    timed: dict[str, Engine] = {}
    if "torch" in engines:
        timed["torch"] = torch_engine(model, sig)
    if "onnxruntime" in engines:
        timed["onnxruntime"] = onnx_engine(onnx_bytes or onnx_runtime.export_bytes(model, sig), sig, threads, model)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return time_engines(timed, runs, rounds)
    finally:
        torch.set_num_threads(old)


def side_by_side(onnx_files: dict[str, bytes], input_shape, threads: int | None = None,
                 rounds: int = 5, runs: int = 20, model: nn.Module | None = None) -> dict[str, Speed]:
    """ONNX models timed in interleaved rounds (medians over the rounds), so load shifts hit them alike."""
    return time_engines({k: onnx_engine(b, input_shape, threads, model) for k, b in onnx_files.items()}, runs, rounds)
