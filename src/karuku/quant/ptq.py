"""Static post-training quantization: trace, fold, calibrate activation ranges, correct biases."""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from karuku.data.batches import as_inputs
from karuku.errors import KarukuError
from karuku.quant.config import QuantConfig
from karuku.quant.fuse import WEIGHTED, Node, trace
from karuku.quant.model import QuantModel, key
from karuku.quant.observers import get_observer

# integer inputs an embedding lookup takes (token ids, masks); uint8 / int8 inputs are unnormalised images
TOKEN_DTYPES = (torch.int64, torch.int32)


def calibration_inputs(data, limit: int | None = None, n_inputs: int = 1,
                       model: nn.Module | None = None) -> tuple[torch.Tensor, ...]:
    """Calibration inputs as one tensor per model input: a tensor, a TensorDataset (its first `n_inputs` tensors),
    a DataLoader or a list of batches (each a tensor, a tuple whose first `n_inputs` items are the inputs, or a
    training batch `(x, y)` whose `x` is a tuple or dict of them, karuku.data.batches), or, for a model with several
    inputs (`n_inputs` > 1), one tuple of them (token ids, attention mask) or a dict of them by name (put in
    `model.forward`'s order). Floats, or int64 / int32 token ids."""
    data = _ordered(data, model)
    if isinstance(data, torch.Tensor):
        xs = (data,)
    elif isinstance(data, TensorDataset):
        xs = tuple(data.tensors[:n_inputs])
    elif n_inputs > 1 and isinstance(data, tuple) and all(isinstance(t, torch.Tensor) for t in data):
        xs = data[:n_inputs]
    elif isinstance(data, (DataLoader, list, tuple)) or isinstance(data, Iterable):
        parts: list[tuple[torch.Tensor, ...]] = []
        for batch in data:
            if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], (list, tuple, dict)):
                batch = _ordered(as_inputs(batch[0]), model)  # a training batch ((ids, mask), y): its input part
            t = tuple(batch[:n_inputs]) if isinstance(batch, (list, tuple)) else (batch,)
            if not all(isinstance(v, torch.Tensor) for v in t):
                raise KarukuError(f"calibration batches must be tensors, got {type(t[0]).__name__}",
                                  "pass a tensor of inputs, a TensorDataset or a DataLoader")
            parts.append(t)
            if limit and sum(len(p[0]) for p in parts) >= limit:
                break
        if not parts:
            raise KarukuError("calibration data is empty", "give at least one batch of inputs")
        if len({len(p) for p in parts}) > 1:
            raise KarukuError("calibration batches hold different numbers of inputs", "give every batch all inputs")
        xs = tuple(torch.cat(col) for col in zip(*parts))
    else:
        raise KarukuError(f"calibration data of type {type(data).__name__} is not supported",
                          "pass a tensor of inputs, a TensorDataset or a DataLoader")
    if len(xs) < n_inputs:
        raise KarukuError(f"the model takes {n_inputs} inputs, the calibration data holds {len(xs)}",
                          "give a tuple of all inputs (e.g. token ids and attention mask)")
    if any(x.dim() == 0 or len(x) == 0 or x.numel() == 0 for x in xs):
        raise KarukuError("calibration data is empty", "give at least one input (e.g. --calibration 512)")
    if len({len(x) for x in xs}) > 1:
        raise KarukuError(f"calibration inputs of different lengths {[len(x) for x in xs]}",
                          "give the same number of examples for every input")
    for x in xs:
        if not x.is_floating_point() and x.dtype not in TOKEN_DTYPES:
            raise KarukuError(f"calibration inputs must be float (or int64 token ids), got {x.dtype}",
                              "normalise them as for training")
    return tuple(x[:limit] for x in xs) if limit else xs


def _ordered(data, model: nn.Module | None):
    """A dict of input tensors as a tuple in `model.forward`'s order; anything else as it is."""
    if not (isinstance(data, dict) and data and all(isinstance(t, torch.Tensor) for t in data.values())):
        return data
    from karuku.measure.inputs import forward_order

    return tuple(data[k] for k in (forward_order(model, list(data)) if model is not None else data))


def n_inputs(model: nn.Module) -> int:
    """How many positional inputs `model.forward` requires (1 when it cannot be read)."""
    from karuku.measure.inputs import required_inputs

    return max(1, len(required_inputs(model)))


def check_shape(x, input_shape: tuple[int, ...] | None) -> None:
    """Calibration inputs must have the model's input shape (one input; several are checked by tracing)."""
    if isinstance(x, tuple):
        if len(x) != 1:
            return
        x = x[0]
    if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
        raise KarukuError(f"calibration inputs have shape {tuple(x.shape[1:])}, the model expects "
                          f"{tuple(input_shape)}", "give inputs shaped like the model's training data")


def unfold_bns(model: nn.Module, nodes: list[Node]) -> tuple[list[Node], dict[str, nn.Module]]:
    """Nodes whose conv keeps its raw weights, and the BatchNorms to fold during training."""
    bns = {}
    for n in nodes:
        if n.bn is not None and isinstance(n.bn, nn.BatchNorm2d) and n.op == "conv":
            n.module, bns[n.name] = n.raw, copy.deepcopy(n.bn)
    return nodes, bns


def prepare(model: nn.Module, cfg: QuantConfig, example, keep_bn: bool = False) -> QuantModel:
    """Trace `model` on `example` (a tensor, or a tuple of its inputs) and wrap it in fake quantization (ranges
    still unset)."""
    nodes = trace(model, example)
    bns = None
    if keep_bn:
        nodes, bns = unfold_bns(model, nodes)
    return QuantModel(nodes, cfg, bns)


@torch.no_grad()
def calibrate(qm: QuantModel, x, cfg: QuantConfig) -> QuantModel:
    """Observe every activation over `x` (a tensor, or a tuple of the model's inputs) in batches, set the ranges,
    then correct the biases."""
    xs = x if isinstance(x, tuple) else (x,)
    if cfg.adaround and len(xs) > 1:
        raise KarukuError("AdaRound takes models with one input", "drop adaround for a model with several inputs")
    x = xs[0]
    qm.eval()
    for a in qm.acts.values():
        a.observer = get_observer(cfg.observer)
    for layer in qm.layers.values():
        if cfg.bias_correction:
            layer.in_mean, layer.in_count = 0, 0
    try:
        for i in range(0, len(x), cfg.calibration_batch):
            qm(*(t[i : i + cfg.calibration_batch] for t in xs))
    finally:
        observers = {k: a.observer for k, a in qm.acts.items()}
        for a in qm.acts.values():
            a.observer = None
    for k, a in qm.acts.items():
        a.set_range(*observers[k].range(a.bits, a.signed))
    if cfg.input_range is not None:  # pinned (e.g. pixels / 255 → the 8-bit pixel exactly), not calibrated
        for n in qm.nodes:
            if n.op == "input":
                qm.act(n.name).set_range(*cfg.input_range)
    if cfg.adaround:  # learnt rounding on the quantized inputs, before bias correction (which it makes moot)
        from karuku.quant.adaround import adaround

        adaround(qm, x, cfg.adaround, cfg.adaround_iters)
    for n in qm.nodes:
        layer = qm.layers[key(n.name)] if n.op in WEIGHTED else None
        if layer is None:
            continue
        if layer.in_mean is not None and layer.bits is not None and not isinstance(layer.in_mean, int):
            correct_bias(layer, layer.in_mean / layer.in_count, qm.act(n.inputs[0]).qparams()[0])
        layer.in_mean = None
    return qm


def correct_bias(layer, mean: torch.Tensor, in_scale: torch.Tensor | None = None) -> None:
    """b −= (W_q − W)·E[x]: the expected output shift of weight rounding removed (Nagel et al. 2019)."""
    w = layer.weight
    dw = (layer.quant_weight(w, in_scale) - w).detach()
    dw = dw.sum((2, 3)) if dw.dim() == 4 else dw  # (Cout, Cin/groups)
    groups = layer.attrs.get("groups", 1)
    cout, per_group = dw.shape
    mean_g = mean.reshape(groups, per_group)[torch.arange(cout) // (cout // groups)]
    layer.bias.data -= (dw * mean_g).sum(1)


def quantize_static(model: nn.Module, cfg: QuantConfig, data, input_shape: tuple[int, ...] | None = None) -> QuantModel:
    """PTQ: the fake-quantized model, calibrated on up to `cfg.calibration` inputs of `data`."""
    xs = calibration_inputs(data, cfg.calibration, n_inputs(model))
    check_shape(xs, input_shape)
    qm = prepare(model, cfg, first(xs))
    return calibrate(qm, xs if len(xs) > 1 else xs[0], cfg)


def first(xs: tuple[torch.Tensor, ...]):
    """The first example of each input: what tracing runs (one tensor for a one-input model)."""
    return tuple(x[:1] for x in xs) if len(xs) > 1 else xs[0][:1]

