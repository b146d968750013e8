"""`evaluate`: every measurement of one model in one object, and its table."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from safetensors.torch import save as st_save
from torch import nn

from karuku.data.splits import DataSplits
from karuku.measure import counts, energy, memory, onnx_runtime
from karuku.measure.timing import Timing, time_call
from karuku.training.evaluate import score


@dataclass
class Evaluation:
    """Accuracy, size, compute, speed and energy of one model (all per sample unless noted)."""

    params: int
    nonzeros: int
    macs: int
    effective_macs: int
    size_fp32_bytes: int
    peak_activation_bytes: int
    activation_traffic_bytes: int  # all leaf-module outputs of one inference (the energy model's activations)
    energy: dict[str, Any]
    threads: int
    accuracy: float | None = None
    errors: int | None = None
    test_total: int | None = None
    latency: dict[str, dict[str, float]] = field(default_factory=dict)  # engine -> figures
    layers: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # later techniques add sizes here
    cpu: str = ""  # what the speed figures were measured on (karuku.cpu.detect().summary())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs for a table."""
        out: list[tuple[str, str]] = []
        if self.accuracy is not None:
            out.append(("test accuracy", f"{100 * self.accuracy:.2f} % ({self.errors} errors / {self.test_total})"))
        sparsity = 1 - self.nonzeros / self.params if self.params else 0
        out += [
            ("parameters", f"{self.params:,}"),
            ("nonzeros", f"{self.nonzeros:,} ({100 * sparsity:.1f} % sparse)"),
            ("MACs / sample", f"{self.macs:,} (effective {self.effective_macs:,})"),
            ("size fp32 (safetensors)", _kb(self.size_fp32_bytes)),
        ]
        out += [(k, _kb(v) if k.endswith("bytes") else str(v)) for k, v in self.extra.items()]
        out.append(("peak activations fp32", _kb(self.peak_activation_bytes)))
        for engine, fig in self.latency.items():
            out.append((f"{engine} latency b1", f"{fig['b1_median_ms']:.3f} ms median, {fig['b1_p90_ms']:.3f} p90"))
            out.append((f"{engine} throughput b64", f"{fig['b64_per_s']:,.0f} samples/s"))
        out.append(("threads", str(self.threads)))
        if self.cpu:
            out.append(("CPU", self.cpu))
        out.append(("energy / inference", f"{self.energy['total_uj']:.3f} µJ (weights in {self.energy['weights_in']})"))
        out.append(("energy assumptions", self.energy["assumptions"]))
        return out


def _kb(n: int) -> str:
    return f"{n / 1000:,.1f} KB ({n:,} B)"


def fp32_size(model: nn.Module) -> int:
    """Bytes of the model's state dict as a safetensors file."""
    return len(st_save({k: v.contiguous() for k, v in model.state_dict().items()}))


def _figures(b1: Timing, b64: Timing) -> dict[str, float]:
    return {"b1_median_ms": b1.median_ms, "b1_p90_ms": b1.p90_ms, "b64_median_ms": b64.median_ms,
            "b64_per_s": b64.throughput(64)}


def side_by_side(onnx_files: dict[str, bytes], input_shape: tuple[int, ...], threads: int = 2,
                 rounds: int = 5, runs: int = 20) -> dict[str, dict[str, float]]:
    """Batch-1 latency (ms) and batch-64 throughput (samples/s) of ONNX models timed in interleaved rounds.

    Figures measured minutes or hours apart on a machine whose load changes are not comparable; timed
    round-robin, load shifts hit every model alike. Medians over the rounds.
    """
    x1, x64 = torch.randn(1, *input_shape).numpy(), torch.randn(64, *input_shape).numpy()
    sessions = {k: onnx_runtime.session(b, threads) for k, b in onnx_files.items()}
    b1: dict[str, list[float]] = {k: [] for k in sessions}
    b64: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(rounds):
        for k, sess in sessions.items():
            b1[k].append(time_call(lambda s=sess: onnx_runtime.run(s, x1), warmup=2, runs=runs).median_ms)
            b64[k].append(time_call(lambda s=sess: onnx_runtime.run(s, x64), warmup=1,
                                    runs=max(3, runs // 4)).median_ms)
    return {k: {"latency_ms": statistics.median(b1[k]), "throughput_b64": 64_000 / statistics.median(b64[k])}
            for k in sessions}


def latency(model: nn.Module, input_shape: tuple[int, ...], threads: int = 2, engines=("torch", "onnxruntime"),
            runs: int = 30, onnx_bytes: bytes | None = None) -> dict[str, dict[str, float]]:
    """Batch-1 latency and batch-64 throughput per engine, with `threads` threads."""
    out: dict[str, dict[str, float]] = {}
    x1, x64 = torch.randn(1, *input_shape), torch.randn(64, *input_shape)
    if "torch" in engines:
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        model.eval()
        try:
            with torch.inference_mode():
                out["torch"] = _figures(time_call(lambda: model(x1), runs=runs),
                                        time_call(lambda: model(x64), runs=max(5, runs // 3)))
        finally:
            torch.set_num_threads(old)
    if "onnxruntime" in engines:
        sess = onnx_runtime.session(onnx_bytes or onnx_runtime.export_bytes(model, input_shape), threads)
        n1, n64 = x1.numpy(), x64.numpy()
        out["onnxruntime"] = _figures(time_call(lambda: onnx_runtime.run(sess, n1), runs=runs),
                                      time_call(lambda: onnx_runtime.run(sess, n64), runs=max(5, runs // 3)))
    return out


def evaluate(model: nn.Module, data: DataSplits | None = None, input_shape: tuple[int, ...] | None = None,
             threads: int = 2, engines=("torch", "onnxruntime"), runs: int = 30,
             on_chip_bytes: int = 1 << 20) -> Evaluation:
    """Measure `model`: test accuracy (when `data` is given), counts, size, latency, energy."""
    if input_shape is None:
        if data is None:
            raise ValueError("give data or input_shape")
        input_shape = data.input_shape
    model.eval()
    rows = counts.layer_counts(model, input_shape)
    tot = counts.totals(model, input_shape, rows)
    acts = memory.activation_bytes(model, input_shape)
    size = fp32_size(model)
    en = energy.estimate(tot.macs, 4 * tot.params, acts["total"], integer=False, on_chip_bytes=on_chip_bytes)
    from karuku.cpu import detect

    ev = Evaluation(tot.params, tot.nonzeros, tot.macs, tot.effective_macs, size, acts["peak"], acts["total"],
                    en.as_dict(), threads, layers=[asdict(r) for r in rows], cpu=detect().summary())
    if data is not None:
        s = score(model, data.test)
        ev.accuracy, ev.errors, ev.test_total = s.accuracy, s.errors, s.total
    if engines:
        ev.latency = latency(model, input_shape, threads, engines, runs)
    return ev

