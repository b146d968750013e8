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
from karuku.deploy.c.movement import concat_parts, movement_call
from karuku.quant.engine.graph import IntegerModel
from karuku.quant.unary import get_unary


def float_source(im: IntegerModel, name: str, off: dict[str, int], arena: int,
                 direct_conv: Callable[..., bool]) -> str:
    """The same graph in float: weights w·s_w, biases b·s_w·s_x, clamps at the quantized range in real units,
    activations as functions (not tables), concatenation without requantization. `direct_conv` is the integer
    generator's choice of convolution kernel, which the float build follows."""
    decls, calls, scratch, funcs = [], [], 1, {}
    for i, op in enumerate(im.ops):
        a = op.attrs
        vin, vout = im.values[op.inputs[0]], im.values[op.output]
        x, y = f"F + {off[op.inputs[0]] // 4}", f"F + {off[op.output] // 4}"
        lo = hi = None
        if "lo" in a:
            lo, hi = (a["lo"] - vout.zero_point) * vout.scale, (a["hi"] - vout.zero_point) * vout.scale
        if op.kind in ("conv2d", "linear"):
            arr = {r: im.arrays[k].to(torch.float64) for r, k in op.arrays.items()}
            s_w = arr["weight_scale"].reshape(-1, *[1] * (arr["weight"].dim() - 1))
            decls.append(_array("float", f"op{i}_w", (arr["weight"] * s_w).flatten().tolist()))
            decls.append(_array("float", f"op{i}_b", (arr["bias"] * arr["weight_scale"] * vin.scale).tolist()))
            if op.kind == "conv2d":
                c, h, w = vin.shape
                oc, oh, ow = vout.shape
                _, _, kh, kw = arr["weight"].shape
                ph, pw = a["padding"][:2]  # top, left when asymmetric (then never direct: see codegen)
                direct = len(a["padding"]) == 2 and direct_conv(c, h, w, kw, a["groups"], a["padding"])
                calls.append(f"kf_conv2d{'_direct' if direct else ''}({x}, {c}, {h}, {w}, op{i}_w, op{i}_b, "
                             f"{_float(lo)}, {_float(hi)}, {y}, {oc}, {oh}, {ow}, {kh}, {kw}, {a['stride'][0]}, "
                             f"{a['stride'][1]}, {ph}, {pw}, {a['groups']}, S);")
                scratch = max(scratch, ((c // a["groups"]) * (h + 2 * ph) * (w + 2 * pw) if ph or pw else 1) if direct
                              else 2 * (c // a["groups"]) * kh * kw)  # the padded input (if any), or two windows
            else:
                rows, k_in, k_out = math.prod(vin.shape[:-1]), vin.shape[-1], vout.shape[-1]
                call = (f"kf_linear({x} + r * {k_in}, {k_in}, op{i}_w, op{i}_b, {_float(lo)}, {_float(hi)}, "
                        f"{y} + r * {k_out}, {k_out});")
                calls.append(f"{{ int r; for (r = 0; r < {rows}; r++) {call} }}")
        elif op.kind == "maxpool2d":
            c, h, w = vin.shape
            _, oh, ow = vout.shape
            calls.append(f"kf_maxpool2d({x}, {c}, {h}, {w}, {y}, {oh}, {ow}, {a['kernel'][0]}, {a['kernel'][1]}, "
                         f"{a['stride'][0]}, {a['stride'][1]}, {a['padding'][0]}, {a['padding'][1]});")
        elif op.kind == "avgpool2d":
            c, h, w = vin.shape
            _, oh, ow = vout.shape
            ph, pw = a.get("padding", [0, 0])
            calls.append(f"kf_avgpool2d({x}, {c}, {h}, {w}, {y}, {oh}, {ow}, {a['kernel'][0]}, {a['kernel'][1]}, "
                         f"{a['stride'][0]}, {a['stride'][1]}, {ph}, {pw});")
        elif op.kind == "add":
            calls.append(f"kf_add({x}, F + {off[op.inputs[1]] // 4}, {math.prod(vout.shape)}, {_float(lo)}, "
                         f"{_float(hi)}, {y});")
        elif op.kind == "clamp":
            calls.append(f"kf_clamp({x}, {math.prod(vout.shape)}, {_float(lo)}, {_float(hi)}, {y});")
        elif op.kind in ("flatten", "reshape"):
            calls.append(f"memmove({y}, {x}, {4 * math.prod(vout.shape)});")
        elif op.kind == "lut":
            fn = get_unary(a["fn"])
            funcs[fn.name] = (f"static float karuku_{fn.name}(float x, float a) {{\n    (void)a;\n"
                              f"    return {fn.c_float};\n}}\n")
            calls.append(f"kf_map({x}, {math.prod(vout.shape)}L, {_float(a.get('slope', 0.0))}, karuku_{fn.name}, "
                         f"{y});")
        elif op.kind == "concat":
            calls.append(" ".join(f"kf_concat_part(F + {off[src] // 4}, {rows}L, {length}L, {stride}L, {y} + {at});"
                                  for src, rows, length, stride, at in concat_parts(im, op)))
        else:  # transpose, upsample, pad
            decl, call = movement_call(im, op, i, x, y, 4)
            decls.append(decl)
            calls.append(call)
    body = "\n    ".join(f"{c}  /* {op.name} */" for c, op in zip(calls, im.ops))
    return f"""/* generated by karuku {__version__}: float build of {name} (comparison only); do not edit */
#include <math.h>
#include <string.h>
#include "karuku_float_kernels.h"
#include "{name}.h"

{"".join(funcs.values())}{"".join(decls)}
static float karuku_float_arena[{max(arena // 4, 1)}];
static float karuku_float_scratch[{scratch}];

int karuku_{name}_run_float(const float *in, float *out) {{
    float *const F = karuku_float_arena;
    float *const S = karuku_float_scratch;
    (void)S; /* unused when the model has no convolution */
    memcpy(F + {off[im.input] // 4}, in, {4 * math.prod(im.values[im.input].shape)});
    {body}
    memcpy(out, F + {off[im.output] // 4}, {4 * math.prod(im.values[im.output].shape)});
    return 0;
}}
"""
