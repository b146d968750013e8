"""Mixed precision: per-layer sensitivity to low-bit weights, and the automatic choice of bit widths.

Activation ranges do not depend on weight bits, so one calibrated model serves every trial: a trial
only changes `bits` on layers and scores the model on held-out data. `auto_layer_bits` puts every
layer at `low_bits`, then moves the most sensitive layers back to 8 bits, one at a time, until the
accuracy drop against the float model is within `max_drop`: the fewest layers at high precision.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import TensorDataset

from karuku.quant.fuse import WEIGHTED
from karuku.quant.model import QuantModel, key
from karuku.training.evaluate import score


@dataclass(frozen=True)
class Sensitivity:
    """Accuracy drop when one layer alone has `bits`-bit weights (all others 8)."""

    layer: str
    bits: int
    drop: float


def weighted_layers(qm: QuantModel) -> list[str]:
    """Names of the quantized (not float) conv / linear layers, in order."""
    return [n.name for n in qm.nodes if n.op in WEIGHTED and qm.layers[key(n.name)].bits is not None]


def accuracy_with(qm: QuantModel, bits: dict[str, int], data: TensorDataset) -> float:
    """Accuracy of `qm` with the given per-layer weight bits (restored afterwards)."""
    saved = {name: qm.layers[key(name)].bits for name in bits}
    try:
        for name, b in bits.items():
            qm.layers[key(name)].bits = b
        return score(qm, data).accuracy
    finally:
        for name, b in saved.items():
            qm.layers[key(name)].bits = b


def sensitivity(qm: QuantModel, data: TensorDataset, low_bits: int = 4) -> list[Sensitivity]:
    """Each layer's accuracy drop at `low_bits` (others at 8), most sensitive first."""
    layers = weighted_layers(qm)
    base = accuracy_with(qm, {n: 8 for n in layers}, data)
    rows = []
    for name in layers:
        bits = {n: 8 for n in layers}
        bits[name] = low_bits
        rows.append(Sensitivity(name, low_bits, base - accuracy_with(qm, bits, data)))
    return sorted(rows, key=lambda r: -r.drop)


def auto_layer_bits(qm: QuantModel, data: TensorDataset, float_accuracy: float, max_drop: float,
                    low_bits: int = 4) -> tuple[dict[str, int], list[Sensitivity]]:
    """Per-layer bits with the fewest layers at 8 bits whose accuracy drop is ≤ `max_drop`."""
    ranking = sensitivity(qm, data, low_bits)
    order = [r.layer for r in ranking]
    bits = {n: low_bits for n in order}
    for k in range(len(order) + 1):
        bits = {n: (8 if i < k else low_bits) for i, n in enumerate(order)}
        if float_accuracy - accuracy_with(qm, bits, data) <= max_drop:
            break
    return bits, ranking
