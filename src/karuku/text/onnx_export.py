"""ONNX for sentence encoders, written node by node in the forms ONNX Runtime runs fastest on CPU.

Inputs `input_ids` and `attention_mask` (int64, batch × tokens, both axes dynamic); output `embedding`
(batch × hidden, unit length). Per layer, fp32: com.microsoft `Attention` (Q/K/V packed inside) and MatMul; int8:
the layer input quantized once (DynamicQuantizeLinear, or QuantizeLinear at the calibrated range when static), Q, K
and V as three `MatMulIntegerToFloat`, the standard `Attention` (opset 23) in float — inside an `If`: without the
mask when no token is padding —, and the output projection and the FFN as `DynamicQuantizeMatMul` (dynamic) or
QuantizeLinear → `MatMulIntegerToFloat` (static); then LayerNormalization and `Gelu`. SmoothQuant's division is an
elementwise Mul before each quantized input, except the output projection's, folded into V's scales. LayerNorm,
softmax, GELU and pooling stay float. Measured on all-MiniLM-L6-v2, batch 32 × 128, one thread: Add +
LayerNormalization and Gelu after a biased matrix product ran faster than SkipLayerNormalization / BiasGelu; with
the int8 attention above the whole file ran 1.09× as fast as with com.microsoft QAttention (1.14× on a 4-layer
student), with one packed DynamicQuantizeMatMul + Split before the Attention 1.04×, with MultiHeadAttention 0.96×,
with MatMul / Softmax (ORT quantize_dynamic's form) 0.93× (docs/bench/text.md, "int8 attention forms"); leaving out
the mask when nothing is padded made it 1.037× (VNNI and AVX2 alike). A weight-only int8 word embedding is
`GatherBlockQuantized`; an int4 one is gathered as packed bytes and decoded by a 256-entry table (3.6× faster than
GatherBlockQuantized's int4 path, bit-identical). These are com.microsoft operators, and the standard Attention
needs ONNX Runtime 1.23 or later on CPU: the file is for ONNX Runtime (the fp32 file too, so fp32 and int8 are
timed with the same fusions).

int8 weights are stored per `karuku.quant.representation` (u8s8, u8s7 or u8u8), chosen for the target ISA so
that ONNX Runtime computes them exactly there; the choice goes into the metadata (`karuku.representation`,
`karuku.target_isa`), with the model's shape (`karuku.bert`).
"""

from __future__ import annotations

import json

import numpy as np
import torch
from torch import nn

from karuku.errors import KarukuError
from karuku.quant.representation import REPRESENTATIONS, choose
from karuku.text.encoder import SentenceEncoder
from karuku.text.quantize import QLinear

OPSET = 23  # the standard Attention operator (ONNX Runtime >= 1.23 on CPU)
MS = "com.microsoft"


class _Graph:
    def __init__(self, rep: str | None):
        from onnx import TensorProto, helper, numpy_helper

        self.h, self.nh, self.tp = helper, numpy_helper, TensorProto
        self.nodes, self.inits = [], []
        self.rep = REPRESENTATIONS[rep] if rep else None

    def init(self, name: str, arr) -> str:
        self.inits.append(self.nh.from_array(np.array(arr, order="C"), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: int | list[str] = 1, domain: str = "", **attrs):
        outs = outputs if isinstance(outputs, list) else [f"{op}_{len(self.nodes)}_{i}" for i in range(outputs)]
        self.nodes.append(self.h.make_node(op, inputs, outs, name=f"{op}_{len(self.nodes)}", domain=domain or None,
                                           **attrs))
        return outs[0] if len(outs) == 1 else outs

    def int_weights(self, name: str, w_int: torch.Tensor) -> tuple[str, str]:
        """(weights (in, out), zero points (out,)) in the representation's ONNX type; w_int is (out, in)."""
        w = w_int.to(torch.int16).t().contiguous().numpy()
        if np.abs(w).max(initial=0) > self.rep.max_weight:
            raise KarukuError(f"'{name}' has weights up to ±{np.abs(w).max()}, more than the {self.rep.name} "
                              f"representation holds (±{self.rep.max_weight})",
                              "quantize for this target (QuantConfig(target_isa=...)) or export as u8u8")
        if self.rep.weights == "uint8":  # the same integers moved up by 128: u8 × u8 kernels never saturate
            return (self.init(f"{name}.w_uint8", (w + 128).astype(np.uint8)),
                    self.init(f"{name}.w_zero_point", np.full(w.shape[1], 128, np.uint8)))
        return (self.init(f"{name}.w_int8", w.astype(np.int8)),
                self.init(f"{name}.w_zero_point", np.zeros(w.shape[1], np.int8)))

    def linear(self, name: str, m: nn.Module, x: str, with_bias: bool = True, smooth: bool = True) -> str:
        """x @ Wᵀ (+ b): fp32 MatMul, int8 DynamicQuantizeMatMul, or static QuantizeLinear → MatMulIntegerToFloat.
        `smooth=False`: x arrives already divided by m's SmoothQuant scale (folded upstream, `_o_fold`)."""
        bias = m.bias.detach().float().numpy()
        b = [self.init(f"{name}.b", bias)] if with_bias else []
        if isinstance(m, nn.Linear):
            y = self.node("MatMul", [x, self.init(f"{name}.wT", m.weight.detach().float().t().contiguous().numpy())])
            return self.node("Add", [y, b[0]]) if with_bias else y
        if not isinstance(m, QLinear):
            raise KarukuError(f"'{name}' is a {type(m).__name__}, not a Linear", "export encoders built by karuku")
        x = self.smoothed(name, m, x) if smooth else x
        if m.static:
            return self.int_matmul(name, m, self.quantize_static(name, m, x), b)
        w, wz = self.int_weights(name, m.w_int)
        ws = self.init(f"{name}.w_scale", m.w_scale.float().numpy())
        return self.node("DynamicQuantizeMatMul", [x, w, ws, wz, *b], domain=MS)

    def int_matmul(self, name: str, m: QLinear, xq: tuple[str, str, str], b: list[str],
                   out_scale: torch.Tensor | None = None) -> str:
        """An input already quantized, (values, scale, zero point), times m's int8 weights, to float (+ b);
        `out_scale`: each output channel also multiplied by it (folded into the weight scales)."""
        w, wz = self.int_weights(name, m.w_int)
        scale = m.w_scale.float() if out_scale is None else m.w_scale.float() * out_scale
        ws = self.init(f"{name}.w_scale", scale.numpy())
        return self.node("MatMulIntegerToFloat", [xq[0], w, xq[1], ws, xq[2], wz, *b], domain=MS)

    def smoothed(self, name: str, m: QLinear, x: str) -> str:
        """x · (1 / s) before quantizing, for a SmoothQuant-ed layer."""
        if not m.in_scale.numel():
            return x
        return self.node("Mul", [x, self.init(f"{name}.in_scale", m.in_scale.float().numpy())])

    def quantize_static(self, name: str, m: QLinear, x: str) -> tuple[str, str, str]:
        scale, zp = m.act_qparams(torch.zeros(1))
        xs = self.init(f"{name}.x_scale", np.array(float(scale), np.float32))
        xz = self.init(f"{name}.x_zero_point", np.array(int(zp), np.uint8))
        return self.node("QuantizeLinear", [x, xs, xz]), xs, xz


def _o_fold(attn) -> torch.Tensor | None:
    """The output projection's SmoothQuant 1/s when it has one: attention is linear in V, so multiplying V's output
    channels by it gives the projection its input already divided, and its elementwise Mul (one pass over the
    context per layer) goes; exact up to float rounding."""
    return attn.o.in_scale.float() if isinstance(attn.o, QLinear) and attn.o.in_scale.numel() else None


def _scaled(bias: torch.Tensor, scale: torch.Tensor | None) -> np.ndarray:
    b = bias.detach().float()
    return (b if scale is None else b * scale).numpy()


def _attention(g: _Graph, i: int, attn, mask: dict[str, str], x: str) -> str:
    """Q/K/V projections and attention (the forms: module docstring); V's output carries `_o_fold`. `mask`: the
    attention mask as each form takes it ("int32": batch × tokens; "bool": batch × 1 × tokens × tokens;
    "unpadded": a bool scalar, True when no token is padding)."""
    name = f"layers.{i}.attn"
    qkv = [attn.q, attn.k, attn.v]
    fold = _o_fold(attn)
    kinds = {type(m) for m in qkv}
    if len(kinds) != 1 or (QLinear in kinds and len({(m.bits, m.static) for m in qkv}) != 1):
        raise KarukuError(f"{name}: q, k and v are quantized differently",
                          "give them the same bits (layer_bits pattern like 'layers.N.attn.[qkv]')")
    if kinds == {nn.Linear}:
        ws = [m.weight.detach().float() for m in qkv]
        bs = [m.bias.detach().float() for m in qkv]
        if fold is not None:
            ws[2], bs[2] = ws[2] * fold[:, None], bs[2] * fold
        bias = g.init(f"{name}.qkv.b", torch.cat(bs).numpy())
        w = g.init(f"{name}.qkv.w", torch.cat(ws).t().contiguous().numpy())
        inner = attn.heads * attn.head_dim
        extra = {"qkv_hidden_sizes": [inner] * 3} if inner != attn.q.in_features else {}
        return g.node("Attention", [x, w, bias, mask["int32"]], domain=MS, num_heads=attn.heads, **extra)
    x = g.smoothed(f"{name}.qkv", qkv[0], x)  # Q, K and V share one input, so one SmoothQuant scale
    xq = g.quantize_static(f"{name}.qkv", qkv[0], x) if qkv[0].static else g.node("DynamicQuantizeLinear", [x], 3)
    out_scale = {"v": fold}  # None when o has no SmoothQuant scale
    q, k, v = (g.int_matmul(f"{name}.{p}", m, xq, [g.init(f"{name}.{p}.b", _scaled(m.bias, out_scale.get(p)))],
                            out_scale.get(p))
               for p, m in zip("qkv", qkv))
    return _standard_attention(g, name, [q, k, v], attn.heads, mask)


def _standard_attention(g: _Graph, name: str, qkv: list[str], heads: int, mask: dict[str, str]) -> str:
    """The standard Attention, masked only when some token is padding: ONNX Runtime's masked path cost 3.7 % of
    the int8 file's time at batch 32 × 128 (VNNI and an AVX2 view alike), and a batch without padding (one text,
    or texts of one length) needs no mask — the same rule transformers follows before SDPA."""
    h, tp = g.h, g.tp
    out = f"{name}.context"

    def branch(label: str, inputs: list[str]):
        node = h.make_node("Attention", inputs, [f"{out}.{label}"], f"{name}.attention.{label}",  # named: profiles
                           q_num_heads=heads, kv_num_heads=heads)
        return h.make_graph([node], f"{name}.{label}", [], [h.make_tensor_value_info(f"{out}.{label}", tp.FLOAT,
                                                                                        None)])

    return g.node("If", [mask["unpadded"]], [out], then_branch=branch("unmasked", qkv),
                  else_branch=branch("masked", [*qkv, mask["bool"]]))


def _pair_mask(g: _Graph) -> str:
    """The standard Attention's mask: (batch, 1, tokens, tokens), True where attended (ONNX Runtime does not
    broadcast its query axis)."""
    shape = g.node("Shape", ["attention_mask"])
    full = g.node("Concat", [g.node("Gather", [shape, g.init("index_0", np.array([0], np.int64))]),
                             g.init("one_1d", np.array([1], np.int64)),
                             g.node("Gather", [shape, g.init("index_1_1", np.array([1, 1], np.int64))])], axis=0)
    return g.node("Expand", [g.node("Unsqueeze", [g.node("Cast", ["attention_mask"], to=g.tp.BOOL),
                                                  g.init("axes_1_2", np.array([1, 2], np.int64))]), full])


def _ffn_matrix(g: _Graph, name: str, m: nn.Module, x: str) -> str:
    """An FFN matrix: one Linear, or a low-rank pair (`ffn_rank`) as two products in a row."""
    if isinstance(m, nn.Sequential):
        return g.linear(f"{name}.1", m[1], g.linear(f"{name}.0", m[0], x))
    return g.linear(name, m, x)


def _residual_norm(g: _Graph, name: str, norm: nn.LayerNorm, y: str, x: str, eps: float) -> str:
    """LayerNorm(x + y) as Add + LayerNormalization: ONNX Runtime fuses it (with the bias Add before it) into
    SkipLayerNormalization; measured faster than writing SkipLayerNormalization with its bias input."""
    return g.node("LayerNormalization", [g.node("Add", [x, y]), g.init(f"{name}.g", norm.weight.detach().numpy()),
                                         g.init(f"{name}.b", norm.bias.detach().numpy())], axis=-1, epsilon=eps)


def _word_embedding(g: _Graph, emb: nn.Module, ids: str) -> str:
    if isinstance(emb, nn.Embedding):
        return g.node("Gather", [g.init("embed.word.w", emb.weight.detach().float().numpy()), ids])
    from onnx import TensorProto

    q = emb.w_int.to(torch.int16).numpy()
    scales = g.init("embed.word.scale", emb.scale.half().numpy())  # float16: the rows come out float16
    if emb.bits == 4:
        return _int4_rows(g, q, emb.block, scales, ids)
    data_name = g.init("embed.word.w_uint8", (q + 128).astype(np.uint8))  # GatherBlockQuantized's 8-bit form
    zp = g.init("embed.word.zero_point", np.full(emb.scale.shape, 128, np.uint8))
    rows = g.node("GatherBlockQuantized", [data_name, ids, scales, zp], domain=MS, bits=8, block_size=emb.block,
                  gather_axis=0, quantize_axis=1)
    return g.node("Cast", [rows], to=TensorProto.FLOAT)


def _int4_rows(g: _Graph, q: np.ndarray, block: int, scales: str, ids: str) -> str:
    """The int4 table's rows for `ids`: two signed 4-bit values per byte, low nibble first (ONNX's INT4 packing),
    gathered as bytes and decoded through a 256-entry (low, high) table, times the float16 block scales, rounded to
    float16 as GatherBlockQuantized rounds them. ONNX Runtime 1.32's int4 GatherBlockQuantized took 17.8 ms for
    32 × 128 ids of MiniLM's table, this decode 5.0 ms, bit-identical; the recipe's student ran 1.098× as fast
    (docs/bench/text.md, "Static QAT for the recipe's student")."""
    tp = g.tp
    n, d = q.shape
    packed = (q.reshape(n, d // 2, 2) & 0xF).astype(np.uint8)
    table = g.init("embed.word.w_int4_packed", packed[..., 0] | (packed[..., 1] << 4))
    byte = np.arange(256)
    signed = [np.where(v >= 8, v - 16, v) for v in (byte & 0xF, byte >> 4)]
    nibbles = g.init("embed.word.nibbles", np.stack(signed, 1).astype(np.float32))
    rows = g.node("Cast", [g.node("Gather", [table, ids], axis=0)], to=tp.INT32)
    values = g.node("Reshape", [g.node("Gather", [nibbles, rows], axis=0),
                                g.init("embed.word.blocks", np.array([0, 0, d // block, block], np.int64))])
    scale = g.node("Unsqueeze", [g.node("Cast", [g.node("Gather", [scales, ids], axis=0)], to=tp.FLOAT),
                                 g.init("axis_last_1", np.array([-1], np.int64))])
    as_f16 = g.node("Cast", [g.node("Mul", [values, scale])], to=tp.FLOAT16)
    return g.node("Reshape", [g.node("Cast", [as_f16], to=tp.FLOAT), g.init("embed.word.shape", np.array([0, 0, d],
                                                                                                        np.int64))])


def export_onnx(model: SentenceEncoder, target_isa: str | None = None, representation: str | None = None) -> bytes:
    """The ONNX bytes of a float or quantized (`karuku.text.quantize`) sentence encoder, checked by onnx.

    int8 weights use `representation` if given, else the fastest one exact on `target_isa` (default: the one the
    model was quantized for)."""
    import onnx

    from karuku.cpu import get_target

    qlinears = [m for m in model.modules() if isinstance(m, QLinear)]
    cfg = getattr(model, "quant_cfg", None)
    target = get_target(target_isa or (cfg.target_isa if cfg is not None else "auto"))
    if qlinears and representation is None:
        representation = choose(max(int(m.w_int.abs().max()) for m in qlinears), target)
    if representation is not None and representation not in REPRESENTATIONS:
        raise KarukuError(f"unknown int8 representation '{representation}'", f"known: {', '.join(REPRESENTATIONS)}")
    g = _Graph(representation if qlinears else None)
    c = model.cfg
    eps = float(c.eps)
    maskf = g.node("Cast", ["attention_mask"], to=g.tp.FLOAT)
    masks = {}
    if any(isinstance(layer.attn.q, nn.Linear) for layer in model.layers):  # com.microsoft Attention's
        masks["int32"] = g.node("Cast", ["attention_mask"], to=g.tp.INT32)
    if any(isinstance(layer.attn.q, QLinear) for layer in model.layers):
        masks["bool"] = _pair_mask(g)
        masks["unpadded"] = g.node("Cast", [g.node("ReduceMin", ["attention_mask"], keepdims=0)], to=g.tp.BOOL)
    word = _word_embedding(g, model.embed.word, "input_ids")
    length = g.node("Gather", [g.node("Shape", ["input_ids"]), g.init("one", np.array(1, np.int64))])
    positions = g.node("Range", [g.init("zero", np.array(0, np.int64)), length, "one"])
    pos = g.node("Gather", [g.init("embed.position.w", model.embed.position.weight.detach().float().numpy()),
                            positions])
    summed = g.node("Add", [g.node("Add", [word, pos]),
                            g.init("embed.token_type.w0", model.embed.token_type.weight.detach()[0].float().numpy())])
    x = g.node("LayerNormalization", [summed, g.init("embed.norm.g", model.embed.norm.weight.detach().numpy()),
                                      g.init("embed.norm.b", model.embed.norm.bias.detach().numpy())],
               axis=-1, epsilon=eps)
    for i, layer in enumerate(model.layers):
        a, f = layer.attn, layer.ffn
        ctx = _attention(g, i, a, masks, x)
        o = g.linear(f"layers.{i}.attn.o", a.o, ctx, smooth=_o_fold(a) is None)
        x = _residual_norm(g, f"layers.{i}.attn.norm", a.norm, o, x, eps)
        up = g.node("Gelu", [_ffn_matrix(g, f"layers.{i}.ffn.up", f.up, x)], domain=MS)
        x = _residual_norm(g, f"layers.{i}.ffn.norm", f.norm, _ffn_matrix(g, f"layers.{i}.ffn.down", f.down, up), x,
                           eps)
    # mean over real tokens, then unit length
    m3 = g.node("Unsqueeze", [maskf, g.init("axis_last", np.array([-1], np.int64))])
    axis1 = g.init("axis_1", np.array([1], np.int64))
    total = g.node("ReduceSum", [g.node("Mul", [x, m3]), axis1], keepdims=0)
    count = g.node("Max", [g.node("ReduceSum", [maskf, axis1], keepdims=1), g.init("tiny", np.array(1e-9, np.float32))])
    mean = g.node("Div", [total, count])
    norm = g.node("Sqrt", [g.node("ReduceSum", [g.node("Mul", [mean, mean]), axis1], keepdims=1)])
    g.node("Div", [mean, g.node("Max", [norm, g.init("eps_norm", np.array(1e-12, np.float32))])], ["embedding"])
    h, tp = g.h, g.tp
    graph = h.make_graph(g.nodes, "karuku_sentence_encoder",
                         [h.make_tensor_value_info("input_ids", tp.INT64, ["batch", "tokens"]),
                          h.make_tensor_value_info("attention_mask", tp.INT64, ["batch", "tokens"])],
                         [h.make_tensor_value_info("embedding", tp.FLOAT, ["batch", c.hidden])], g.inits)
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET), h.make_opsetid(MS, 1)],
                         producer_name="karuku")
    proto.ir_version = 10
    meta = {"karuku.bert": json.dumps({k: v for k, v in c.as_kwargs().items() if k != "extra"}),
            "karuku.quantization": ("float" if not qlinears else
                                    "static" if all(m.static for m in qlinears) else "dynamic")}
    if qlinears:
        meta |= {"karuku.representation": representation, "karuku.target_isa": target}
    h.set_model_props(proto, meta)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()
