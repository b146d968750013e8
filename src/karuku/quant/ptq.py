"""Static post-training quantization: trace, fold, calibrate activation ranges, correct biases."""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from karuku.errors import KarukuError
from karuku.quant.config import QuantConfig
from karuku.quant.fuse import WEIGHTED, Node, trace
from karuku.quant.model import QuantModel, key
from karuku.quant.observers import get_observer


def calibration_tensor(data, limit: int | None = None) -> torch.Tensor:
    """Calibration inputs as one float tensor: a tensor, a TensorDataset, a DataLoader or batches of them."""
    if isinstance(data, torch.Tensor):
        x = data
    elif isinstance(data, TensorDataset):
        x = data.tensors[0]
    elif isinstance(data, (DataLoader, list, tuple)) or isinstance(data, Iterable):
        parts = []
        for batch in data:
            t = batch[0] if isinstance(batch, (list, tuple)) else batch
            if not isinstance(t, torch.Tensor):
                raise KarukuError(f"calibration batches must be tensors, got {type(t).__name__}",
                                  "pass a tensor of inputs, a TensorDataset or a DataLoader")
            parts.append(t)
            if limit and sum(len(p) for p in parts) >= limit:
                break
        if not parts:
            raise KarukuError("calibration data is empty", "give at least one batch of inputs")
        x = torch.cat(parts)
    else:
        raise KarukuError(f"calibration data of type {type(data).__name__} is not supported",
                          "pass a tensor of inputs, a TensorDataset or a DataLoader")
    if x.numel() == 0 or len(x) == 0:
        raise KarukuError("calibration data is empty", "give at least one input (e.g. --calibration 512)")
    if not x.is_floating_point():
        raise KarukuError(f"calibration inputs must be float, got {x.dtype}", "normalise them as for training")
    return x[:limit] if limit else x


def check_shape(x: torch.Tensor, input_shape: tuple[int, ...] | None) -> None:
    """Calibration inputs must have the model's input shape."""
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


def prepare(model: nn.Module, cfg: QuantConfig, example: torch.Tensor, keep_bn: bool = False) -> QuantModel:
    """Trace `model` and wrap it in fake quantization (ranges still unset)."""
    nodes = trace(model, example)
    bns = None
    if keep_bn:
        nodes, bns = unfold_bns(model, nodes)
    return QuantModel(nodes, cfg, bns)


@torch.no_grad()
def calibrate(qm: QuantModel, x: torch.Tensor, cfg: QuantConfig) -> QuantModel:
    """Observe every activation over `x` in batches, set the ranges, then correct the biases."""
    qm.eval()
    for a in qm.acts.values():
        a.observer = get_observer(cfg.observer)
    for layer in qm.layers.values():
        if cfg.bias_correction:
            layer.in_mean, layer.in_count = 0, 0
    try:
        for i in range(0, len(x), cfg.calibration_batch):
            qm(x[i : i + cfg.calibration_batch])
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
    x = calibration_tensor(data, cfg.calibration)
    check_shape(x, input_shape)
    qm = prepare(model, cfg, x[:1])
    return calibrate(qm, x, cfg)

