"""Portable C99 from the integer-only model: const weight arrays, one static arena, kernel calls.

`generate(im, name)` returns the files of a self-contained C project (model source and header,
the kernels, and a float build of the same graph for comparisons). The generated code computes
exactly what `IntegerModel.run_int` computes, byte for byte.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources

import torch

from karuku import __version__
from karuku.deploy.c.arena import plan
from karuku.deploy.c.codegen_float import float_source
from karuku.deploy.c.csyntax import c_array as _array
from karuku.deploy.c.csyntax import c_float as _float
from karuku.deploy.c.geometry import geometry
from karuku.deploy.c.movement import concat_parts, movement_call
from karuku.deploy.c.signature import arena_inputs, c_inputs, c_name, copy_inputs, header_inputs, param, run_params
from karuku.errors import KarukuError
from karuku.quant.engine.graph import DTYPES, IntegerModel
from karuku.quant.primitives import ROUNDINGS

SUPPORTED = ("conv2d", "linear", "maxpool2d", "avgpool2d", "add", "flatten", "clamp", "concat", "lut", "reshape",
             "transpose", "upsample", "pad", "gather", "quantize", "gather_mean")


@dataclass
class CProject:
    """Generated C sources of one model, with their memory figures (weights, arena, scratch)."""

    name: str
    files: dict[str, str] = field(default_factory=dict)
    arena_bytes: int = 0
    float_arena_bytes: int = 0
    weight_bytes: int = 0
    input_size: int = 0
    output_size: int = 0
    input_dtype: str = "uint8"
    output_dtype: str = "uint8"
    scratch_values: int = 0  # int16 values of the im2col / input-vector scratch buffer
    inputs: list[tuple[str, str, int]] = field(default_factory=list)  # several: (C name, int8 / int32, count)
    kernel_sources: tuple[str, ...] = ("karuku_kernels.c",)  # compiled with the model's source (int8 build)
    library: object | None = None  # a toolchain.Library the int8 build links (CMSIS-NN: karuku.deploy.c.cmsis)


def _runtime(filename: str) -> str:
    return resources.files("karuku.deploy.c").joinpath("runtime").joinpath(filename).read_text()


def check_supported(im: IntegerModel) -> None:
    """Every op of `im` has a C kernel, and its rounding rule is one the kernels compute (fixed point), or one
    error naming what is not."""
    if im.rounding not in ROUNDINGS:
        raise KarukuError(f"the C kernels requantize in fixed point; this integer model uses rule '{im.rounding}'",
                          f"convert it with one of: {', '.join(ROUNDINGS)}")
    for op in im.ops:
        if op.kind not in SUPPORTED:
            raise KarukuError(f"the C generator has no kernel for op '{op.kind}' (layer '{op.name}')",
                              f"supported: {', '.join(SUPPORTED)}")


def _sizes(im: IntegerModel, scale: int = 1) -> tuple[list[str], dict[str, int], dict[str, list[int]]]:
    order = arena_inputs(im) + [op.output for op in im.ops]
    sizes = {v: scale * math.prod(im.values[v].shape) for v in order}
    reads: dict[str, list[int]] = {}
    for i, op in enumerate(im.ops):
        for v in op.inputs:
            reads.setdefault(v, []).append(i)
    return order, sizes, reads


def generate(im: IntegerModel, name: str) -> CProject:
    """The C project for `im`: `<name>.c/.h` (int8), `<name>_float.c` and the runtime kernels."""
    check_supported(im)
    name = c_name(name)
    order, sizes, reads = _sizes(im)
    offsets, arena = plan(order, sizes, reads)
    f_order, f_sizes, f_reads = _sizes(im, 4)
    f_offsets, f_arena = plan(f_order, f_sizes, f_reads)
    vin, vout = im.values[im.input], im.values[im.output]
    proj = CProject(name, arena_bytes=arena, float_arena_bytes=f_arena,
                    weight_bytes=sum(t.numel() * (1 if ".table" in k else t.element_size())  # tables: bytes
                                     for k, t in im.arrays.items() if not k.endswith("weight_scale")),
                    input_size=math.prod(vin.shape), output_size=sizes[im.output], input_dtype=vin.dtype,
                    output_dtype=vout.dtype, inputs=c_inputs(im) if im.several else [])
    proj.files[f"{name}.h"] = _header(im, name, proj, arena)
    proj.files[f"{name}.c"], proj.scratch_values = _int_source(im, name, offsets, arena)
    proj.files[f"{name}_float.c"] = float_source(im, name, f_offsets, f_arena, direct_conv)
    proj.files.update(runtime_files(im.rounding))
    return proj


# the parts karuku_kernels.c includes (one translation unit: the compiler inlines across them)
KERNEL_PARTS = ("kk_requant.inc", "kk_dot.inc", "kk_conv_im2col.inc", "kk_direct_blocks.inc", "kk_conv_direct.inc",
                "kk_linear_pool.inc", "kk_tokens.inc")


def runtime_files(rounding: str) -> dict[str, str]:
    """The kernel sources every project carries; the int8 kernels requantize by the model's rounding rule."""
    files = {f: _runtime(f) for f in ("karuku_kernels.h", "karuku_kernels.c", *KERNEL_PARTS, "kk_tokens.h",
                                      "karuku_float_kernels.h", "karuku_float_kernels.c")}
    if rounding == "double":
        files["karuku_kernels.c"] = "#define KK_DOUBLE_ROUNDING 1\n" + files["karuku_kernels.c"]
    return files


def kernel_order(weight: torch.Tensor) -> torch.Tensor:
    """Each output's weight row with every full group of four stored as w0, w2, w1, w3 (see karuku_kernels.h)."""
    rows = weight.reshape(weight.shape[0], -1).clone()
    k = rows.shape[1] // 4 * 4
    groups = rows[:, :k].reshape(rows.shape[0], -1, 4)
    rows[:, :k] = groups[:, :, [0, 2, 1, 3]].reshape(rows.shape[0], k)
    return rows


KERNEL_TILE = 4  # pixels whose windows the im2col kernel gathers at once (KK_TILE in karuku_kernels.c)
DIRECT_SCRATCH_BYTES = 16384
DIRECT_MAX_CHANNELS = 8  # the most int16 bytes a direct convolution's padded input copy may take


def direct_conv(c: int, h: int, w: int, kw: int, groups: int, padding) -> bool:
    """Whether a convolution takes the direct kernel (no im2col): windows at least 3 wide (a kernel row is
    padded to an even width, so narrower ones would waste SMLAD lanes), at most DIRECT_MAX_CHANNELS input
    channels per group (where gathering windows costs most per MAC; the direct kernel's int16 weights take
    twice the flash, so wider layers keep int8 weights) and a padded input copy that is small."""
    return (kw >= 3 and c // groups <= DIRECT_MAX_CHANNELS
            and 2 * (c // groups) * (h + 2 * padding[0]) * (w + 2 * padding[1] + 1) <= DIRECT_SCRATCH_BYTES)


def direct_order(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """The direct kernel's weights (see karuku_kernels.h), flat: each kernel row padded with a zero to an even
    width, two int16 weights per int32 word (the even one in the low half), kernel row before input channel, the
    words of each pair of output channels of a group interleaved; an odd last channel of a group (every channel
    of a depthwise convolution) has its words alone."""
    w = torch.nn.functional.pad(weight.to(torch.int64), (0, weight.shape[-1] % 2))
    words = w[..., 1::2] * 65536 + (w[..., 0::2] & 0xFFFF)  # OC × CG × KH × KWp/2
    ocg = w.shape[0] // groups
    parts = []
    for g in range(groups):
        for oc in range(g * ocg, (g + 1) * ocg, 2):
            if oc + 1 < (g + 1) * ocg:
                parts.append(torch.stack([words[oc], words[oc + 1]], -1).transpose(0, 1).flatten())
            else:
                parts.append(words[oc].transpose(0, 1).flatten())  # KH × CG × KWp/2
    return torch.cat(parts).to(torch.int32)


def _bytes(table: torch.Tensor) -> list[int]:
    """A table of int8 / uint8 values as the bytes the C code stores."""
    return [int(v) & 0xFF for v in table.flatten().tolist()]


def _signed(im: IntegerModel, value: str) -> str:
    return "s8" if im.values[value].dtype == "int8" else "u8"


def _int_source(im: IntegerModel, name: str, off: dict[str, int], arena: int) -> tuple[str, int]:
    decls, calls, scratch = [], [], 1
    for i, op in enumerate(im.ops):
        a, g = op.attrs, geometry(im, op)
        vin, vout = im.values[op.inputs[0]], im.values[op.output]
        y = f"A + {off[op.output]}"
        if op.kind == "gather":  # token ids straight from the caller's array
            rows = im.arrays[op.arrays["rows"]]
            decls.append(_array("uint8_t", f"op{i}_rows", _bytes(rows)))
            calls.append(f"if (kk_gather_rows({param(im, op.inputs[0])}, {math.prod(vin.shape)}L, op{i}_rows, "
                         f"{rows.shape[0]}L, {rows.shape[1]}L, {y})) return 1;")
            continue
        if op.kind == "gather_mean":  # a bag of token embeddings, from the caller's ids
            arr = {r: im.arrays[k] for r, k in op.arrays.items()}
            decls += [_array("int8_t", f"op{i}_rows", arr["rows"].flatten().tolist()),
                      _array("int32_t", f"op{i}_m0", arr["m0"].tolist()),
                      _array("int32_t", f"op{i}_shift", arr["shift"].tolist())]
            lo, hi = DTYPES[vout.dtype]
            calls.append(f"if (kk_gather_mean({param(im, op.inputs[0])}, {vin.shape[-1]}L, op{i}_rows, "
                         f"{arr['rows'].shape[0]}L, {arr['rows'].shape[1]}L, {a['pad']}, op{i}_m0, op{i}_shift, "
                         f"{vout.zero_point}, {lo}, {hi}, {y})) return 1;")
            continue
        if op.kind == "quantize":
            lo, hi = DTYPES[vout.dtype]
            calls.append(f"kk_quantize_i32({param(im, op.inputs[0])}, {g.n}L, {_float(vout.scale)}, "
                         f"{vout.zero_point}, {lo}, {hi}, {y});")
            continue
        x = f"A + {off[op.inputs[0]]}"
        s = _signed(im, op.inputs[0])
        if op.kind in ("conv2d", "linear"):
            arr = {r: im.arrays[k] for r, k in op.arrays.items()}
            direct = op.kind == "conv2d" and g.symmetric and direct_conv(g.c, g.h, g.w, g.kw, g.groups,
                                                                         a["padding"])  # asymmetric: im2col
            if direct:
                words = direct_order(arr["weight"], g.groups).flatten().tolist()
                decls.append(_array("int32_t", f"op{i}_weight", words))
            else:
                decls.append(_array("int8_t", f"op{i}_weight", kernel_order(arr["weight"]).flatten().tolist()))
            for role in ("bias", "m0", "shift"):
                decls.append(_array("int32_t", f"op{i}_{role}", arr[role].flatten().tolist()))
            params = f"op{i}_weight, op{i}_bias, op{i}_m0, op{i}_shift, {vout.zero_point}, {a['lo']}, {a['hi']}"
            if op.kind == "conv2d":
                kern = "kk_conv2d_direct" if direct else "kk_conv2d"
                calls.append(f"{kern}_{s}({x}, {vin.zero_point}, {g.c}, {g.h}, {g.w}, {params}, {y}, {g.oc}, "
                             f"{g.oh}, {g.ow}, {g.window}, {g.groups}, S);")
                scratch = max(scratch, (g.c // g.groups) * (g.h + 2 * g.ph) * (g.w + 2 * g.pw + 1) if direct
                              else KERNEL_TILE * (g.c // g.groups) * g.kh * g.kw)  # the padded input, or windows
            else:
                xr, yr = (x, y) if g.rows == 1 else (f"{x} + r * {g.k_in}", f"{y} + r * {g.k_out}")
                call = f"kk_linear_{s}({xr}, {vin.zero_point}, {g.k_in}, {params}, {yr}, {g.k_out}, S);"
                calls.append(call if g.rows == 1 else f"{{ int r; for (r = 0; r < {g.rows}; r++) {call} }}")
                scratch = max(scratch, g.k_in)
        elif op.kind == "maxpool2d":
            calls.append(f"kk_maxpool2d_{s}({x}, {g.c}, {g.h}, {g.w}, {y}, {g.oh}, {g.ow}, {g.window}, {vin.qmin});")
        elif op.kind == "avgpool2d":
            calls.append(f"kk_avgpool2d_{s}({x}, {vin.zero_point}, {g.c}, {g.h}, {g.w}, {y}, {g.oh}, {g.ow}, "
                         f"{g.window}, {a['m0']}, {a['shift']}, {vout.zero_point}, {a['lo']}, {a['hi']});")
        elif op.kind == "add":
            vb = im.values[op.inputs[1]]
            calls.append(f"kk_add({x}, {int(vin.dtype == 'int8')}, {vin.zero_point}, A + {off[op.inputs[1]]}, "
                         f"{int(vb.dtype == 'int8')}, {vb.zero_point}, {g.n}, {a['left_shift']}, {a['a_m0']}, "
                         f"{a['a_shift']}, {a['b_m0']}, {a['b_shift']}, {a['m0']}, {a['shift']}, {vout.zero_point}, "
                         f"{a['lo']}, {a['hi']}, {y});")
        elif op.kind == "clamp":
            calls.append(f"kk_clamp({x}, {int(vin.dtype == 'int8')}, {g.n}, {a['lo']}, {a['hi']}, {y});")
        elif op.kind in ("flatten", "reshape"):
            calls.append(f"memmove({y}, {x}, {g.n});")
        elif op.kind == "lut":
            decls.append(_array("uint8_t", f"op{i}_table", _bytes(im.arrays[op.arrays["table"]])))
            calls.append(f"kk_lut({x}, op{i}_table, {g.n}L, {y});")
        elif op.kind == "concat":
            parts = []
            for j, (src, rows, length, stride, at) in enumerate(concat_parts(im, op)):
                table = "NULL"
                if f"table{j}" in op.arrays:
                    decls.append(_array("uint8_t", f"op{i}_table{j}", _bytes(im.arrays[op.arrays[f"table{j}"]])))
                    table = f"op{i}_table{j}"
                parts.append(f"kk_concat_part(A + {off[src]}, {table}, {rows}L, {length}L, {stride}L, {y} + {at});")
            calls.append(" ".join(parts))
        else:  # transpose, upsample, pad
            decl, call = movement_call(im, op, i, x, y, 1)
            decls.append(decl)
            calls.append(call)
    body = "\n    ".join(f"{c}  /* {op.name} */" for c, op in zip(calls, im.ops))
    copies = copy_inputs(im, "A", off)
    return _INT_TEMPLATE.format(version=__version__, name=name, decls="".join(decls), arena=max(arena, 4),
                                scratch=scratch, params=run_params(im), copies=copies, body=body,
                                out_off=off[im.output], out_n=math.prod(im.values[im.output].shape)), scratch


def _header(im: IntegerModel, name: str, proj: CProject, arena: int) -> str:
    up, vout = name.upper(), im.values[im.output]

    def quantized(i: str) -> str:
        v = im.values[i]
        return f"{v.dtype} bytes, shape {v.shape}, real = {v.scale!r} * (q - {v.zero_point})"

    sizes, about = header_inputs(im, up, quantized)
    returns = ("Returns 0, or 1 when a token id is outside its table (the output is then not written)" if im.several
               else "Returns 0")
    return f"""/* generated by karuku {__version__}: integer-only {name}; do not edit */
#ifndef KARUKU_{up}_H
#define KARUKU_{up}_H
#include <stdint.h>

{sizes}#define KARUKU_{up}_OUTPUT_SIZE {proj.output_size}
#define KARUKU_{up}_ARENA_BYTES {arena}
{about}/* Output: {vout.dtype} bytes, shape {vout.shape}, real = {vout.scale!r} * (q - {vout.zero_point}).
 * uint8 values travel through the int8_t pointers as their bytes. {returns}. */
int karuku_{name}_run({run_params(im)}, int8_t *out);

/* The same graph in single-precision float (weights dequantized), for comparison builds. */
int karuku_{name}_run_float({run_params(im, True)}, float *out);
#endif
"""


_INT_TEMPLATE = """/* generated by karuku {version}: integer-only {name}; do not edit */
#include <stddef.h>
#include <string.h>
#include "karuku_kernels.h"
#include "{name}.h"

{decls}
static uint8_t karuku_arena[{arena}];
static int16_t karuku_scratch[{scratch}]; /* a padded input, a tile of windows or the input vector as int16 (x - zx) */

int karuku_{name}_run({params}, int8_t *out) {{
    uint8_t *const A = karuku_arena;
    int16_t *const S = karuku_scratch;
    (void)S; /* unused when the model has no convolution or linear layer */
    {copies}
    {body}
    memcpy(out, A + {out_off}, {out_n});
    return 0;
}}
"""
