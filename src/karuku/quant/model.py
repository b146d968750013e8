"""QuantModel: the traced nodes run in float with fake quantization at every integer boundary.

Every value the integer engine stores gets an `ActQuant` (the input, each conv / linear / add /
average-pool / concatenation / activation-table / float-fallback output); the ops that move integers
without arithmetic (max-pool, flatten, reshape, transpose, nearest upsampling, zero padding, ReLU) keep
their input's quantizer, since the engine runs them on the integers unchanged. `aux` values (sizes,
parameters read by a float op) are not activations and get none. Its structure is rebuilt from
(model, settings) by `store.rebuild`, so a checkpoint stores only tensors and the settings.
"""

from __future__ import annotations

import fnmatch
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from karuku.errors import KarukuError
from karuku.quant import bag
from karuku.quant.config import QuantConfig
from karuku.quant.fakequant import ActQuant, QLayer
from karuku.quant.nodes import PASS_THROUGH, WEIGHTED, Node
from karuku.quant.unary import apply as apply_unary

# pass-through ops whose output is exactly on the input's grid: no second fake quantization
EXACT = ("maxpool", "flatten", "relu", "reshape", "transpose", "upsample", "pad")


def key(name: str) -> str:
    """A module-dict key for a node name (dots are not allowed there, nor a ModuleDict attribute's name: a
    traced `x.to(...)` or `x.float()` is a node called `to` or `float`)."""
    k = name.replace(".", "__")
    return f"{k}_" if hasattr(nn.ModuleDict, k) else k


def layer_bits(name: str, cfg: QuantConfig) -> int | None:
    """Weight bits of one layer: the last matching `layer_bits` pattern wins; None means float."""
    bits: int | str = cfg.bits
    for pattern, value in cfg.layer_bits.items():
        if fnmatch.fnmatchcase(name, pattern):
            bits = value
    return None if bits == "float" else int(bits)


class QuantModel(nn.Module):
    """A fake-quantized model: `nodes` in order, with `layers`, `acts` and float fallbacks as submodules."""

    def __init__(self, nodes: list[Node], cfg: QuantConfig, bns: dict[str, nn.Module] | None = None,
                 check: bool = True):
        super().__init__()
        self.nodes, self.cfg = nodes, cfg
        self.layers, self.acts, self.floats = nn.ModuleDict(), nn.ModuleDict(), nn.ModuleDict()
        self.quantizer: dict[str, str] = {}  # value name -> key of the ActQuant that holds its range
        signed = cfg.act_dtype == "int8"
        floats = []
        dynamic = cfg.mode == "dynamic"
        # the float calls on token inputs that run in their integer form (a lookup, a bag, a cast): all of them
        # but in dynamic mode, where only Linear layers are quantized, and those layer_bits keeps float on purpose
        self.integer_forms: dict[str, str] = {
            n.name: n.attrs["integer_form"] for n in nodes
            if n.attrs.get("integer_form") and not dynamic and layer_bits(n.name, cfg) is not None}
        for n in nodes:
            if n.op in WEIGHTED:
                # dynamic quantization covers Linear layers only (convs gain nothing from it on CPUs)
                bits = None if dynamic and n.op == "conv" else layer_bits(n.name, cfg)
                if bits is None:
                    floats.append(n.name)
                self.layers[key(n.name)] = QLayer(n.module, n.op, n.attrs, bits, cfg.per_channel,
                                                  cfg.weight_observer, (bns or {}).get(n.name))
            elif n.op in ("float", "aux"):
                if n.op == "float" and n.name not in self.integer_forms:
                    floats.append(f"{n.name} ({n.attrs.get('kind')})")
                if isinstance(n.module, nn.Module):
                    self.floats[key(n.name)] = n.module
            if n.op == "aux" or n.attrs.get("integer"):  # not activations: no range
                continue
            if n.op in PASS_THROUGH:
                self.quantizer[n.name] = self.quantizer[n.inputs[0]]
            else:
                self.acts[key(n.name)] = ActQuant(cfg.act_bits, signed, cfg.qat_momentum)
                self.quantizer[n.name] = key(n.name)
        if dynamic:
            linear_inputs = {n.inputs[0] for n in nodes if n.op == "linear"}
            for n in nodes:
                if n.name in self.quantizer:
                    self.act(n.name).dynamic = self.act(n.name).dynamic or n.name in linear_inputs
        self.float_layers = [] if dynamic else floats
        if check:
            _check_supported(nodes, cfg)

    def _by_name(self, named: dict[str, torch.Tensor], given: int) -> tuple[torch.Tensor, ...]:
        order = self.input_names
        wrong = sorted(set(named) ^ set(order[given:]))
        if wrong:
            raise KarukuError(f"the quantized model takes {', '.join(order)}; given {', '.join(named)} by name after "
                              f"{given} in order", "give its inputs by the original forward's names")
        return tuple(named[k] for k in order[given:])

    def act(self, name: str) -> ActQuant:
        """The quantizer that holds the range of value `name`."""
        return self.acts[self.quantizer[name]]

    @property
    def input_names(self) -> list[str]:
        """The traced model's input names in forward's order (measurement names the inputs `*xs` stand for)."""
        inputs = (n for n in self.nodes if n.op == "input")
        return [n.name for n in sorted(inputs, key=lambda n: n.attrs.get("index", 0))]

    def forward(self, *xs: torch.Tensor, **named: torch.Tensor) -> torch.Tensor:
        """The traced model on its inputs, in forward's order or by its parameter names (a dict batch)."""
        if named:
            xs = xs + self._by_name(named, len(xs))
        env: dict[str, torch.Tensor] = {}
        out = None
        for n in self.nodes:
            ins = [env[i] for i in n.inputs]
            if n.op == "input":
                y = xs[n.attrs.get("index", 0)]
                if n.attrs.get("integer"):  # token ids run as they are
                    env[n.name] = y
                    continue
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
                     else F.avg_pool2d(ins[0], n.attrs["kernel"], n.attrs["stride"], n.attrs.get("padding", 0)))
            elif n.op == "flatten":
                y = ins[0].flatten(1)
            elif n.op == "relu":
                y = F.relu(ins[0])
            elif n.op == "relu6":
                y = F.relu6(ins[0])
            elif n.op == "cat":
                y = torch.cat(ins, n.attrs["axis"])
            elif n.op == "unary":
                y = apply_unary(n.attrs["fn"], ins[0], n.attrs)
            elif n.op == "reshape":
                y = ins[0].reshape(len(ins[0]), *n.shape)
            elif n.op == "transpose":
                y = ins[0].permute(0, *[p + 1 for p in n.attrs["perm"]])
            elif n.op == "upsample":
                y = ins[0].repeat_interleave(n.attrs["scale"][0], 2).repeat_interleave(n.attrs["scale"][1], 3)
            elif n.op == "pad":
                top, left, bottom, right = n.attrs["pads"]
                y = F.pad(ins[0], (left, right, top, bottom))
            elif self.integer_forms.get(n.name) == "bag":
                y = bag.fake_forward(self.floats[key(n.name)].owner, ins[0])  # the table rounded like a weight
            else:  # float fallback, or an aux value
                y = self.floats[key(n.name)](*ins)
            if n.op != "aux" and n.op not in EXACT:  # those stay on their input's grid exactly
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


def _check_supported(nodes: list[Node], cfg: QuantConfig) -> None:
    """PTQ / QAT: a node with no integer form is an error now, not a failed export later; the user may keep
    it in float on purpose (`layer_bits={name: "float"}`, fake-quant only) unless `strict`. Dynamic
    quantization runs everything but its Linear layers in float anyway: a warning there."""
    # a float op reading integers (an embedding lookup) has no integer form but needs none: it stays float
    unsupported = [n for n in nodes if n.op == "float" and not n.attrs.get("from_integer")]
    if not unsupported:
        return
    first = unsupported[0]
    what = f"node '{first.name}' ({first.attrs.get('kind')})"
    more = f" and {len(unsupported) - 1} more" if len(unsupported) > 1 else ""
    if cfg.mode == "dynamic":
        warnings.warn(f"cannot quantize {what}{more}; kept in float", stacklevel=4)
        return
    blocked = [n for n in unsupported if cfg.strict or layer_bits(n.name, cfg) is not None]
    if not blocked:
        return
    first = blocked[0]
    what = f"node '{first.name}' ({first.attrs.get('kind')})"
    more = f" (and {len(blocked) - 1} more)" if len(blocked) > 1 else ""
    hint = ("strict mode keeps nothing in float: replace the layer" if cfg.strict else
            f"replace it with a layer docs/QUANTIZATION.md lists, or keep it in float with layer_bits "
            f"{{'{first.name}': 'float'}} (--layer-bits '{first.name}=float'; fake-quant only, no int8 export)")
    raise KarukuError(f"cannot quantize {what}{more}: it has no integer form", hint)
