"""QuantModel: the traced nodes run in float with fake quantization at every integer boundary.

Every value the integer engine stores gets an `ActQuant` (the input, each conv / linear / add /
average-pool / float-fallback output); max-pool, flatten and standalone ReLU keep their input's
quantizer, since the engine runs them on the integers unchanged. Its structure is rebuilt from
(model, settings) by `build_quant_model`, so a checkpoint stores only tensors and the settings.
"""

from __future__ import annotations

import fnmatch
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from karuku.errors import KarukuError
from karuku.quant.config import QuantConfig
from karuku.quant.fakequant import ActQuant, QLayer
from karuku.quant.fuse import WEIGHTED, Node

PASS_THROUGH = ("maxpool", "flatten", "relu", "relu6")


def key(name: str) -> str:
    """A module-dict key for a node name (dots are not allowed there)."""
    return name.replace(".", "__")


def layer_bits(name: str, cfg: QuantConfig) -> int | None:
    """Weight bits of one layer: the last matching `layer_bits` pattern wins; None means float."""
    bits: int | str = cfg.bits
    for pattern, value in cfg.layer_bits.items():
        if fnmatch.fnmatchcase(name, pattern):
            bits = value
    return None if bits == "float" else int(bits)


class QuantModel(nn.Module):
    """A fake-quantized model: `nodes` in order, with `layers`, `acts` and float fallbacks as submodules."""

    def __init__(self, nodes: list[Node], cfg: QuantConfig, bns: dict[str, nn.Module] | None = None):
        super().__init__()
        self.nodes, self.cfg = nodes, cfg
        self.layers, self.acts, self.floats = nn.ModuleDict(), nn.ModuleDict(), nn.ModuleDict()
        self.quantizer: dict[str, str] = {}  # value name -> key of the ActQuant that holds its range
        signed = cfg.act_dtype == "int8"
        floats = []
        dynamic = cfg.mode == "dynamic"
        for n in nodes:
            if n.op in WEIGHTED:
                # dynamic quantization covers Linear layers only (convs gain nothing from it on CPUs)
                bits = None if dynamic and n.op == "conv" else layer_bits(n.name, cfg)
                if bits is None:
                    floats.append(n.name)
                self.layers[key(n.name)] = QLayer(n.module, n.op, n.attrs, bits, cfg.per_channel,
                                                  cfg.weight_observer, (bns or {}).get(n.name))
            elif n.op == "float":
                floats.append(f"{n.name} ({n.attrs.get('kind')})")
                if isinstance(n.module, nn.Module):
                    self.floats[key(n.name)] = n.module
            if n.op in PASS_THROUGH:
                self.quantizer[n.name] = self.quantizer[n.inputs[0]]
            else:
                self.acts[key(n.name)] = ActQuant(cfg.act_bits, signed, cfg.qat_momentum)
                self.quantizer[n.name] = key(n.name)
        if dynamic:
            linear_inputs = {n.inputs[0] for n in nodes if n.op == "linear"}
            for n in nodes:
                self.act(n.name).dynamic = self.act(n.name).dynamic or n.name in linear_inputs
        self.float_layers = [] if dynamic else floats
        unsupported = [f for f in floats if "(" in f]
        if unsupported:
            msg = f"cannot quantize {', '.join(unsupported[:4])}"
            if cfg.strict:
                raise KarukuError(msg, "replace the layer, or drop --strict to keep it in float")
            warnings.warn(f"{msg}; kept in float (the integer engine and int8 ONNX need every layer quantized)",
                          stacklevel=3)

    def act(self, name: str) -> ActQuant:
        """The quantizer that holds the range of value `name`."""
        return self.acts[self.quantizer[name]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env: dict[str, torch.Tensor] = {}
        out = None
        for n in self.nodes:
            ins = [env[i] for i in n.inputs]
            if n.op == "input":
                y = x
            elif n.op in WEIGHTED:
                src = self.act(n.inputs[0])
                static = bool(src.enabled) and src.observer is None and not src.dynamic
                scale = src.qparams()[0] if static else None
                y = self.layers[key(n.name)](ins[0], scale)
            elif n.op == "add":
                y = ins[0] + ins[1]
                y = F.relu(y) if n.attrs.get("act") == "relu" else F.relu6(y) if n.attrs.get("act") else y
            elif n.op == "maxpool":
                y = F.max_pool2d(ins[0], n.attrs["kernel"], n.attrs["stride"], n.attrs["padding"])
            elif n.op == "avgpool":
                y = (ins[0].mean((2, 3), keepdim=True) if n.attrs["global"]
                     else F.avg_pool2d(ins[0], n.attrs["kernel"], n.attrs["stride"]))
            elif n.op == "flatten":
                y = ins[0].flatten(1)
            elif n.op == "relu":
                y = F.relu(ins[0])
            elif n.op == "relu6":
                y = F.relu6(ins[0])
            else:  # float fallback
                y = self.floats[key(n.name)](*ins)
            if n.op not in ("maxpool", "flatten", "relu"):  # those stay on their input's grid exactly
                y = self.act(n.name)(y)
            env[n.name] = y
            if n.attrs.get("is_output"):
                out = y
        return out

    @property
    def is_static(self) -> bool:
        """Every layer quantized with calibrated ranges: what the integer engine, QDQ ONNX and C export need."""
        return self.cfg.mode != "dynamic" and not self.float_layers

    def describe(self) -> list[dict]:
        """The structure, for checkpoints and mismatch checks."""
        return [n.describe() for n in self.nodes]
