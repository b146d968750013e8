"""From any traceable nn.Module to a flat list of quantizable nodes, BatchNorm folded, activations fused.

torch.fx traces the model; `recognise` turns each fx call into `Node`s (karuku.quant.nodes lists the ops).
BatchNorm after a conv / linear is folded into its weights and bias; ReLU / ReLU6 after a conv, linear or
add becomes that node's `act` (its clamp); zero padding before a conv becomes the conv's own (asymmetric)
padding; dropout and identities disappear. Values that are not batched tensors (sizes, devices,
parameters read by a float op) are `aux` nodes; what nothing uses is dropped. Anything else is an
`op="float"` node that runs unquantized (PTQ / QAT refuse it unless the user keeps it in float).
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn

from karuku.errors import KarukuError
from karuku.quant import bag
from karuku.quant.nodes import PASS_THROUGH, WEIGHTED, Alias, Ctx, Node
from karuku.quant.recognise import function_node, method_node, module_node
from karuku.quiet import propagate_shapes

__all__ = ["PASS_THROUGH", "WEIGHTED", "Node", "fold_bn", "trace"]


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


def trace(model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...]) -> list[Node]:
    """Trace `model` (eval mode) into nodes with output shapes; BN folded, activations fused.

    `example`: one input, or a tuple of the model's inputs in forward's order. Integer values (token ids, masks
    and what is computed from them alone) are never quantized: they run as they are, and a float op reading
    them (an embedding lookup, `mask.float()`) runs in float with its output quantized (`from_integer`)."""
    examples = example if isinstance(example, tuple) else (example,)
    integer = any(not e.is_floating_point() for e in examples)
    model = model.eval()
    try:
        gm = fx.symbolic_trace(model)
    except Exception as exc:
        hint = ("a transformer with token inputs: karuku.text.quantize rewrites its Linear layers without tracing"
                if integer or len(examples) > 1 else "quantization needs a model without data-dependent control flow")
        raise KarukuError(f"cannot trace {type(model).__name__} with torch.fx ({str(exc).splitlines()[0][:200]})",
                          hint) from None
    try:  # a batch of two tells batched tensors (first dimension 2) from everything else
        propagate_shapes(gm, *[torch.cat([e[:1], e[:1]]) for e in examples])
    except Exception as exc:
        shapes = ", ".join(str(tuple(e.shape[1:])) for e in examples)
        raise KarukuError(f"calibration inputs of shape {shapes} do not fit "
                          f"{type(model).__name__} ({str(exc).splitlines()[0][:160]})",
                          "give inputs shaped like the model's training data") from None
    alias: dict[str, str] = {}
    aux_values: set[str] = set()
    integer_values: set[str] = set()  # integer tensors: never quantized
    placeholders = 0
    ctx = Ctx(gm, lambda a: alias.get(a.name, a.name), aux_values)
    nodes: list[Node] = []
    seen: set[str] = set()
    output = None
    for n in gm.graph.nodes:
        if n.op == "output":
            output = ctx.name_of(n.args[0]) if isinstance(n.args[0], fx.Node) else None
            continue
        from_integer = any(ctx.name_of(a) in integer_values for a in n.all_input_nodes)
        if n.op == "placeholder":
            found = [Node(n.name, "input", [], {"index": placeholders, **({"integer": True} if _integer(n) else {})})]
            placeholders += 1
        elif from_integer or _integer(n):
            found = None  # an integer path, or a float op reading one: kept as it is
        elif n.op == "call_module":
            found = module_node(ctx, n, gm.get_submodule(n.target))
        elif n.op == "call_function":
            found = function_node(ctx, n)
        elif n.op == "call_method":
            found = method_node(ctx, n)
        else:
            found = None
        if isinstance(found, Alias):
            alias[n.name] = found.value
            continue
        if found is None:  # no integer form: run the original call in float
            ins = [ctx.name_of(a) for a in n.all_input_nodes]
            tensor = hasattr(n.meta.get("tensor_meta"), "shape")
            # not an activation: a parameter read, a size or device, or what only those feed
            aux = n.op == "get_attr" or not tensor or _integer(n) or all(i in aux_values for i in ins)
            attrs = {"kind": _kind(gm, n), **({"from_integer": True} if from_integer and not aux else {})}
            form = _integer_form(gm, n) if from_integer and not aux else None
            if form:
                attrs["integer_form"] = form
            found = [Node(ctx.label(n), "aux" if aux else "float", ins, attrs, _FxCall(gm, n))]
        local: dict[str, str] = {}  # names inside one group of nodes (a channel shuffle's three)
        for node in found:
            if node is found[-1]:
                node.shape = ctx.shape(n) or ()
            node.inputs = [local.get(i, i) for i in node.inputs]
            old = node.name
            while node.name in seen:  # a module called twice gets a second name
                node.name += "_"
            seen.add(node.name)
            local[old] = node.name
            if node.op == "aux" and not _integer(n):
                aux_values.add(node.name)
            if _integer(n):
                integer_values.add(node.name)
            nodes.append(node)
        alias[n.name] = found[-1].name
    if output is None:
        raise KarukuError("the traced model does not return one tensor",
                          "quantize a model whose forward returns one tensor (not a tuple or dict)")
    return _fuse(_live(nodes, output), output)


def _integer(n: fx.Node) -> bool:
    """The value is an integer tensor (ShapeProp's dtype): token ids, a mask, an index computed from them."""
    dtype = getattr(n.meta.get("tensor_meta"), "dtype", None)
    return dtype is not None and not dtype.is_floating_point


def _integer_form(gm: fx.GraphModule, n: fx.Node) -> str | None:
    """The integer engine's op for a float call on one of the model's integer inputs, when it has one: an
    embedding lookup is `gather` (a lookup of the output's quantized rows: exactly the fake-quantized lookup),
    an EmbeddingBag `bag` (karuku.quant.bag), a cast to float32 is `quantize` (the input's one float step).
    Anything else computed from integers stays float."""
    ins = n.all_input_nodes
    out_dtype = getattr(n.meta.get("tensor_meta"), "dtype", None)
    if len(ins) != 1 or ins[0].op != "placeholder" or out_dtype != torch.float32:
        return None
    if n.op == "call_module":
        m = gm.get_submodule(n.target)
        if len(n.args) != 1 or n.kwargs:
            return None
        if type(m) is nn.Embedding and m.max_norm is None:
            return "gather"
        shape = getattr(ins[0].meta.get("tensor_meta"), "shape", ())
        return "bag" if bag.plain(m) and len(shape) == 2 else None  # [batch, tokens]: one bag a text
    if n.op == "call_method" and n.target == "float" and len(n.args) == 1 and not n.kwargs:
        return "quantize"
    if n.op == "call_method" and n.target == "to":
        dtypes = [a for a in [*n.args[1:], *n.kwargs.values()] if isinstance(a, torch.dtype)]
        return "quantize" if dtypes == [torch.float32] and len(n.args) + len(n.kwargs) == 2 else None
    return None


def _kind(gm: fx.GraphModule, n: fx.Node) -> str:
    if n.op == "call_module":
        return type(gm.get_submodule(n.target)).__name__
    return getattr(n.target, "__name__", str(n.target))


def _live(nodes: list[Node], output: str) -> list[Node]:
    """The nodes the output depends on (sizes that fed a reshape, unused branches: gone)."""
    by_name = {n.name: n for n in nodes}
    need, stack = set(), [output]
    while stack:
        v = stack.pop()
        if v in need or v not in by_name:
            continue
        need.add(v)
        stack.extend(by_name[v].inputs)
    return [n for n in nodes if n.name in need or n.op == "input"]


class _FxCall(nn.Module):
    """A float fallback: calls the original fx target with its (float) inputs and constant arguments."""

    def __init__(self, gm: fx.GraphModule, n: fx.Node):
        super().__init__()
        order = list(n.all_input_nodes)
        self.op, self.target = n.op, n.target
        self.owner = gm.get_submodule(n.target) if n.op == "call_module" else None
        if n.op == "get_attr":  # a parameter or buffer read: kept out of the state (the float model has it)
            value = gm
            for part in n.target.split("."):
                value = getattr(value, part)
            self.register_buffer("value", value.detach() if isinstance(value, torch.Tensor) else None,
                                 persistent=False)
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

        if self.op == "get_attr":
            return self.value
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
        if n.op == "conv" and single and src.op == "pad":  # TF "same" padding: the conv pads asymmetrically
            n.attrs["padding"] = _add_pads(src.attrs["pads"], n.attrs["padding"])
            n.inputs = [src.inputs[0], *n.inputs[1:]]
            kept = [k for k in kept if k is not src]
        if n.op in ("relu", "relu6") and single and src.op in (*WEIGHTED, "add") and "act" not in src.attrs:
            src.attrs["act"] = n.op
            rename[n.name] = src.name
            users[src.name] = users.get(n.name, 0)
            continue
        if n.op == "bn":
            n.op, n.attrs = "float", {"kind": type(n.module).__name__}
        kept.append(n)
    out = rename.get(output, output)
    for n in kept:
        n.attrs.setdefault("is_output", n.name == out)
    return kept


def _add_pads(pads: list[int], padding: list[int]) -> list[int]:
    """Zero padding [top, left, bottom, right] plus a conv's padding ([ph, pw] or four): [ph, pw] if symmetric."""
    own = padding * 2 if len(padding) == 2 else padding
    total = [a + b for a, b in zip(pads, own)]
    return total[:2] if total[:2] == total[2:] else total
