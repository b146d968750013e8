"""Each integer-engine op as calls into CMSIS-NN, or into karuku's loops in `karuku_cmsis.c` where CMSIS-NN has no
kernel for the engine's form of it.

Values are int8 (an engine uint8 value q as q − 128) in the arena, [C, H, W] values NHWC and all others in the
engine's order (`karuku.deploy.layout.canonical`). CMSIS-NN: convolutions (grouped ones through arm_convolve_s8),
depthwise convolutions, linear layers (rows of [..., K] as batches), residual adds, max pools, an average pool over
windows as a depthwise convolution with weights 1 and the engine's multiplier, zero padding, transposes, and the
inputs of a concatenation on its scale. karuku's loops: the global average pool (CMSIS-NN's keeps the input's
scale), tables (activations, a concatenation input on another scale), nearest upsampling and standalone clamps;
and from `kk_tokens.inc`, shared with karuku's own kernels, the lookup of token ids and an integer input's quantize.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from karuku.deploy import layout as lay
from karuku.deploy.c.arena import plan
from karuku.deploy.c.csyntax import c_array as _array
from karuku.deploy.c.csyntax import c_float
from karuku.deploy.c.geometry import geometry
from karuku.deploy.c.signature import arena_inputs, param
from karuku.deploy.tflite.placement import offset
from karuku.deploy.tflite.tables import stored_table
from karuku.errors import KarukuError
from karuku.quant.engine.graph import IntegerModel, Op

SUPPORTED = ("conv2d", "linear", "maxpool2d", "avgpool2d", "add", "flatten", "clamp", "concat", "lut", "reshape",
             "transpose", "upsample", "pad", "gather", "quantize")


def _dims(n=1, h=1, w=1, c=1) -> str:
    return f"{{{n}, {h}, {w}, {c}}}"


class Gen:
    """The model's C source on CMSIS-NN: declarations, one call (or block) per op, the arena and scratch sizes."""

    def __init__(self, im: IntegerModel, name: str):
        self.im, self.name = im, name
        self.decls: list[str] = []
        self.calls: list[str] = []
        self.buffer = 4  # bytes of the kernels' scratch buffer (im2col columns)
        self.tmp = 1  # bytes of karuku_tmp: a value between two transposes
        self.moves = 0
        self.perm: dict[str, np.ndarray] = {}
        self.consumers: dict[str, list[Op]] = {}
        for op in im.ops:
            for v in op.inputs:
                self.consumers.setdefault(v, []).append(op)

    def zp(self, v: str) -> int:
        val = self.im.values[v]
        return val.zero_point - offset(val)

    def batched(self, v: str) -> list[int]:
        return [1, *self.im.values[v].shape]

    def arrays(self, i: int, op: Op, weight: np.ndarray) -> None:
        arr = {r: self.im.arrays[k] for r, k in op.arrays.items()}
        self.decls += [_array("int8_t", f"op{i}_weight", weight.reshape(-1).tolist()),
                       _array("int32_t", f"op{i}_bias", arr["bias"].tolist()),
                       _array("int32_t", f"op{i}_mult", arr["m0"].tolist()),
                       _array("int32_t", f"op{i}_shift", (-arr["shift"]).tolist())]  # TFLite's exponent

    def act(self, op: Op) -> str:
        vout = self.im.values[op.output]
        return f"{{{op.attrs['lo'] - offset(vout)}, {op.attrs['hi'] - offset(vout)}}}"

    # ---- moving a value between layouts --------------------------------------------------------------
    def transpose(self, i: int, tag: str, x: str, shape: list[int], perm: tuple[int, ...], y: str) -> str:
        """arm_transpose_s8 of a tensor of batched `shape` (batch 1) by `perm` (batched, perm[0] = 0)."""
        dims, p = shape[1:], [d - 1 for d in perm[1:]]
        if len(dims) > 4:
            raise KarukuError(f"the CMSIS-NN back-end transposes at most 4 dimensions ({len(dims)} in layer "
                              f"'{self.im.ops[i].name}')", "keep values to 4 dimensions, or --kernels karuku")
        out = [dims[k] for k in p]
        pad = [1] * (4 - len(dims))
        self.decls.append(f"static const uint32_t op{i}_{tag}[] = {{{', '.join(map(str, p))}}};\n")
        return (f"{{ static const cmsis_nn_dims i = {_dims(*dims, *pad)}, o = {_dims(*out, *pad)}; static const "
                f"cmsis_nn_transpose_params t = {{{len(dims)}, op{i}_{tag}}};\n      "
                f"st |= arm_transpose_s8({x}, {y}, &i, &o, &t); }}")

    def move(self, i: int, x: str, shape: list[int], src: lay.Layout, dst: lay.Layout, y: str) -> str:
        """A tensor of batched engine `shape` from layout `src` into layout `dst` (a copy when they are the same)."""
        if src == dst:
            return f"memmove({y}, {x}, {math.prod(shape)});"
        self.moves += 1
        return self.transpose(i, f"perm{self.moves}", x, lay.shape_in(src, shape), lay.transpose_perm(src, dst), y)

    # ---- ops -----------------------------------------------------------------------------------------
    def conv2d(self, i: int, op: Op, x: str, y: str) -> str:
        g, w = geometry(self.im, op), self.im.arrays[op.arrays["weight"]].numpy()
        c, h, wd, oc, oh, ow, kh, kw = g.c, g.h, g.w, g.oc, g.oh, g.ow, g.kh, g.kw
        # CMSIS-NN pads below / right as far as the output needs; cmsis_nn_tile is {w, h}
        pad, stride = f"{{{g.pw}, {g.ph}}}", f"{{{g.sw}, {g.sh}}}"
        quant = f"{{(int32_t *)op{i}_mult, (int32_t *)op{i}_shift}}"
        common = (f"static const cmsis_nn_per_channel_quant_params q = {quant}; "
                  f"static const cmsis_nn_dims id = {_dims(1, h, wd, c)}, bd = {_dims(c=oc)}, "
                  f"od = {_dims(1, oh, ow, oc)}")
        if g.groups != 1 and g.groups == c and oc % c == 0:
            self.arrays(i, op, w.transpose(1, 2, 3, 0))  # 1HWO
            self.buffer = max(self.buffer, 2 * c * kh * kw)
            return (f"{{ static const cmsis_nn_dw_conv_params p = {{{-self.zp(op.inputs[0])}, {self.zp(op.output)}, "
                    f"{oc // c}, {stride}, {pad}, {{1, 1}}, {self.act(op)}}}; {common}, "
                    f"fd = {_dims(1, kh, kw, oc)};\n      "
                    f"st |= arm_depthwise_conv_wrapper_s8(&ctx, &p, &q, &id, {x}, &fd, op{i}_weight, &bd, "
                    f"op{i}_bias, &od, {y}); }}")
        # groups of input channels too: arm_convolve_s8 takes input C / filter C groups
        self.arrays(i, op, w.transpose(0, 2, 3, 1))  # OHWI, I = C / groups
        self.buffer = max(self.buffer, 2 * 2 * (-(-(kh * kw * c) // 4) * 4))
        return (f"{{ static const cmsis_nn_conv_params p = {{{-self.zp(op.inputs[0])}, {self.zp(op.output)}, "
                f"{stride}, {pad}, {{1, 1}}, {self.act(op)}}}; {common}, "
                f"fd = {_dims(oc, kh, kw, c // g.groups)};\n      "
                f"st |= arm_convolve_wrapper_s8(&ctx, &p, &q, &id, {x}, &fd, op{i}_weight, &bd, op{i}_bias, "
                f"&od, {y}); }}")

    def linear(self, i: int, op: Op, x: str, y: str) -> str:
        """arm_fully_connected_per_channel_s8 with the rows of [..., K] as its batches (a [C, H, W] value moves to
        the engine's order and back through karuku_tmp)."""
        w = self.im.arrays[op.arrays["weight"]].numpy()
        if op.inputs[0] in self.perm:  # reading a flatten in NHWC order: permute the columns to match
            w = w[:, self.perm[op.inputs[0]]]
        self.arrays(i, op, w)
        k, n, rows = w.shape[1], w.shape[0], geometry(self.im, op).rows
        src, dst = self.batched(op.inputs[0]), self.batched(op.output)
        nchw = len(src) == 4
        if nchw:  # NHWC -> NCHW into karuku_tmp, the rows into karuku_tmp + n_in, back to NHWC
            self.tmp = max(self.tmp, math.prod(src) + math.prod(dst))
            pre = self.move(i, x, src, lay.canonical(4), lay.identity(4), "T") + "\n    "
            x, y_rows = "T", f"T + {math.prod(src)}"
        else:
            pre, y_rows = "", y
        call = (f"{{ static const cmsis_nn_fc_params p = {{{-self.zp(op.inputs[0])}, 0, {self.zp(op.output)}, "
                f"{self.act(op)}}}; static const cmsis_nn_per_channel_quant_params q = "
                f"{{(int32_t *)op{i}_mult, (int32_t *)op{i}_shift}}; static const cmsis_nn_dims "
                f"id = {_dims(n=rows, c=k)}, fd = {_dims(n=k, c=n)}, bd = {_dims(c=n)}, od = {_dims(n=rows, c=n)};\n"
                f"      st |= arm_fully_connected_per_channel_s8(&ctx, &p, &q, &id, {x}, &fd, op{i}_weight, &bd, "
                f"op{i}_bias, &od, {y_rows}); }}")
        if nchw:
            call += "\n    " + self.move(i, y_rows, dst, lay.identity(4), lay.canonical(4), y)
        return pre + call

    def maxpool2d(self, i: int, op: Op, x: str, y: str) -> str:
        g = geometry(self.im, op)
        return (f"{{ static const cmsis_nn_pool_params p = {{{{{g.sw}, {g.sh}}}, {{{g.pw}, {g.ph}}}, "
                f"{{-128, 127}}}}; static const cmsis_nn_dims id = {_dims(1, g.h, g.w, g.c)}, "
                f"fd = {_dims(1, g.kh, g.kw, 1)}, od = {_dims(1, g.oh, g.ow, g.c)};\n      "
                f"st |= arm_max_pool_s8(&ctx, &p, &id, {x}, &fd, &od, {y}); }}")

    def avgpool2d(self, i: int, op: Op, x: str, y: str) -> str:
        """Global: kc_mean_s8. Over windows: arm_depthwise_conv_wrapper_s8 with weights 1 and the engine's
        multiplier on every channel (padding adds x − z_x = 0 and counts in the window, as in the engine)."""
        a, g = op.attrs, geometry(self.im, op)
        c, h, w, oh, ow, kh, kw, ph, pw = g.c, g.h, g.w, g.oh, g.ow, g.kh, g.kw, g.ph, g.pw
        if [kh, kw] == [h, w] and [g.sh, g.sw] == [h, w] and [ph, pw] == [0, 0]:
            return (f"kc_mean_s8({x}, {h * w}, {c}, {self.zp(op.inputs[0])}, {a['m0']}, {-a['shift']}, "
                    f"{self.zp(op.output)}, {y});")
        self.decls += [_array("int8_t", f"op{i}_ones", [1] * (kh * kw * c)),
                       _array("int32_t", f"op{i}_zero", [0] * c), _array("int32_t", f"op{i}_mult", [a["m0"]] * c),
                       _array("int32_t", f"op{i}_shift", [-a["shift"]] * c)]
        self.buffer = max(self.buffer, 2 * c * kh * kw)
        return (f"{{ static const cmsis_nn_dw_conv_params p = {{{-self.zp(op.inputs[0])}, {self.zp(op.output)}, 1, "
                f"{{{g.sw}, {g.sh}}}, {{{pw}, {ph}}}, {{1, 1}}, {self.act(op)}}}; "
                f"static const cmsis_nn_per_channel_quant_params q = {{(int32_t *)op{i}_mult, (int32_t *)op{i}_shift}};"
                f" static const cmsis_nn_dims id = {_dims(1, h, w, c)}, fd = {_dims(1, kh, kw, c)}, "
                f"bd = {_dims(c=c)}, od = {_dims(1, oh, ow, c)};\n      st |= arm_depthwise_conv_wrapper_s8(&ctx, &p, "
                f"&q, &id, {x}, &fd, op{i}_ones, &bd, op{i}_zero, &od, {y}); }}")

    def add(self, i: int, op: Op, x: str, y: str) -> str:
        a, n, vout = op.attrs, geometry(self.im, op).n, self.im.values[op.output]
        return (f"st |= arm_elementwise_add_s8({x}, A + {self.off[op.inputs[1]]}, {-self.zp(op.inputs[0])}, "
                f"{a['a_m0']}, {-a['a_shift']}, {-self.zp(op.inputs[1])}, {a['b_m0']}, {-a['b_shift']}, "
                f"{a['left_shift']}, {y}, {self.zp(op.output)}, {a['m0']}, {-a['shift']}, "
                f"{a['lo'] - offset(vout)}, {a['hi'] - offset(vout)}, {n});")

    def clamp(self, i: int, op: Op, x: str, y: str) -> str:
        vout = self.im.values[op.output]
        if op.inputs[0] in self.perm:
            self.perm[op.output] = self.perm[op.inputs[0]]
        return (f"kc_clamp_s8({x}, {geometry(self.im, op).n}, {op.attrs['lo'] - offset(vout)}, "
                f"{op.attrs['hi'] - offset(vout)}, {y});")

    def lut(self, i: int, op: Op, x: str, y: str) -> str:
        vin, vout = self.im.values[op.inputs[0]], self.im.values[op.output]
        self.decls.append(self.table(f"op{i}_table", self.im.arrays[op.arrays["table"]], vin, vout))
        return f"kc_lut_s8({x}, op{i}_table, {geometry(self.im, op).n}L, {y});"

    def table(self, ident: str, table, vin, vout) -> str:
        """The table by the int8 input's byte, as kc_lut_s8 reads it."""
        stored = stored_table(table, vin, vout)  # by input + 128
        return _array("int8_t", ident, [int(stored[(b ^ 0x80)]) for b in range(256)])

    def concat(self, i: int, op: Op, x: str, y: str) -> str:
        """Inputs on the output's scale through arm_concatenation_s8_{x,y,z,w}, the others through their table."""
        vout, out = self.im.values[op.output], self.batched(op.output)
        layout = lay.canonical(len(out))
        if len(out) > 5:
            raise KarukuError(f"the CMSIS-NN back-end joins values of at most 4 dimensions (layer '{op.name}')",
                              "keep values to 4 dimensions, or --kernels karuku")
        lead = [1] * (5 - len(out))
        full = lead + lay.shape_in(layout, out)[1:]  # (w, z, y, x), x innermost
        ax = len(lead) + layout.index(op.attrs["axis"]) - 1
        calls, at = [], 0
        for j, name in enumerate(op.inputs):
            vin = self.im.values[name]
            d = lead + lay.shape_in(layout, self.batched(name))[1:]
            src = f"A + {self.off[name]}"
            if f"table{j}" in op.arrays:  # block by block: outer blocks of the input into the output's
                self.decls.append(self.table(f"op{i}_table{j}", self.im.arrays[op.arrays[f"table{j}"]], vin, vout))
                inner = math.prod(d[ax + 1:])
                calls.append(f"kc_concat_lut_s8({src}, op{i}_table{j}, {math.prod(d[:ax])}L, {d[ax] * inner}L, "
                             f"{full[ax] * inner}L, {at * inner}L, {y});")
            else:
                w_, z_, y_, x_ = d
                tail = f"{at}" if ax == 0 else f"{full[ax]}, {at}"
                calls.append(f"arm_concatenation_s8_{'wzyx'[ax]}({src}, {x_}, {y_}, {z_}, {w_}, {y}, {tail});")
            at += d[ax]
        return "\n    ".join(calls)

    def reshape(self, i: int, op: Op, x: str, y: str) -> str:
        """flatten / reshape: a copy when the dimensions it merges lie in order, else through karuku_tmp; a flatten
        read only by linear layers keeps NHWC order and permutes their weight columns."""
        src, dst = self.batched(op.inputs[0]), self.batched(op.output)
        s_lay, d_lay = lay.canonical(len(src)), lay.canonical(len(dst))
        if len(dst) == 2 and s_lay != lay.identity(len(src)) and op.output != self.im.output and \
                all(o.kind == "linear" for o in self.consumers.get(op.output, [])):
            self.perm[op.output] = np.arange(dst[1]).reshape(src[1:]).transpose(
                [d - 1 for d in s_lay[1:]]).reshape(-1)
            return f"memmove({y}, {x}, {dst[1]});"
        if op.inputs[0] in self.perm and len(src) == len(dst) == 2:
            self.perm[op.output] = self.perm[op.inputs[0]]
        need, out = lay.reshape_plan(s_lay, src, dst)
        if need == s_lay:
            return self.move(i, x, dst, out, d_lay, y)
        if out == d_lay:
            return self.move(i, x, src, s_lay, need, y)
        self.tmp = max(self.tmp, math.prod(src))
        return self.move(i, x, src, s_lay, need, "T") + "\n    " + self.move(i, "T", dst, out, d_lay, y)

    def transpose_op(self, i: int, op: Op, x: str, y: str) -> str:
        src, dst = self.batched(op.inputs[0]), self.batched(op.output)
        perm = (0, *[p + 1 for p in op.attrs["perm"]])
        return self.move(i, x, dst, lay.after_transpose(lay.canonical(len(src)), perm), lay.canonical(len(dst)), y)

    def upsample(self, i: int, op: Op, x: str, y: str) -> str:
        (c, h, w), (sh, sw) = self.im.values[op.inputs[0]].shape, op.attrs["scale"]
        return f"kc_upsample_s8({x}, {h}, {w}, {c}, {sh}, {sw}, {y});"

    def pad(self, i: int, op: Op, x: str, y: str) -> str:
        """arm_pad_s8 with the zero point (the engine's real 0)."""
        (c, h, w), (top, left, bottom, right) = self.im.values[op.inputs[0]].shape, op.attrs["pads"]
        return (f"{{ static const cmsis_nn_dims id = {_dims(1, h, w, c)}, pre = {_dims(0, top, left, 0)}, "
                f"post = {_dims(0, bottom, right, 0)};\n      st |= arm_pad_s8({x}, {y}, "
                f"{self.zp(op.inputs[0])}, &id, &pre, &post); }}")

    # ---- token inputs (karuku's kk_tokens.inc: CMSIS-NN has no lookup of this form) -------------------
    def gather(self, i: int, op: Op, x: str, y: str) -> str:
        """Each id's int8 row (stored as the .tflite stores it), from the caller's int32 ids."""
        vout, rows = self.im.values[op.output], self.im.arrays[op.arrays["rows"]]
        stored = (rows.to(torch.int16) - offset(vout)).reshape(-1).tolist()
        self.decls.append(_array("int8_t", f"op{i}_rows", stored))
        return (f"if (kk_gather_rows({param(self.im, op.inputs[0])}, {math.prod(self.im.values[op.inputs[0]].shape)}"
                f"L, (const uint8_t *)op{i}_rows, {rows.shape[0]}L, {rows.shape[1]}L, (uint8_t *)({y}))) return 1;")

    def quantize(self, i: int, op: Op, x: str, y: str) -> str:
        vout = self.im.values[op.output]
        return (f"kk_quantize_i32({param(self.im, op.inputs[0])}, {geometry(self.im, op).n}L, {c_float(vout.scale)}, "
                f"{self.zp(op.output)}, -128, 127, (uint8_t *)({y}));")

    def source(self) -> tuple[str, int]:
        """(the C source of the model, its arena bytes)."""
        im = self.im
        order = arena_inputs(im) + [op.output for op in im.ops]
        sizes = {v: math.prod(im.values[v].shape) for v in order}
        reads: dict[str, list[int]] = {}
        for i, op in enumerate(im.ops):
            for v in op.inputs:
                reads.setdefault(v, []).append(i)
        self.off, arena = plan(order, sizes, reads)
        emit = {"flatten": self.reshape, "reshape": self.reshape, "transpose": self.transpose_op}
        for i, op in enumerate(im.ops):
            if op.kind not in SUPPORTED:
                raise KarukuError(f"the CMSIS-NN back-end has no kernel for op '{op.kind}' (layer '{op.name}')",
                                  f"supported: {', '.join(SUPPORTED)}; or --kernels karuku")
            x, y = f"A + {self.off.get(op.inputs[0], 0)}", f"A + {self.off[op.output]}"  # token ids: not in A
            call = (emit[op.kind] if op.kind in emit else getattr(self, op.kind))(i, op, x, y)
            self.calls.append(f"/* {op.name} */\n    {call}")
        return "\n    ".join(self.calls), arena
