"""Dispatch one fx call (module, function or tensor method) to its recogniser in `nodes`.

The module forms, their functional forms and their tensor-method forms land on the same recogniser, so
`nn.AdaptiveAvgPool2d(1)`, `F.adaptive_avg_pool2d(x, 1)` and `x.mean((2, 3), keepdim=True)` are the same
`avgpool`. Returns what the recogniser returns: `Node`s, an `Alias`, or None (kept in float).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import fx, nn

from karuku.quant import nodes as N
from karuku.quant.nodes import Alias, Ctx, Node, bind

_IDENTITY = (nn.Dropout, nn.Identity, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)


def module_node(ctx: Ctx, n: fx.Node, mod: nn.Module) -> list[Node] | Alias | None:
    """A call of a torch.nn module (fx keeps those whole)."""
    x = n.args[0] if n.args else None
    if isinstance(mod, _IDENTITY):
        ins = ctx.tensors(x)
        return Alias(ctx.name_of(ins[0])) if ins else None
    if isinstance(mod, nn.Conv2d):
        return N.conv(ctx, n, x, mod, n.target)
    if isinstance(mod, nn.Linear):
        ins = ctx.tensors(x)
        return [Node(n.target, "linear", [ctx.name_of(ins[0])], {}, mod)] if ins else None
    if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
        ins = ctx.tensors(x)
        return [Node(n.target, "bn", [ctx.name_of(ins[0])], {}, mod)] if ins else None
    if isinstance(mod, nn.ReLU6) or isinstance(mod, nn.Hardtanh) and (mod.min_val, mod.max_val) == (0.0, 6.0):
        return N.simple(ctx, n, x, "relu6")
    if isinstance(mod, nn.ReLU):
        return N.simple(ctx, n, x, "relu")
    if isinstance(mod, nn.MaxPool2d):
        return N.maxpool(ctx, n, x, mod.kernel_size, mod.stride, mod.padding, mod.dilation, mod.ceil_mode,
                         mod.return_indices)
    if isinstance(mod, nn.AdaptiveAvgPool2d):
        return N.adaptive_avgpool(ctx, n, x, mod.output_size)
    if isinstance(mod, nn.AvgPool2d):
        return N.avgpool(ctx, n, x, mod.kernel_size, mod.stride, mod.padding, mod.ceil_mode, mod.count_include_pad,
                         mod.divisor_override)
    if isinstance(mod, (nn.Flatten, nn.Unflatten)):
        return N.reshape(ctx, n, x)
    if isinstance(mod, nn.Upsample):
        factor = mod.scale_factor
        return N.upsample(ctx, n, x, mod.mode if factor is None or float(factor) == int(factor) or
                          isinstance(factor, tuple) else "fractional")
    if isinstance(mod, (nn.ZeroPad2d, nn.ConstantPad2d)):
        return N.pad(ctx, n, x, mod.padding, 0 if isinstance(mod, nn.ZeroPad2d) else mod.value)
    if isinstance(mod, nn.ChannelShuffle):
        return N.channel_shuffle(ctx, n, x, mod.groups)
    if isinstance(mod, nn.GELU):
        return N.unary(ctx, n, x, "gelu") if mod.approximate == "none" else None
    if isinstance(mod, nn.LeakyReLU):
        return N.unary(ctx, n, x, "leaky_relu", slope=float(mod.negative_slope))
    fn = N.ACTIVATION_MODULES.get(type(mod))
    return N.unary(ctx, n, x, fn) if fn else None


def function_node(ctx: Ctx, n: fx.Node) -> list[Node] | Alias | None:
    """A call of a function (torch.*, F.*, operator.*)."""
    fn, args = n.target, n.args
    x = args[0] if args else n.kwargs.get("input")
    if fn is F.dropout:
        ins = ctx.tensors(x)
        return Alias(ctx.name_of(ins[0])) if ins else None
    if fn in N.ADD and len(args) == 2 and not n.kwargs:
        return N.add(ctx, n, *args)
    if fn in N.RELU:
        return N.simple(ctx, n, x, "relu")
    if fn is F.relu6 or (fn is F.hardtanh and _hardtanh6(n)):
        return N.simple(ctx, n, x, "relu6")
    if fn in N.CAT:
        a = bind(n, ("tensors", "dim"), dim=0)
        return N.cat(ctx, n, a["tensors"], a["dim"])
    if fn is torch.flatten or fn is torch.reshape or fn is torch.squeeze or fn is torch.unsqueeze:
        return N.reshape(ctx, n, x)
    if fn is torch.transpose:
        rank = len(ctx.shape(x) or ()) + 1
        return N.transpose(ctx, n, x, N._perm(rank, args[1], args[2])) if len(args) == 3 else None
    if fn is torch.permute:
        return N.transpose(ctx, n, x, [int(d) for d in bind(n, ("input", "dims"))["dims"]])
    if fn is torch.mean:
        a = bind(n, ("input", "dim", "keepdim"), dim=None, keepdim=False)
        return N.spatial_mean(ctx, n, x, a["dim"], a["keepdim"]) if "dtype" not in n.kwargs else None
    if fn is F.max_pool2d:
        a = bind(n, ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
                 stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False)
        return N.maxpool(ctx, n, x, a["kernel_size"], a["stride"], a["padding"], a["dilation"], a["ceil_mode"],
                         a["return_indices"])
    if fn is F.avg_pool2d:
        a = bind(n, ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                     "divisor_override"), stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None)
        return N.avgpool(ctx, n, x, a["kernel_size"], a["stride"], a["padding"], a["ceil_mode"],
                         a["count_include_pad"], a["divisor_override"])
    if fn is F.adaptive_avg_pool2d:
        return N.adaptive_avgpool(ctx, n, x, bind(n, ("input", "output_size"))["output_size"])
    if fn is F.interpolate:
        a = bind(n, ("input", "size", "scale_factor", "mode", "align_corners"), size=None, scale_factor=None,
                 mode="nearest", align_corners=None)
        return N.upsample(ctx, n, x, a["mode"])
    if fn is F.pad:
        a = bind(n, ("input", "pad", "mode", "value"), mode="constant", value=None)
        return N.pad(ctx, n, x, a["pad"], a["value"]) if a["mode"] == "constant" else None
    if fn is F.conv2d:
        return N.functional_conv(ctx, n)
    if fn is F.linear:
        return N.functional_linear(ctx, n)
    if fn is F.leaky_relu:
        return N.unary(ctx, n, x, "leaky_relu", slope=float(bind(n, ("input", "negative_slope"),
                                                                  negative_slope=0.01)["negative_slope"]))
    if fn is F.gelu:
        return N.unary(ctx, n, x, "gelu") if n.kwargs.get("approximate", "none") == "none" else None
    name = N.ACTIVATION_FUNCTIONS.get(fn)
    return N.unary(ctx, n, x, name) if name else None


def _hardtanh6(n: fx.Node) -> bool:
    a = bind(n, ("input", "min_val", "max_val"), min_val=-1.0, max_val=1.0)
    return (float(a["min_val"]), float(a["max_val"])) == (0.0, 6.0)


def _same_tensor(ctx: Ctx, n: fx.Node, x) -> bool:
    """`x.to(x.device)`, `x.float()` on a float32 tensor...: the same values (dtype and shape unchanged)."""
    a, b = (v.meta.get("tensor_meta") if isinstance(v, fx.Node) else None for v in (n, x))
    return a is not None and b is not None and getattr(a, "dtype", None) == getattr(b, "dtype", 0) == torch.float32 \
        and getattr(a, "shape", None) == getattr(b, "shape", 0)


def method_node(ctx: Ctx, n: fx.Node) -> list[Node] | Alias | None:
    """A tensor method (`x.view(...)`, `x.mean(...)`, ...)."""
    m, args = n.target, n.args
    x = args[0]
    if m == "contiguous" or m in ("to", "type_as", "float", "cpu") and _same_tensor(ctx, n, x):
        ins = ctx.tensors(x)
        return Alias(ctx.name_of(ins[0])) if ins else None
    if m in ("view", "reshape", "flatten", "squeeze", "unsqueeze", "view_as", "reshape_as"):
        return N.reshape(ctx, n, x)
    if m == "permute":
        dims = args[1] if len(args) == 2 and isinstance(args[1], (list, tuple)) else args[1:]
        return N.transpose(ctx, n, x, [int(d) for d in dims])
    if m == "transpose" and len(args) == 3:
        return N.transpose(ctx, n, x, N._perm(len(ctx.shape(x) or ()) + 1, args[1], args[2]))
    if m == "mean":
        a = bind(n, ("self", "dim", "keepdim"), dim=None, keepdim=False)
        return N.spatial_mean(ctx, n, x, a["dim"], a["keepdim"]) if "dtype" not in n.kwargs else None
    if m in ("relu", "relu_"):
        return N.simple(ctx, n, x, "relu")
    if m in ("sigmoid", "tanh"):
        return N.unary(ctx, n, x, m)
    return None
