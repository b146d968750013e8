"""Latency and throughput of a model in torch and in ONNX Runtime, through the one timer (`timing`)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from karuku.measure import inputs, onnx_runtime
from karuku.measure.timing import Engine, Speed, time_engines


def torch_engine(model: nn.Module, input_shape: tuple[int, ...]) -> Engine:
    """The model in eager PyTorch, inference mode."""
    model.eval()

    def make(batch: int):
        x = inputs.random(input_shape, batch)

        def call():
            with torch.inference_mode():
                return model(x)

        return call

    return make


def onnx_engine(onnx_bytes: bytes, input_shape: tuple[int, ...], threads: int | None = None) -> Engine:
    """An ONNX file in ONNX Runtime with `threads` intra-op threads."""
    sess = onnx_runtime.session(onnx_bytes, threads)

    def make(batch: int):
        x = inputs.random(input_shape, batch).numpy()
        return lambda: onnx_runtime.run(sess, x)

    return make


def latency(model: nn.Module | None, input_shape: tuple[int, ...], threads: int | None = None,
            engines: Iterable[str] = ("torch", "onnxruntime"), runs: int = 30, onnx_bytes: bytes | None = None,
            rounds: int = 1) -> dict[str, Speed]:
    """Batch-1 latency and batch-64 throughput per engine with `threads` threads.

    `onnxruntime` runs `onnx_bytes` (default: the model's fp32 export); `threads` default: this process's.
    """
    from karuku.threads import current_threads

    threads = threads or current_threads()
    engines = tuple(engines)
    timed: dict[str, Engine] = {}
    if "torch" in engines:
        timed["torch"] = torch_engine(model, input_shape)
    if "onnxruntime" in engines:
        timed["onnxruntime"] = onnx_engine(onnx_bytes or onnx_runtime.export_bytes(model, input_shape), input_shape,
                                           threads)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return time_engines(timed, runs, rounds)
    finally:
        torch.set_num_threads(old)


def side_by_side(onnx_files: dict[str, bytes], input_shape: tuple[int, ...], threads: int | None = None,
                 rounds: int = 5, runs: int = 20) -> dict[str, Speed]:
    """ONNX models timed in interleaved rounds (medians over the rounds), so load shifts hit them alike."""
    return time_engines({k: onnx_engine(b, input_shape, threads) for k, b in onnx_files.items()}, runs, rounds)
