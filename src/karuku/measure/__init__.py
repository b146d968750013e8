"""Measurement of any nn.Module: counts, MACs, sizes of its deployed forms, latency, memory, energy.

>>> from karuku.measure import evaluate
>>> ev = evaluate(model, splits)
"""

from karuku.measure.counts import LayerCount, Totals, layer_counts, totals
from karuku.measure.energy import PJ, Energy, estimate
from karuku.measure.evaluation import Evaluation, evaluate
from karuku.measure.forms import Form, forms_of, fp32_size, register_form
from karuku.measure.memory import activation_bytes
from karuku.measure.onnx_runtime import export_bytes, session
from karuku.measure.speed import latency, side_by_side
from karuku.measure.timing import Speed, Timing, time_call, time_engines

__all__ = [
    "PJ", "Energy", "Evaluation", "Form", "LayerCount", "Speed", "Timing", "Totals", "activation_bytes", "estimate",
    "evaluate", "export_bytes", "forms_of", "fp32_size", "latency", "layer_counts", "register_form", "session",
    "side_by_side", "time_call", "time_engines", "totals",
]
