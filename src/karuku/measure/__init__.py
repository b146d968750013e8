"""Measurement of any nn.Module: counts, MACs, size, latency, memory, energy.

>>> from karuku.measure import evaluate
>>> ev = evaluate(model, splits)
"""

from karuku.measure.counts import LayerCount, Totals, layer_counts, totals
from karuku.measure.energy import PJ, Energy, estimate
from karuku.measure.evaluate import Evaluation, evaluate, fp32_size, latency
from karuku.measure.memory import activation_bytes
from karuku.measure.onnx_runtime import export_bytes, export_onnx, session
from karuku.measure.timing import Timing, time_call

__all__ = [
    "PJ", "Energy", "Evaluation", "LayerCount", "Timing", "Totals", "activation_bytes", "estimate", "evaluate",
    "export_bytes", "export_onnx", "fp32_size", "latency", "layer_counts", "session", "time_call", "totals",
]
