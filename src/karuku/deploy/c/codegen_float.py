"""The float build of a generated project: the same graph and the same value layout in single precision.

For comparisons only (instruction counts, accuracy of the integer build against float on the device).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from karuku import __version__
from karuku.deploy.c.csyntax import c_array as _array
from karuku.deploy.c.csyntax import c_float as _float
from karuku.deploy.c.geometry import geometry
from karuku.deploy.c.movement import concat_parts, movement_call
from karuku.deploy.c.signature import copy_inputs, param, run_params
from karuku.quant.engine.graph import IntegerModel
from karuku.quant.unary import get_unary


def float_source(im: IntegerModel, name: str, off: dict[str, int], arena: int,
                 direct_conv: Callable[..., bool]) -> str:
    """The same graph in float: weights w·s_w, biases b·s_w·s_x, clamps at the quantized range in real units,
    activations as functions (not tables), concatenation without requantization. `direct_conv` is the integer
    generator's choice of convolution kernel, which the float build follows."""
    decls, calls, scratch, funcs = [], [], 1, {}
    for i, op in enumerate(im.ops):
        a, g = op.attrs, geometry(im, op)
        vin, vout = im.values[op.inputs[0]], im.values[op.output]
        y = f"F + {off[op.output] // 4}"
        if op.kind == "gather":  # the rows in real units
            rows = im.arrays[op.arrays["rows"]].to(torch.float64)
            decls.append(_array("float", f"op{i}_rows", ((rows - vout.zero_point) * vout.scale).flatten().tolist()))
            calls.append(f"if (kf_gather_rows({param(im, op.inputs[0])}, {math.prod(vin.shape)}L, op{i}_rows, "
                         f"{rows.shape[0]}L, {rows.shape[1]}L, {y})) return 1;")
            continue
        if op.kind == "gather_mean":  # the table in real units
            rows = im.arrays[op.arrays["rows"]].to(torch.float64) * float(im.arrays[op.arrays["weight_scale"]])
            decls.append(_array("float", f"op{i}_rows", rows.flatten().tolist()))
            calls.append(f"if (kf_gather_mean({param(im, op.inputs[0])}, {vin.shape[-1]}L, op{i}_rows, "
                         f"{rows.shape[0]}L, {rows.shape[1]}L, {a['pad']}, {1 - a['sum']}, {y})) return 1;")
            continue
        if op.kind == "quantize":  # the integers as they are, in float
            calls.append(f"kf_cast({param(im, op.inputs[0])}, {g.n}L, {y});")
            continue
        x = f"F + {off[op.inputs[0]] // 4}"
        lo = hi = None
        if "lo" in a:
            lo, hi = (a["lo"] - vout.zero_point) * vout.scale, (a["hi"] - vout.zero_point) * vout.scale
        if op.kind in ("conv2d", "linear"):
            arr = {r: im.arrays[k].to(torch.float64) for r, k in op.arrays.items()}
            s_w = arr["weight_scale"].reshape(-1, *[1] * (arr["weight"].dim() - 1))
            decls.append(_array("float", f"op{i}_w", (arr["weight"] * s_w).flatten().tolist()))
            decls.append(_array("float", f"op{i}_b", (arr["bias"] * arr["weight_scale"] * vin.scale).tolist()))
            if op.kind == "conv2d":  # padding top, left when asymmetric (then never direct: see codegen)
                direct = g.symmetric and direct_conv(g.c, g.h, g.w, g.kw, g.groups, a["padding"])
                calls.append(f"kf_conv2d{'_direct' if direct else ''}({x}, {g.c}, {g.h}, {g.w}, op{i}_w, op{i}_b, "
                             f"{_float(lo)}, {_float(hi)}, {y}, {g.oc}, {g.oh}, {g.ow}, {g.window}, {g.groups}, S);")
                cg = g.c // g.groups
                scratch = max(scratch, (cg * (g.h + 2 * g.ph) * (g.w + 2 * g.pw) if g.ph or g.pw else 1) if direct
                              else 2 * cg * g.kh * g.kw)  # the padded input (if any), or two windows
            else:
                call = (f"kf_linear({x} + r * {g.k_in}, {g.k_in}, op{i}_w, op{i}_b, {_float(lo)}, {_float(hi)}, "
                        f"{y} + r * {g.k_out}, {g.k_out});")
                calls.append(f"{{ int r; for (r = 0; r < {g.rows}; r++) {call} }}")
        elif op.kind in ("maxpool2d", "avgpool2d"):
            calls.append(f"kf_{op.kind}({x}, {g.c}, {g.h}, {g.w}, {y}, {g.oh}, {g.ow}, {g.window});")
        elif op.kind == "add":
            calls.append(f"kf_add({x}, F + {off[op.inputs[1]] // 4}, {g.n}, {_float(lo)}, {_float(hi)}, {y});")
        elif op.kind == "clamp":
            calls.append(f"kf_clamp({x}, {g.n}, {_float(lo)}, {_float(hi)}, {y});")
        elif op.kind in ("flatten", "reshape"):
            calls.append(f"memmove({y}, {x}, {4 * g.n});")
        elif op.kind == "lut":
            fn = get_unary(a["fn"])
            funcs[fn.name] = (f"static float karuku_{fn.name}(float x, float a) {{\n    (void)a;\n"
                              f"    return {fn.c_float};\n}}\n")
            calls.append(f"kf_map({x}, {g.n}L, {_float(a.get('slope', 0.0))}, karuku_{fn.name}, "
                         f"{y});")
        elif op.kind == "concat":
            calls.append(" ".join(f"kf_concat_part(F + {off[src] // 4}, {rows}L, {length}L, {stride}L, {y} + {at});"
                                  for src, rows, length, stride, at in concat_parts(im, op)))
        else:  # transpose, upsample, pad
            decl, call = movement_call(im, op, i, x, y, 4)
            decls.append(decl)
            calls.append(call)
    body = "\n    ".join(f"{c}  /* {op.name} */" for c, op in zip(calls, im.ops))
    copies = copy_inputs(im, "F", off, 4)
    return f"""/* generated by karuku {__version__}: float build of {name} (comparison only); do not edit */
#include <math.h>
#include <string.h>
#include "karuku_float_kernels.h"
#include "{name}.h"

{"".join(funcs.values())}{"".join(decls)}
static float karuku_float_arena[{max(arena // 4, 1)}];
static float karuku_float_scratch[{scratch}];

int karuku_{name}_run_float({run_params(im, True)}, float *out) {{
    float *const F = karuku_float_arena;
    float *const S = karuku_float_scratch;
    (void)S; /* unused when the model has no convolution */
    {copies}
    {body}
    memcpy(out, F + {off[im.output] // 4}, {4 * math.prod(im.values[im.output].shape)});
    return 0;
}}
"""
