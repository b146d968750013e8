"""Channel dependency graph: which output channels of which layers must be removed together.

The model is traced with torch.fx and shapes are propagated on an example input. Every
Conv/Linear output starts a *channel space*; ops that tie channels together merge spaces
(union-find): elementwise adds and multiplies (residuals), depthwise convolutions (input
and output are the same channels), concatenations along other dims. Concatenation along
channels gives a layout of several segments; Flatten repeats each channel over its
spatial positions. Spaces reaching the model's input or output (or an op left untouched)
are frozen: their channels stay.
"""

from __future__ import annotations

import math
import operator
import warnings
from dataclasses import dataclass, field

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from karuku.errors import KarukuError


@dataclass(frozen=True)
class Seg:
    """`length` channels of `space`, each repeated `rep` times along the feature dimension."""

    space: int
    length: int
    rep: int = 1


@dataclass
class ChannelGraph:
    """Spaces (union-find) and the role each module plays in them."""

    size: list[int] = field(default_factory=list)
    parent: list[int] = field(default_factory=list)
    frozen: set[int] = field(default_factory=set)
    producers: dict[str, int] = field(default_factory=dict)  # conv/linear name -> its output space
    consumers: dict[str, list[Seg]] = field(default_factory=dict)  # conv/linear name -> input layout
    norms: dict[str, list[Seg]] = field(default_factory=dict)  # batchnorm name -> its channels
    depthwise: dict[str, list[Seg]] = field(default_factory=dict)  # depthwise conv name -> its channels
    skipped: list[str] = field(default_factory=list)  # ops left untouched (on_unsupported="skip")

    def new(self, n: int, frozen: bool = False) -> int:
        self.size.append(n)
        self.parent.append(len(self.parent))
        if frozen:
            self.frozen.add(len(self.parent) - 1)
        return len(self.parent) - 1

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra

    def is_frozen(self, root: int) -> bool:
        return any(self.find(s) == root for s in self.frozen)

    def roots(self) -> list[int]:
        return sorted({self.find(i) for i in range(len(self.parent))})


PASS_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish,
                nn.Hardsigmoid, nn.Mish, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity, nn.MaxPool1d,
                nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
                nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.Upsample)
# Functional forms that act on each channel alone (activations, pooling, dropout, clamping to scalar bounds),
# in every spelling a forward may use: F.relu, torch.relu, torch.relu_, x.relu(), ... A tensor bound
# (clamp(x, min=t)) makes one of them binary: `function` checks that only the first argument is a tensor.
PASS_FUNCS = {F.relu, torch.relu, F.relu_, torch.relu_, F.relu6, F.gelu, F.silu, F.mish, F.hardswish, F.leaky_relu,
              F.leaky_relu_, F.elu, F.elu_, F.selu, F.celu, F.softplus, F.softsign, F.hardtanh, F.hardtanh_,
              F.logsigmoid, F.tanhshrink, torch.sigmoid, F.sigmoid, torch.tanh, F.tanh, F.hardsigmoid, operator.neg,
              torch.neg, torch.abs, torch.clamp, torch.clip, F.dropout, F.dropout1d, F.dropout2d, F.dropout3d,
              F.alpha_dropout, F.feature_alpha_dropout, F.max_pool1d, F.max_pool2d, torch.max_pool1d,
              torch.max_pool2d, F.avg_pool1d, F.avg_pool2d, torch.avg_pool1d, F.lp_pool1d, F.lp_pool2d,
              F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, torch.adaptive_avg_pool1d, F.adaptive_max_pool1d,
              F.adaptive_max_pool2d}
PASS_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "clamp", "clamp_", "clip", "clip_", "abs",
                "contiguous", "clone", "detach", "neg", "float"}
BINARY = {operator.add, operator.iadd, operator.sub, operator.mul, operator.imul, operator.truediv, torch.add,
          torch.sub, torch.mul, torch.div}
BINARY_METHODS = {"add", "add_", "sub", "mul", "mul_", "div"}
QUERIES = {"size", "dim", "numel"}


def trace(model: nn.Module, example: torch.Tensor, on_unsupported: str = "error") -> ChannelGraph:
    """Build the channel graph of `model` run on `example` (a batch)."""
    try:
        gm = fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many types for data-dependent control flow
        raise KarukuError(f"structured pruning cannot trace {type(model).__name__} with torch.fx: "
                          f"{str(exc).splitlines()[0][:200]}",
                          "make forward traceable (no data-dependent control flow) or prune unstructured") from None
    was_training = model.training
    gm.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example)
    finally:
        model.train(was_training)
    return _Walker(gm, on_unsupported).run()


def _shape(node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


class _Walker:
    def __init__(self, gm: fx.GraphModule, on_unsupported: str):
        self.gm, self.mode, self.g = gm, on_unsupported, ChannelGraph()
        self.layout: dict[fx.Node, list[Seg] | None] = {}
        self.called: set[str] = set()

    def run(self) -> ChannelGraph:
        for node in self.gm.graph.nodes:
            self.layout[node] = self.visit(node)
        return self.g

    def inputs(self, node: fx.Node) -> list[fx.Node]:
        found: list[fx.Node] = []
        fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n) if self.layout.get(n) else None)
        return found

    def fresh(self, node: fx.Node, frozen: bool) -> list[Seg] | None:
        shape = _shape(node)
        if shape is None or len(shape) < 2:
            return None
        return [Seg(self.g.new(shape[1], frozen), shape[1])]

    def freeze(self, layout: list[Seg] | None) -> None:
        for s in layout or []:
            self.g.frozen.add(s.space)

    def unsupported(self, node: fx.Node, what: str) -> list[Seg] | None:
        msg = f"structured pruning cannot rewrite around {what} (node '{node.name}')"
        if self.mode == "error":
            raise KarukuError(msg, "pass on_unsupported='skip' (--on-unsupported skip) to leave its channels "
                                   "untouched, or prune unstructured")
        warnings.warn(f"{msg}; its channels are left untouched", stacklevel=3)
        self.g.skipped.append(what)
        for n in self.inputs(node):
            self.freeze(self.layout[n])
        return self.fresh(node, frozen=True)

    def visit(self, node: fx.Node) -> list[Seg] | None:
        if node.op == "placeholder":
            return self.fresh(node, frozen=True)
        if node.op == "output":
            for n in self.inputs(node):
                self.freeze(self.layout[n])
            return None
        if node.op == "get_attr":
            return None
        if node.op == "call_module":
            return self.module(node, self.gm.get_submodule(node.target))
        return self.function(node)

    def module(self, node: fx.Node, mod: nn.Module) -> list[Seg] | None:
        name = str(node.target)
        ins = self.inputs(node)
        src = self.layout[ins[0]] if ins else None
        if isinstance(mod, PASS_MODULES):
            return src
        if not list(mod.parameters(recurse=False)) and isinstance(mod, nn.Flatten):
            return self.flatten(node, src, mod.start_dim, mod.end_dim)
        if name in self.called:
            return self.unsupported(node, f"module '{name}' called more than once")
        self.called.add(name)
        if src is None:
            return self.unsupported(node, f"{type(mod).__name__} '{name}' on an input it cannot follow")
        if isinstance(mod, nn.modules.conv._ConvNd) and not isinstance(mod, nn.modules.conv._ConvTransposeNd):
            if mod.groups == 1:
                self.g.consumers[name] = src
                out = self.g.new(mod.out_channels)
                self.g.producers[name] = out
                return [Seg(out, mod.out_channels)]
            if mod.groups == mod.in_channels == mod.out_channels and all(s.rep == 1 for s in src):
                self.g.depthwise[name] = src
                return src
            return self.unsupported(node, f"grouped convolution '{name}' (groups={mod.groups}, "
                                          f"{mod.in_channels}→{mod.out_channels})")
        if isinstance(mod, nn.Linear):
            if len(_shape(ins[0]) or ()) != 2:
                return self.unsupported(node, f"Linear '{name}' on a tensor of rank {len(_shape(ins[0]) or ())}")
            self.g.consumers[name] = src
            out = self.g.new(mod.out_features)
            self.g.producers[name] = out
            return [Seg(out, mod.out_features)]
        if isinstance(mod, nn.modules.batchnorm._BatchNorm) and mod.affine and all(s.rep == 1 for s in src):
            self.g.norms[name] = src
            return src
        if not list(mod.parameters()) and not list(mod.buffers()):
            return self.unsupported(node, f"module {type(mod).__name__} '{name}'")
        return self.unsupported(node, f"layer {type(mod).__name__} '{name}'")

    def flatten(self, node: fx.Node, src: list[Seg] | None, start: int, end: int) -> list[Seg] | None:
        shape = _shape(node.args[0]) if node.args else None
        if src is None or shape is None:
            return src
        rank = len(shape)
        if start != 1 or end not in (-1, rank - 1):
            return self.unsupported(node, f"flatten({start}, {end})")
        rep = math.prod(shape[2:])
        return [Seg(s.space, s.length, s.rep * rep) for s in src]

    def function(self, node: fx.Node) -> list[Seg] | None:
        target = node.target
        ins = self.inputs(node)
        if not ins:
            return None
        is_method = node.op == "call_method"
        desc = f"method .{target}()" if is_method else f"function {getattr(target, '__name__', target)}"
        if (is_method and target in QUERIES) or target in (getattr, operator.getitem) and _shape(node) is None:
            return None
        if (is_method and target in PASS_METHODS) or (not is_method and target in PASS_FUNCS):
            if len(ins) > 1:
                return self.unsupported(node, f"{desc} with a tensor argument")
            return self.layout[ins[0]]
        if (is_method and target in BINARY_METHODS) or (not is_method and target in BINARY):
            return self.binary(node, ins, desc)
        if target in (torch.cat, torch.concat) and not is_method:
            return self.cat(node, desc)
        if (is_method and target == "flatten") or target is torch.flatten:
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            return self.flatten(node, self.layout[ins[0]], start, end)
        if is_method and target in ("view", "reshape"):
            out, src = _shape(node), _shape(ins[0])
            if out is not None and src is not None and len(out) == 2 and out[0] == src[0]:
                return self.flatten(node, self.layout[ins[0]], 1, -1)
            return self.unsupported(node, f"{desc} to shape {out}")
        if (is_method and target in ("mean", "sum", "amax")) or target in (torch.mean, torch.sum, torch.amax):
            dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
            src = _shape(ins[0])
            dims = [dims] if isinstance(dims, int) else list(dims or [])
            if src is not None and dims and 1 not in [d % len(src) for d in dims]:
                return self.layout[ins[0]]
        return self.unsupported(node, desc)

    def align(self, a: list[Seg], b: list[Seg]) -> bool:
        if [(s.length, s.rep) for s in a] != [(s.length, s.rep) for s in b]:
            return False
        for x, y in zip(a, b):
            self.g.union(x.space, y.space)
        return True

    def binary(self, node: fx.Node, ins: list[fx.Node], desc: str) -> list[Seg] | None:
        if len(ins) == 1:
            return self.layout[ins[0]]
        shapes = [_shape(n) for n in ins]
        if any(s is None or len(s) < 2 for s in shapes):
            return self.unsupported(node, desc)
        wide = [n for n, s in zip(ins, shapes) if s[1] != 1]
        for n, s in zip(ins, shapes):
            if s[1] == 1:
                self.freeze(self.layout[n])  # broadcast over channels: ties none of them
        if not wide:
            return self.layout[ins[0]]
        first = self.layout[wide[0]]
        for n in wide[1:]:
            if not self.align(first, self.layout[n]):
                return self.unsupported(node, f"{desc} of differently concatenated tensors")
        return first

    def cat(self, node: fx.Node, desc: str) -> list[Seg] | None:
        tensors = node.args[0]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        shape = _shape(node)
        if shape is None or not isinstance(tensors, (list, tuple)) or any(self.layout.get(t) is None
                                                                         for t in tensors):
            return self.unsupported(node, desc)
        dim %= len(shape)
        layouts = [self.layout[t] for t in tensors]
        if dim == 1:
            return [s for layout in layouts for s in layout]
        if dim == 0:
            return self.unsupported(node, f"{desc} along the batch dimension")
        for other in layouts[1:]:
            if not self.align(layouts[0], other):
                return self.unsupported(node, f"{desc} of differently laid out tensors")
        return layouts[0]
