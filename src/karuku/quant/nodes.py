"""Which torch.fx calls are which quantizable op: modules, functions and tensor methods to `Node`s.

Each recogniser looks at one fx node (its target, constant arguments and the shapes ShapeProp gave
its inputs and output) and returns the `Node`s it stands for, an `Alias` (the call changes nothing:
identity, dropout, `contiguous`) or None (no integer form: the caller keeps it in float). A tensor is
"batched" when its first dimension is the batch: every op with an integer form reads and writes
batched tensors only, so nothing here ever mixes samples.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from karuku.quant.unary import UNARY

WEIGHTED = ("conv", "linear")
# ops whose output holds exactly the input's integers (or its zero point): they share the input's range
PASS_THROUGH = ("maxpool", "flatten", "relu", "relu6", "reshape", "transpose", "upsample", "pad")


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


@dataclass(frozen=True)
class Alias:
    """The call returns its input unchanged (identity, dropout, `contiguous`)."""

    value: str


class Ctx:
    """What a recogniser may ask about the traced graph: value names, shapes, parameters."""

    def __init__(self, gm: fx.GraphModule, name_of: Callable[[fx.Node], str], aux: set[str]):
        self.gm, self.name_of, self.aux = gm, name_of, aux

    @staticmethod
    def label(n: fx.Node) -> str:
        """The name of the node an fx call becomes: a module's path (e.g. `layer1.0.conv1`), else fx's name."""
        return n.target if n.op == "call_module" else n.name

    def shape(self, n) -> tuple[int, ...] | None:
        """Shape without the batch of a batched tensor (ShapeProp ran on a batch of 2), else None."""
        meta = n.meta.get("tensor_meta") if isinstance(n, fx.Node) else None
        shape = getattr(meta, "shape", None)
        if shape is None or not isinstance(shape, torch.Size) or len(shape) < 2 or shape[0] != 2:
            return None
        return tuple(shape[1:])

    def tensors(self, *args) -> list[fx.Node] | None:
        """The fx nodes among `args` (lists flattened, duplicates kept), or None if one is not batched."""
        out: list[fx.Node] = []
        for a in args:
            for v in (a if isinstance(a, (list, tuple)) else [a]):
                if isinstance(v, fx.Node):
                    if self.shape(v) is None or self.name_of(v) in self.aux:
                        return None  # not batched, or not an activation (computed from parameters alone)
                    out.append(v)
        return out

    def param(self, n) -> torch.Tensor | None:
        """The tensor a `get_attr` node reads, else None."""
        if isinstance(n, fx.Node) and n.op == "get_attr":
            obj = self.gm
            for part in n.target.split("."):
                obj = getattr(obj, part)
            return obj if isinstance(obj, torch.Tensor) else None
        return None


def bind(n: fx.Node, names: tuple[str, ...], **defaults) -> dict[str, Any]:
    """Positional and keyword arguments of an fx call by parameter name."""
    vals = dict(defaults)
    vals.update(zip(names, n.args))
    vals.update(n.kwargs)
    return vals


def pair(v) -> list[int]:
    """Two ints from an int or a pair (kernel, stride, padding arguments)."""
    return [int(v), int(v)] if isinstance(v, int) else [int(a) for a in v]


def _node(ctx: Ctx, n: fx.Node, op: str, inputs: list[fx.Node], **attrs) -> Node:
    return Node(ctx.label(n), op, [ctx.name_of(i) for i in inputs], attrs)


# ---- shape-only ops ----------------------------------------------------------------------------------------
def reshape(ctx: Ctx, n: fx.Node, x) -> list[Node] | None:
    """Any view / reshape / flatten / squeeze that keeps the batch first: a `flatten` to one dimension (the
    common classifier head), else a `reshape`."""
    ins, out = ctx.tensors(x), ctx.shape(n)
    if not ins or out is None:
        return None
    return [_node(ctx, n, "flatten" if len(out) == 1 else "reshape", ins)]


def transpose(ctx: Ctx, n: fx.Node, x, perm: list[int]) -> list[Node] | None:
    """A permutation of the dimensions after the batch (`perm` over all of them, batch first)."""
    ins = ctx.tensors(x)
    if not ins or not perm or perm[0] != 0:
        return None  # moving the batch dimension mixes samples
    return [_node(ctx, n, "transpose", ins, perm=[p - 1 for p in perm[1:]])]


def _perm(rank: int, d0: int, d1: int) -> list[int]:
    p = list(range(rank))
    p[d0 % rank], p[d1 % rank] = p[d1 % rank], p[d0 % rank]
    return p


def channel_shuffle(ctx: Ctx, n: fx.Node, x, groups: int) -> list[Node] | None:
    """nn.ChannelShuffle: view (g, C/g, H, W), swap the first two, view back."""
    ins, shape = ctx.tensors(x), ctx.shape(x)
    if not ins or shape is None or len(shape) != 3 or shape[0] % groups:
        return None
    c, h, w = shape
    name, label = ctx.name_of(ins[0]), ctx.label(n)
    a = Node(f"{label}_view", "reshape", [name], {}, shape=(groups, c // groups, h, w))
    b = Node(f"{label}_t", "transpose", [a.name], {"perm": [1, 0, 2, 3]}, shape=(c // groups, groups, h, w))
    return [a, b, Node(label, "reshape", [b.name], {}, shape=shape)]


def pad(ctx: Ctx, n: fx.Node, x, p, value) -> list[Node] | None:
    """Constant zero padding of the last two dimensions (pads given as torch's (left, right, top, bottom))."""
    ins, shape = ctx.tensors(x), ctx.shape(x)
    p = [int(v) for v in p] if isinstance(p, (list, tuple)) else [int(p)] * 4
    if not ins or shape is None or len(shape) != 3 or len(p) not in (2, 4) or min(p) < 0 or value not in (None, 0):
        return None
    left, right, top, bottom = (p + [0, 0])[:4]
    return [_node(ctx, n, "pad", ins, pads=[top, left, bottom, right])]


def upsample(ctx: Ctx, n: fx.Node, x, mode: str) -> list[Node] | None:
    """Nearest-neighbour upsampling by whole factors (each pixel repeated sh × sw times)."""
    ins, shape, out = ctx.tensors(x), ctx.shape(x), ctx.shape(n)
    if not ins or mode != "nearest" or shape is None or out is None or len(shape) != 3 or len(out) != 3:
        return None
    if out[0] != shape[0] or out[1] % shape[1] or out[2] % shape[2]:
        return None
    return [_node(ctx, n, "upsample", ins, scale=[out[1] // shape[1], out[2] // shape[2]])]


# ---- pools -------------------------------------------------------------------------------------------------
def avgpool(ctx: Ctx, n: fx.Node, x, kernel, stride, padding, ceil_mode=False, include_pad=True,
            divisor=None) -> list[Node] | None:
    """Average pooling; padding counts in the divisor (PyTorch's default), no ceil mode."""
    ins = ctx.tensors(x)
    padding = pair(padding)
    if not ins or ceil_mode or divisor is not None or (not include_pad and padding != [0, 0]):
        return None
    return [_node(ctx, n, "avgpool", ins, **{"global": False, "kernel": pair(kernel),
                                              "stride": pair(stride or kernel), "padding": padding})]


def adaptive_windows(size: int, out: int) -> tuple[int, int] | None:
    """(kernel, stride) of PyTorch's adaptive pooling from `size` to `out` (window i spans floor(i·size/out) to
    ceil((i+1)·size/out)) when every window has the same size and they start evenly; else None."""
    starts = [i * size // out for i in range(out)]
    ends = [-(-(i + 1) * size // out) for i in range(out)]
    kernel, stride = ends[0] - starts[0], starts[1] - starts[0] if out > 1 else 1
    if any(e - b != kernel for b, e in zip(starts, ends)) or any(b != i * stride for i, b in enumerate(starts)):
        return None
    return kernel, stride


def adaptive_avgpool(ctx: Ctx, n: fx.Node, x, size) -> list[Node] | None:
    """Adaptive pooling whose windows are all the same size, evenly spaced (to 1, to divisors, 7 → 2 or 3, ...):
    an ordinary average pooling. Windows of unequal size (7 → 4) have no int8 kernel anywhere."""
    ins, shape = ctx.tensors(x), ctx.shape(x)
    if not ins or shape is None or len(shape) != 3:
        return None
    size = [size, size] if isinstance(size, int) or size is None else list(size)
    out = [s if o is None else int(o) for o, s in zip(size, shape[1:])]
    if out == [1, 1]:
        return [_node(ctx, n, "avgpool", ins, **{"global": True})]
    windows = [adaptive_windows(s, o) for s, o in zip(shape[1:], out)]
    if None in windows:
        return None
    k, st = [w[0] for w in windows], [w[1] for w in windows]
    return [_node(ctx, n, "avgpool", ins, **{"global": False, "kernel": k, "stride": st, "padding": [0, 0]})]


def spatial_mean(ctx: Ctx, n: fx.Node, x, dim, keepdim) -> list[Node] | None:
    """x.mean((2, 3)): global average pooling, then a flatten when the dimensions are dropped."""
    ins, shape = ctx.tensors(x), ctx.shape(x)
    dims = sorted(d % 4 for d in (dim if isinstance(dim, (list, tuple)) else [dim])) if dim is not None else []
    if not ins or shape is None or len(shape) != 3 or dims != [2, 3]:
        return None
    if keepdim:
        return [_node(ctx, n, "avgpool", ins, **{"global": True})]
    pool = Node(f"{ctx.label(n)}_pool", "avgpool", [ctx.name_of(ins[0])], {"global": True}, shape=(shape[0], 1, 1))
    return [pool, Node(ctx.label(n), "flatten", [pool.name], {}, shape=(shape[0],))]


def maxpool(ctx: Ctx, n: fx.Node, x, kernel, stride, padding, dilation=1, ceil_mode=False,
            indices=False) -> list[Node] | None:
    """Max pooling without dilation, ceil mode or indices."""
    ins = ctx.tensors(x)
    if not ins or ceil_mode or indices or pair(dilation) != [1, 1]:
        return None
    return [_node(ctx, n, "maxpool", ins, kernel=pair(kernel), stride=pair(stride or kernel), padding=pair(padding))]


# ---- weighted layers ---------------------------------------------------------------------------------------
def conv_padding(padding, kernel: list[int], dilation: list[int]) -> list[int] | None:
    """[ph, pw] (both sides), [top, left, bottom, right], or None for what the engine has no form of."""
    if padding == "valid":
        return [0, 0]
    if padding == "same":
        total = [d * (k - 1) for d, k in zip(dilation, kernel)]
        pads = [t // 2 for t in total] + [t - t // 2 for t in total]
        return pads[:2] if pads[:2] == pads[2:] else pads
    return pair(padding) if not isinstance(padding, str) else None


def conv(ctx: Ctx, n: fx.Node, x, mod: nn.Conv2d, name: str) -> list[Node] | None:
    """A Conv2d with zero padding (numbers, "same" or "valid") and no dilation."""
    ins = ctx.tensors(x)
    padding = conv_padding(mod.padding, list(mod.kernel_size), pair(mod.dilation))
    if not ins or mod.padding_mode != "zeros" or pair(mod.dilation) != [1, 1] or padding is None:
        return None
    return [Node(name, "conv", [ctx.name_of(ins[0])], {"stride": pair(mod.stride), "padding": padding,
                                                       "groups": mod.groups}, copy.deepcopy(mod))]


def functional_conv(ctx: Ctx, n: fx.Node) -> list[Node] | None:
    """F.conv2d(x, self.weight, self.bias, ...) as in Conv2d subclasses that pad first (TF "same")."""
    a = bind(n, ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
             bias=None, stride=1, padding=0, dilation=1, groups=1)
    w, b = ctx.param(a["weight"]), ctx.param(a["bias"])
    if w is None or w.dim() != 4 or (a["bias"] is not None and b is None):
        return None
    mod = nn.Conv2d(w.shape[1] * a["groups"], w.shape[0], tuple(w.shape[2:]), a["stride"], a["padding"],
                    a["dilation"], a["groups"], bias=b is not None)
    with torch.no_grad():
        mod.weight.copy_(w)
        if b is not None:
            mod.bias.copy_(b)
    return conv(ctx, n, a["input"], mod, a["weight"].target.removesuffix(".weight"))


def functional_linear(ctx: Ctx, n: fx.Node) -> list[Node] | None:
    """F.linear(x, self.weight, self.bias) on parameters: a linear node."""
    a = bind(n, ("input", "weight", "bias"), bias=None)
    w, b = ctx.param(a["weight"]), ctx.param(a["bias"])
    ins = ctx.tensors(a["input"])
    if not ins or w is None or w.dim() != 2 or (a["bias"] is not None and b is None):
        return None
    mod = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    with torch.no_grad():
        mod.weight.copy_(w)
        if b is not None:
            mod.bias.copy_(b)
    return [Node(a["weight"].target.removesuffix(".weight"), "linear", [ctx.name_of(ins[0])], {}, mod)]


# ---- elementwise -------------------------------------------------------------------------------------------
def unary(ctx: Ctx, n: fx.Node, x, fn: str, **attrs) -> list[Node] | None:
    """An elementwise activation of karuku.quant.unary (a table in the engine)."""
    ins = ctx.tensors(x)
    return [_node(ctx, n, "unary", ins, fn=fn, **attrs)] if ins else None


def simple(ctx: Ctx, n: fx.Node, x, op: str) -> list[Node] | None:
    """A one-input op with no constant arguments (ReLU, ReLU6)."""
    ins = ctx.tensors(x)
    return [_node(ctx, n, op, ins)] if ins else None


def add(ctx: Ctx, n: fx.Node, a, b) -> list[Node] | None:
    """The sum of two activations of the same shape (no broadcasting, no constants)."""
    ins = ctx.tensors(a, b)
    if not ins or len(ins) != 2 or not ctx.shape(ins[0]) == ctx.shape(ins[1]) == ctx.shape(n):
        return None  # broadcasting, or a constant operand
    return [_node(ctx, n, "add", ins)]


def cat(ctx: Ctx, n: fx.Node, tensors, dim) -> list[Node] | None:
    """Concatenation along any dimension but the batch."""
    ins, out = ctx.tensors(tensors), ctx.shape(n)
    if not ins or out is None:
        return None
    axis = int(dim) % (len(out) + 1)
    return [_node(ctx, n, "cat", ins, axis=axis)] if axis >= 1 else None


ACTIVATION_MODULES: dict[type, str] = {nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.Hardswish: "hardswish",
                                       nn.Hardsigmoid: "hardsigmoid", nn.SiLU: "silu", nn.LeakyReLU: "leaky_relu"}
ACTIVATION_FUNCTIONS: dict[Any, str] = {torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid", torch.tanh: "tanh",
                                        F.tanh: "tanh", F.hardswish: "hardswish", F.hardsigmoid: "hardsigmoid",
                                        F.silu: "silu", F.gelu: "gelu", F.leaky_relu: "leaky_relu"}
assert set(ACTIVATION_MODULES.values()) | set(ACTIVATION_FUNCTIONS.values()) <= set(UNARY)
ADD = (operator.add, torch.add)
RELU = (F.relu, torch.relu, torch.relu_, F.relu_)
CAT = (torch.cat, torch.concat, torch.concatenate)
