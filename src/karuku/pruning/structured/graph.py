"""Channel dependency graph: which output channels of which layers must be removed together.

The model is traced with torch.fx and shapes are propagated on example inputs (one tensor, or
several: token ids, a mask). Every Conv/Linear output starts a *channel space*; ops that tie
channels together merge spaces (union-find): elementwise adds and multiplies (residuals),
depthwise convolutions (input and output are the same channels), concatenations along other
dims. Concatenation along channels gives a layout of several segments; Flatten repeats each
channel over its spatial positions. Spaces reaching the model's input or output (or an op
left untouched) are frozen: their channels stay.

A tensor's channels lie along dimension 1 (a Conv's NCHW) or, for a Linear on a tensor of
rank 3 or more (tokens × features: a transformer's FFN), along the last one; each layout
records its axis. Embeddings and LayerNorms keep their width (a LayerNorm's statistics run
over all its channels, so removing one changes the others): their channels are frozen. A
frozen tensor whose channel axis is not known (an embedding's output, an integer input, what
an untouched op returns) may feed any layer; a layer then keeps all of its inputs.
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

from karuku.errors import KarukuError
from karuku.quiet import propagate_shapes


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


def trace(model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...] | dict[str, torch.Tensor],
          on_unsupported: str = "error") -> ChannelGraph:
    """Build the channel graph of `model` run on `example`: a batch, or for a model of several inputs a batch of
    each, in `forward`'s order or by its parameter names."""
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
            propagate_shapes(gm, *_positional(gm, example))
    finally:
        model.train(was_training)
    return _Walker(gm, on_unsupported).run()


def _positional(gm: fx.GraphModule, example) -> list[torch.Tensor]:
    """The example as the traced graph's placeholders take it, in order; inputs with a default may be left out."""
    if isinstance(example, torch.Tensor):
        return [example]
    if not isinstance(example, dict):
        return list(example)
    args = []
    for node in gm.graph.nodes:
        if node.op != "placeholder":
            continue
        if node.target not in example:
            if not node.args:  # no default: the trace needs it
                raise KarukuError(f"structured pruning has no example for input '{node.target}' "
                                  f"(given: {', '.join(example)})", "give every input forward needs")
            break
        args.append(example[node.target])
    return args


def _keeps_last(node: fx.Node) -> bool:
    """`x[index]` leaves the last dimension whole: the index names fewer dimensions than x has, or takes all of the
    last one (x[:, 0], x[..., :] and the like; no new axes)."""
    index, src, out = node.args[1], _shape(node.args[0]), _shape(node)
    if src is None or out is None or not out or out[-1] != src[-1]:
        return False
    index = index if isinstance(index, tuple) else (index,)
    if any(i is None or isinstance(i, fx.Node) for i in index):
        return False
    if Ellipsis in index:
        return index[-1] is Ellipsis or index[-1] == slice(None)
    return len(index) < len(src) or index[-1] == slice(None)


def _shape(node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


# A layout's channel axis: a dimension counted from the end (-3: NCHW's C; -1: the last), or ANY for a frozen
# tensor whose channels lie nowhere known (an embedding's output, integer ids, an untouched op's result).
ANY = None


class _Walker:
    def __init__(self, gm: fx.GraphModule, on_unsupported: str):
        self.gm, self.mode, self.g = gm, on_unsupported, ChannelGraph()
        self.layout: dict[fx.Node, list[Seg] | None] = {}
        self.axis: dict[fx.Node, int | None] = {}
        self.called: set[str] = set()

    def run(self) -> ChannelGraph:
        for node in self.gm.graph.nodes:
            self.axis[node] = 1 - len(_shape(node) or (0, 0))  # dimension 1 unless the visit says otherwise
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

    def anywhere(self, node: fx.Node) -> list[Seg] | None:
        """`node`'s channels frozen, their axis unknown (ANY)."""
        out = self.fresh(node, frozen=True)
        self.axis[node] = ANY
        return out

    def frozen(self, layout: list[Seg] | None) -> bool:
        return all(self.g.is_frozen(self.g.find(s.space)) for s in layout or [])

    def input_layout(self, node: fx.Node, src: fx.Node, axis: int, width: int) -> list[Seg] | None:
        """The layout of `src` as a layer consuming `width` channels along `axis` reads it; a frozen tensor read
        along another axis (or ANY) is a frozen block of `width`; None if the layer cannot follow `src`."""
        layout, have, rank = self.layout[src], self.axis[src], len(_shape(src) or ())
        if layout is None or rank < 2:
            return None
        if have is not ANY and have % rank == axis % rank and sum(s.length * s.rep for s in layout) == width:
            return layout
        if have is ANY or self.frozen(layout):
            return [Seg(self.g.new(width, frozen=True), width)]
        return None

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
        return self.untouched(node)

    def untouched(self, node: fx.Node) -> list[Seg] | None:
        """Leave an op alone: its inputs' channels stay, its output is frozen (axis unknown)."""
        for n in self.inputs(node):
            self.freeze(self.layout[n])
        return self.anywhere(node)

    def visit(self, node: fx.Node) -> list[Seg] | None:
        if node.op == "placeholder":  # a float input's channels lie along dimension 1; ids have none
            meta = node.meta.get("tensor_meta")
            floating = getattr(meta, "dtype", torch.float32).is_floating_point
            return self.fresh(node, frozen=True) if floating else self.anywhere(node)
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
            self.axis[node] = self.axis[ins[0]] if ins else ANY
            return src
        if isinstance(mod, (nn.Embedding, nn.EmbeddingBag)):  # its width stays: ids in, frozen features out
            return self.untouched(node)
        if not list(mod.parameters(recurse=False)) and isinstance(mod, nn.Flatten):
            return self.flatten(node, ins[0] if ins else None, mod.start_dim, mod.end_dim)
        if name in self.called:
            return self.unsupported(node, f"module '{name}' called more than once")
        self.called.add(name)
        if src is None:
            return self.unsupported(node, f"{type(mod).__name__} '{name}' on an input it cannot follow")
        if isinstance(mod, nn.LayerNorm):  # normalizes over all its channels: removing one changes the rest
            return self.untouched(node)
        if isinstance(mod, nn.modules.conv._ConvNd) and not isinstance(mod, nn.modules.conv._ConvTransposeNd):
            rank = len(_shape(ins[0]) or ())
            if mod.groups == 1:
                layout = self.input_layout(node, ins[0], 1 - rank, mod.in_channels)
                if layout is None:
                    return self.unsupported(node, f"{type(mod).__name__} '{name}' on channels it cannot follow")
                self.g.consumers[name] = layout
                out = self.g.new(mod.out_channels)
                self.g.producers[name] = out
                return [Seg(out, mod.out_channels)]
            if mod.groups == mod.in_channels == mod.out_channels and all(s.rep == 1 for s in src):
                if self.axis[ins[0]] is ANY:  # on frozen channels: nothing to follow
                    return self.untouched(node)
                if self.axis[ins[0]] == 1 - rank:
                    self.g.depthwise[name] = src
                    return src
            return self.unsupported(node, f"grouped convolution '{name}' (groups={mod.groups}, "
                                          f"{mod.in_channels}→{mod.out_channels})")
        if isinstance(mod, nn.Linear):  # on the last dimension, of any rank (tokens × features: a transformer's FFN)
            layout = self.input_layout(node, ins[0], -1, mod.in_features)
            if layout is None:
                return self.unsupported(node, f"Linear '{name}' on channels along another dimension")
            self.g.consumers[name] = layout
            out = self.g.new(mod.out_features)
            self.g.producers[name] = out
            self.axis[node] = -1
            return [Seg(out, mod.out_features)]
        if isinstance(mod, nn.modules.batchnorm._BatchNorm) and mod.affine and all(s.rep == 1 for s in src):
            if self.axis[ins[0]] is ANY:  # on frozen channels: nothing to follow
                return self.untouched(node)
            if self.axis[ins[0]] == self.axis[node]:
                self.g.norms[name] = src
                return src
        if not list(mod.parameters()) and not list(mod.buffers()):
            return self.unsupported(node, f"module {type(mod).__name__} '{name}'")
        return self.unsupported(node, f"layer {type(mod).__name__} '{name}'")

    def flatten(self, node: fx.Node, x: fx.Node | None, start: int, end: int) -> list[Seg] | None:
        src = self.layout.get(x) if x is not None else None
        shape = _shape(x)
        if src is None or shape is None:
            return src
        rank = len(shape)
        if self.axis[x] is ANY:
            return self.anywhere(node)
        if start != 1 or end not in (-1, rank - 1):
            return self.unsupported(node, f"flatten({start}, {end})")
        if self.axis[x] % rank != 1:  # channels last: flattening interleaves them with the tokens
            if self.frozen(src):
                return self.anywhere(node)
            return self.unsupported(node, f"flatten({start}, {end}) of channels along the last dimension")
        rep = math.prod(shape[2:])
        self.axis[node] = -1
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
        if all(self.axis[n] is ANY for n in ins):  # only frozen channels in (ids, a mask, embeddings): none to follow
            return self.untouched(node)
        if (is_method and target in PASS_METHODS) or (not is_method and target in PASS_FUNCS):
            if len(ins) > 1:
                return self.unsupported(node, f"{desc} with a tensor argument")
            self.axis[node] = self.axis[ins[0]]
            return self.layout[ins[0]]
        if target is operator.getitem and self.axis[ins[0]] == -1 and _keeps_last(node):
            self.axis[node] = -1  # x[:, 0] and the like (a transformer's first token): the features stay
            return self.layout[ins[0]]
        if (is_method and target in BINARY_METHODS) or (not is_method and target in BINARY):
            return self.binary(node, ins, desc)
        if target in (torch.cat, torch.concat) and not is_method:
            return self.cat(node, desc)
        if (is_method and target == "flatten") or target is torch.flatten:
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            return self.flatten(node, ins[0], start, end)
        if is_method and target in ("view", "reshape"):
            out, src = _shape(node), _shape(ins[0])
            if out is not None and src is not None and len(out) == 2 and out[0] == src[0]:
                return self.flatten(node, ins[0], 1, -1)
            return self.unsupported(node, f"{desc} to shape {out}")
        if (is_method and target in ("mean", "sum", "amax")) or target in (torch.mean, torch.sum, torch.amax):
            dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
            src, out = _shape(ins[0]), _shape(node)
            dims = [dims] if isinstance(dims, int) else list(dims or [])
            axis = self.axis[ins[0]]
            if src is not None and out is not None and dims and (axis is ANY or axis % len(src) not in
                                                                  [d % len(src) for d in dims]):
                # the channel axis, counted from the end, moves only when reduced dims after it go (keepdim False)
                gone = 0 if len(out) == len(src) else sum(d % len(src) > axis % len(src) for d in dims)
                self.axis[node] = ANY if axis is ANY else axis + gone
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
            self.axis[node] = self.axis[ins[0]]
            return self.layout[ins[0]]
        shapes = [_shape(n) for n in ins]
        if any(s is None or len(s) < 2 for s in shapes):
            return self.unsupported(node, desc)
        axes = [self.axis[n] for n in ins]
        if ANY in axes or len(set(axes)) > 1:  # channels along different (or unknown) axes: none can go
            return self.untouched(node)
        axis = axes[0]
        wide = [n for n, s in zip(ins, shapes) if -axis <= len(s) and s[axis] != 1]
        for n in ins:
            if n not in wide:
                self.freeze(self.layout[n])  # broadcast over channels: ties none of them
        self.axis[node] = axis
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
        axes = {self.axis[t] for t in tensors}
        if ANY in axes or len(axes) > 1:
            return self.untouched(node)
        self.axis[node] = axis = axes.pop()
        if dim == axis % len(shape):
            return [s for layout in layouts for s in layout]
        if dim == 0:
            return self.unsupported(node, f"{desc} along the batch dimension")
        for other in layouts[1:]:
            if not self.align(layouts[0], other):
                return self.unsupported(node, f"{desc} of differently laid out tensors")
        return layouts[0]
