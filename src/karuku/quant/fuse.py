"""From any traceable nn.Module to a flat list of quantizable nodes, BatchNorm folded, activations fused.

torch.fx traces the model; each fx node becomes one `Node` whose `op` is one of OPS. BatchNorm
after a conv / linear is folded into its weights and bias; ReLU / ReLU6 after a conv, linear or
add becomes that node's `act` (its clamp); dropout and identities disappear. Anything else is an
`op="float"` node that runs unquantized (the caller warns, or refuses in strict mode).
"""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from karuku.errors import KarukuError

OPS = ("input", "conv", "linear", "relu", "relu6", "maxpool", "avgpool", "add", "flatten", "float")
WEIGHTED = ("conv", "linear")
_IDENTITY = (nn.Dropout, nn.Identity, nn.Dropout1d, nn.Dropout2d)


@dataclass
class Node:
    """One step of the traced model: `op` on the values named `inputs`, producing the value `name`."""

    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    module: nn.Module | None = None  # conv / linear (folded), or the float fallback's callable
    shape: tuple[int, ...] = ()  # output shape without the batch dimension
    raw: nn.Module | None = None  # conv / linear before BatchNorm folding (QAT folds on the fly)
    bn: nn.Module | None = None  # the BatchNorm that was folded

    def describe(self) -> dict[str, Any]:
        """JSON-able structure (no weights): what checkpoints store to recognise a model."""
        return {"name": self.name, "op": self.op, "inputs": list(self.inputs), "shape": list(self.shape)}


def fold_bn(layer: nn.Module, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> nn.Module:
    """A copy of conv / linear `layer` with eval-mode BatchNorm `bn` folded into weight and bias."""
    out = copy.deepcopy(layer)
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    factor = (gamma / std).detach()
    bias = layer.bias.detach() if layer.bias is not None else torch.zeros_like(std)
    with torch.no_grad():
        out.weight = nn.Parameter(layer.weight.detach() * factor.reshape(-1, *[1] * (layer.weight.dim() - 1)))
        out.bias = nn.Parameter((bias - bn.running_mean) * factor + beta.detach())
    return out


def _pair(v) -> list[int]:
    return [int(v), int(v)] if isinstance(v, int) else [int(a) for a in v]


def _module_node(name: str, mod: nn.Module, args: list[str]) -> Node:
    if isinstance(mod, nn.Conv2d) and mod.padding_mode == "zeros" and _pair(mod.dilation) == [1, 1] \
            and not isinstance(mod.padding, str):
        return Node(name, "conv", args, {"stride": _pair(mod.stride), "padding": _pair(mod.padding),
                                         "groups": mod.groups}, copy.deepcopy(mod))
    if isinstance(mod, nn.Linear):
        return Node(name, "linear", args, {}, copy.deepcopy(mod))
    if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return Node(name, "bn", args, {}, mod)
    if isinstance(mod, nn.ReLU) or (isinstance(mod, nn.Hardtanh) and (mod.min_val, mod.max_val) == (0.0, 6.0)
                                     and not isinstance(mod, nn.ReLU6)):
        return Node(name, "relu", args)
    if isinstance(mod, nn.ReLU6):
        return Node(name, "relu6", args)
    if isinstance(mod, nn.MaxPool2d) and not mod.ceil_mode and _pair(mod.dilation) == [1, 1]:
        return Node(name, "maxpool", args, {"kernel": _pair(mod.kernel_size), "padding": _pair(mod.padding),
                                            "stride": _pair(mod.stride or mod.kernel_size)})
    if isinstance(mod, nn.AdaptiveAvgPool2d) and _pair(mod.output_size) == [1, 1]:
        return Node(name, "avgpool", args, {"global": True})
    if isinstance(mod, nn.AvgPool2d) and _pair(mod.padding) == [0, 0] and not mod.ceil_mode:
        return Node(name, "avgpool", args, {"global": False, "kernel": _pair(mod.kernel_size),
                                            "stride": _pair(mod.stride or mod.kernel_size)})
    if isinstance(mod, nn.Flatten) and mod.start_dim == 1 and mod.end_dim == -1:
        return Node(name, "flatten", args)
    return Node(name, "float", args, {"kind": type(mod).__name__}, mod)


def _function_node(name: str, fn, args: list[str], kwargs: dict) -> Node:
    if fn in (operator.add, torch.add) and len(args) == 2 and not kwargs:
        return Node(name, "add", args)
    if fn in (F.relu, torch.relu):
        return Node(name, "relu", args[:1])
    if fn is F.relu6:
        return Node(name, "relu6", args[:1])
    if fn is torch.flatten:
        return Node(name, "flatten", args[:1])
    return Node(name, "float", args, {"kind": getattr(fn, "__name__", str(fn))}, None)


def trace(model: nn.Module, example: torch.Tensor) -> list[Node]:
    """Trace `model` (eval mode) into nodes with output shapes; BN folded, activations fused."""
    model = model.eval()
    try:
        gm = fx.symbolic_trace(model)
    except Exception as exc:
        raise KarukuError(f"cannot trace {type(model).__name__} with torch.fx ({str(exc).splitlines()[0][:200]})",
                          "quantization needs a model without data-dependent control flow") from None
    from torch.fx.passes.shape_prop import ShapeProp

    try:
        ShapeProp(gm).propagate(example[:1])
    except Exception as exc:
        raise KarukuError(f"calibration inputs of shape {tuple(example.shape[1:])} do not fit "
                          f"{type(model).__name__} ({str(exc).splitlines()[0][:160]})",
                          "give inputs shaped like the model's training data") from None
    alias: dict[str, str] = {}
    nodes: list[Node] = []
    seen: set[str] = set()
    output = None
    for n in gm.graph.nodes:
        args = [alias.get(a.name, a.name) for a in n.all_input_nodes]
        if n.op == "output":
            output = args[0]
            continue
        shape = tuple(n.meta["tensor_meta"].shape[1:]) if hasattr(n.meta.get("tensor_meta"), "shape") else ()
        if n.op == "placeholder":
            node = Node(n.name, "input", [])
        elif n.op == "call_module":
            mod = gm.get_submodule(n.target)
            if isinstance(mod, _IDENTITY):
                alias[n.name] = args[0]
                continue
            node = _module_node(n.target, mod, args)
        elif n.op == "call_function":
            if n.target is F.dropout:
                alias[n.name] = args[0]
                continue
            node = _function_node(n.name, n.target, args, {k: v for k, v in n.kwargs.items() if k != "inplace"})
        elif n.op == "call_method" and n.target in ("view", "reshape", "flatten") and len(shape) == 1:
            node = Node(n.name, "flatten", args[:1])
        elif n.op == "call_method" and n.target == "size":
            continue  # only feeds a view/reshape, which became a flatten
        else:
            node = Node(n.name, "float", args, {"kind": str(n.target)})
            node.module = _FxCall(gm, n)
        node.shape = shape
        if node.op == "flatten" and len(shape) != 1:
            node.op, node.attrs = "float", {"kind": "flatten to more than one dimension"}
            node.module = _FxCall(gm, n)
        if node.op == "float" and node.module is None:
            node.module = _FxCall(gm, n)
        while node.name in seen:  # a module called twice gets a second name
            node.name += "_"
        seen.add(node.name)
        alias[n.name] = node.name
        nodes.append(node)
    return _fuse(nodes, output)


class _FxCall(nn.Module):
    """A float fallback: calls the original fx target with its (float) inputs and constant arguments."""

    def __init__(self, gm: fx.GraphModule, n: fx.Node):
        super().__init__()
        order = list(n.all_input_nodes)
        self.op, self.target = n.op, n.target
        self.owner = gm.get_submodule(n.target) if n.op == "call_module" else None
        self.args_ = fx.node.map_arg(n.args, lambda a: ("__slot__", order.index(a)))
        self.kwargs_ = fx.node.map_arg(n.kwargs, lambda a: ("__slot__", order.index(a)))

    def forward(self, *xs):
        def fill(a):
            if isinstance(a, tuple) and len(a) == 2 and a[0] == "__slot__":
                return xs[a[1]]
            if isinstance(a, (tuple, list)):
                return type(a)(fill(v) for v in a)
            if isinstance(a, dict):
                return {k: fill(v) for k, v in a.items()}
            return a

        args, kwargs = fill(self.args_), fill(self.kwargs_)
        if self.op == "call_module":
            return self.owner(*args, **kwargs)
        if self.op == "call_method":
            return getattr(args[0], self.target)(*args[1:], **kwargs)
        return self.target(*args, **kwargs)


def _fuse(nodes: list[Node], output: str | None) -> list[Node]:
    users: dict[str, int] = {}
    for n in nodes:
        for i in n.inputs:
            users[i] = users.get(i, 0) + 1
    by_name = {n.name: n for n in nodes}
    rename: dict[str, str] = {}
    kept: list[Node] = []
    for n in nodes:
        n.inputs = [rename.get(i, i) for i in n.inputs]
        src = by_name.get(n.inputs[0]) if n.inputs else None
        single = src is not None and users.get(src.name, 0) == 1 and src.name != output
        if n.op == "bn" and single and src.op in WEIGHTED and "act" not in src.attrs:
            src.raw, src.bn = src.module, n.module
            src.module = fold_bn(src.module, n.module)
            rename[n.name] = src.name
            users[src.name] = users.get(n.name, 0)
            continue
        if n.op in ("relu", "relu6") and single and src.op in (*WEIGHTED, "add") and "act" not in src.attrs:
            src.attrs["act"] = n.op
            rename[n.name] = src.name
            users[src.name] = users.get(n.name, 0)
            continue
        if n.op == "bn":
            n.op, n.attrs = "float", {"kind": type(n.module).__name__}
        kept.append(n)
    if output is None:
        raise KarukuError("the traced model has no output", "quantize a model whose forward returns a tensor")
    out = rename.get(output, output)
    for n in kept:
        n.attrs.setdefault("is_output", n.name == out)
    return kept
