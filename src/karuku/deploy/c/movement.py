"""C calls for the ops that only move values (transpose, nearest upsampling, zero padding, concatenation).

Shared by the integer and the float source: the same kernels move 1-byte integers or 4-byte floats, so the
float build lays its values out exactly as the integer build does.
"""

from __future__ import annotations

import math

from karuku.quant.engine.graph import IntegerModel, Op


def concat_parts(im: IntegerModel, op: Op) -> list[tuple[str, int, int, int, int]]:
    """Per input: (value, rows, elements per row, output elements per row, first output element)."""
    axis = op.attrs["axis"] - 1  # in the shape without the batch
    out = im.values[op.output].shape
    stride, at, parts = math.prod(out[axis:]), 0, []
    for v in op.inputs:
        shape = im.values[v].shape
        length = math.prod(shape[axis:])
        parts.append((v, math.prod(shape[:axis]), length, stride, at))
        at += length
    return parts


def movement_call(im: IntegerModel, op: Op, i: int, x: str, y: str, size: int) -> tuple[str, str]:
    """(declarations, call) of a transpose / upsample / pad on elements of `size` bytes (1 or 4)."""
    vin, a = im.values[op.inputs[0]], op.attrs
    float_build = size == 4
    if op.kind == "transpose":
        dims = ", ".join(str(d) for d in vin.shape)
        perm = ", ".join(str(p) for p in a["perm"])
        decl = f"static const int op{i}_dims[] = {{{dims}}};\nstatic const int op{i}_perm[] = {{{perm}}};\n"
        if float_build:
            return decl, f"kf_transpose({x}, {len(vin.shape)}, op{i}_dims, op{i}_perm, {y});"
        return decl, f"kk_transpose({x}, 1, {len(vin.shape)}, op{i}_dims, op{i}_perm, {y});"
    c, h, w = vin.shape
    if op.kind == "upsample":
        sh, sw = a["scale"]
        if float_build:
            return "", f"kf_upsample({x}, {c}, {h}, {w}, {sh}, {sw}, {y});"
        return "", f"kk_upsample({x}, 1, {c}, {h}, {w}, {sh}, {sw}, {y});"
    if op.kind == "pad":
        t, left, b, r = a["pads"]
        if float_build:
            return "", f"kf_pad({x}, {c}, {h}, {w}, {t}, {left}, {b}, {r}, {y});"
        decl = f"static const uint8_t op{i}_fill = {vin.zero_point & 0xFF}; /* the zero point: real 0 */\n"
        return decl, f"kk_pad({x}, 1, {c}, {h}, {w}, {t}, {left}, {b}, {r}, &op{i}_fill, {y});"
    raise ValueError(f"not a data-movement op: {op.kind}")
