"""Quantized checkpoints: QParams (the quantization parameters as a value object) and the rebuild transform.

A quantized checkpoint is a normal karuku checkpoint whose `transforms` end with `quantize`: loading
rebuilds the float model from its spec, traces and wraps it again (same structure), then loads the
fake-quant weights and ranges strictly. The parameters themselves are also written out plainly: per
tensor scale / zero point / type under `meta["quant"]`, per-channel weight scales in section `qparams`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from karuku.config import STORED
from karuku.errors import KarukuError
from karuku.io.checkpoint import register_transform, save_checkpoint
from karuku.measure.inputs import Input, Signature, forward_order
from karuku.models.spec import ModelSpec
from karuku.quant.config import QuantConfig
from karuku.quant.fuse import WEIGHTED, trace
from karuku.quant.model import QuantModel, key

TRANSFORM = "quantize"
MODULE = "karuku.quant.store"  # recorded with the transform: a checkpoint names the module that rebuilds it


@dataclass
class QParams:
    """Scales and zero points of every activation, per-channel weight scales and bits of every layer."""

    activations: dict[str, dict[str, Any]]
    weight_scales: dict[str, torch.Tensor]
    weight_bits: dict[str, int | None]

    @classmethod
    def from_model(cls, qm: QuantModel) -> QParams:
        acts = {}
        for n in qm.nodes:
            a = qm.act(n.name) if n.name in qm.quantizer else None
            if a is not None and bool(a.enabled):
                s, z = a.qparams()
                acts[n.name] = {"scale": float(s), "zero_point": int(z), "bits": a.bits,
                                "dtype": ("int" if a.signed else "uint") + str(a.bits)}
        scales, bits = {}, {}
        for n in qm.nodes:
            if n.op in WEIGHTED:
                layer = qm.layers[key(n.name)]
                bits[n.name] = layer.bits
                if layer.bits is not None:
                    src = qm.act(n.inputs[0])
                    in_scale = src.qparams()[0] if bool(src.enabled) and not src.dynamic else None
                    scales[n.name] = layer.weight_scale(None, in_scale).detach().clone()
        return cls(acts, scales, bits)

    def meta(self) -> dict[str, Any]:
        return {"activations": self.activations, "weight_bits": self.weight_bits}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f"{k}.weight_scale": v for k, v in self.weight_scales.items()}

    def weight_bytes(self, qm: QuantModel) -> int:
        """Bytes of the weights as stored integers (bits rounded up to whole bytes) plus int32 biases; what float
        nodes hold (an embedding table) in float32, or as int8 rows where the integer engine looks them up."""
        total = 0
        for n in qm.nodes:
            if n.op in WEIGHTED:
                layer = qm.layers[key(n.name)]
                per = 4 if layer.bits is None else 1
                total += layer.weight.numel() * per + layer.bias.numel() * 4
            elif n.op == "float" and key(n.name) in qm.floats:
                per = 1 if qm.integer_forms.get(n.name) in ("gather", "bag") else 4  # int8 rows, else float32
                total += per * sum(p.numel() for p in qm.floats[key(n.name)].parameters())
        return total


def transform_params(qm: QuantModel, inputs, model: nn.Module | None = None) -> dict[str, Any]:
    """What the `quantize` transform records: the settings, the inputs it was traced with and the traced
    structure. `inputs`: an input shape, or a `Signature` — several or integer inputs (token ids, a mask) are
    recorded one by one in `model.forward`'s order, as `rebuild` traces them again."""
    out = {"config": qm.cfg.model_dump(mode="json"), "nodes": qm.describe()}
    shape = inputs.input_shape if isinstance(inputs, Signature) else inputs
    if shape is not None:
        return {**out, "input_shape": list(shape)}
    by_name = {i.name: i for i in inputs.inputs}
    names = forward_order(model, inputs.names) if inputs.keywords and model is not None else inputs.names
    return {**out, "inputs": [by_name[n].as_dict() for n in names]}


@register_transform(TRANSFORM)
def rebuild(model: nn.Module, params: dict[str, Any]) -> QuantModel:
    """Wrap a freshly built float model in the same fake-quant structure as the checkpoint's."""
    cfg = QuantConfig.model_validate(params["config"], context=STORED)
    if "inputs" in params:  # several or integer inputs, in forward's order
        example = tuple(Input.from_dict(d).fixed(1) for d in params["inputs"])
    else:
        example = torch.zeros(1, *tuple(params["input_shape"]))
    try:
        nodes = trace(model, example)
    except KarukuError as exc:
        raise KarukuError(f"fake-quant checkpoint does not fit {type(model).__name__}: {exc.message}",
                          "load it into the architecture it was quantized from") from None
    want, got = params["nodes"], [n.describe() for n in nodes]
    if want != got:
        diff = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
        a = want[diff]["name"] + f" ({want[diff]['op']})" if diff < len(want) else "nothing"
        b = got[diff]["name"] + f" ({got[diff]['op']})" if diff < len(got) else "nothing"
        raise KarukuError(f"fake-quant checkpoint does not match {type(model).__name__}: layer {diff} is {a} "
                          f"in the checkpoint but {b} in the model",
                          "load it into the architecture it was quantized from")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warning about float layers was given when quantizing
        return QuantModel(nodes, cfg, check=False)  # ranges and `enabled` flags come with the weights; the
        # check for layers without an integer form was made when quantizing


def save_quantized(path: str | os.PathLike, qm: QuantModel, spec: ModelSpec, meta: dict[str, Any] | None = None,
                   transforms: list[dict[str, Any]] | None = None, inputs: Signature | None = None,
                   model: nn.Module | None = None) -> Path:
    """Write a quantized checkpoint (atomically); `transforms` are the float model's own, replayed first.
    `inputs`: what the model was traced on when it is not one input of `spec.input_shape` (a `Signature` of token
    ids and a mask, recorded one by one so that loading traces them again; `model`: the float model)."""
    qp = QParams.from_model(qm)
    meta = dict(meta or {})
    traced = transform_params(qm, inputs if inputs is not None else spec.input_shape, model)
    meta["transforms"] = list(transforms or []) + [{"name": TRANSFORM, "module": MODULE, "params": traced}]
    meta["quant"] = {**qp.meta(), "mode": qm.cfg.mode, "float_layers": qm.float_layers,
                     "int_weight_bytes": qp.weight_bytes(qm)}
    return save_checkpoint(path, qm, spec, meta, sections={"qparams": qp.tensors()})


def load_quantized(path: str | os.PathLike, model: nn.Module | None = None) -> QuantModel:
    """A quantized checkpoint's QuantModel; with `model`, rebuilt on that model (checked to match)."""
    from karuku.io.checkpoint import load_checkpoint, load_state

    ckpt = load_checkpoint(path)
    steps = ckpt.meta.get("transforms", [])
    if not steps or steps[-1].get("name") != TRANSFORM:
        raise KarukuError(f"{path} is not a quantized checkpoint", "quantize it first: karuku quantize CKPT")
    if model is None:
        qm = ckpt.build_model()
    else:
        qm = rebuild(model, steps[-1]["params"])
        load_state(qm, ckpt.state, str(path), ckpt.spec.name)
    qm.eval()
    return qm
