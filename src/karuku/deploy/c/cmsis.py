"""The generated C project on Arm's CMSIS-NN kernels instead of karuku's (`--kernels cmsis-nn --cmsis-nn DIR`).

CMSIS-NN's int8 kernels are TFLite's: NHWC activations, int8 values with zero points, per-channel multipliers
with TFLite's shift convention (left-positive), and the same requantization rules as the integer engine
(gemmlowp's two roundings by default; one rounding, ties up, when built with CMSIS_NN_USE_SINGLE_ROUNDING,
which the project defines for "single" models). So the project's input and output are the .tflite's: int8
(an engine uint8 value q is stored as q − 128) in NHWC order. Convolutions, depthwise convolutions, linear
layers, residual adds and max pools call CMSIS-NN; the global average pool, standalone clamps and a flatten
that must reorder take small loops in `karuku_cmsis.c`. The user supplies CMSIS-NN (nothing of it is copied
into the project); `library(dir)` lists the sources to compile with it.
"""

from __future__ import annotations

import math
import os
from importlib import resources
from pathlib import Path

import numpy as np

from karuku import __version__
from karuku.deploy.c.arena import plan
from karuku.deploy.c.codegen import CProject, _array, c_name
from karuku.deploy.c.toolchain import Library
from karuku.deploy.tflite.lower import offset
from karuku.errors import KarukuError
from karuku.quant.engine.graph import IntegerModel, Op

SUPPORTED = ("conv2d", "linear", "maxpool2d", "avgpool2d", "add", "flatten", "clamp")
FOLDERS = ("ConvolutionFunctions", "FullyConnectedFunctions", "NNSupportFunctions", "BasicMathFunctions",
           "PoolingFunctions")
INT8 = ("s8", "q7")  # the int8 kernels and their helpers are all a model needs


def check_cmsis_nn(folder: str | os.PathLike) -> Path:
    """The CMSIS-NN source folder, or one error saying what is missing."""
    root = Path(folder)
    for need in ("Include/arm_nnfunctions.h", "Source/ConvolutionFunctions/arm_convolve_wrapper_s8.c",
                 "Source/FullyConnectedFunctions/arm_fully_connected_per_channel_s8.c"):
        if not (root / need).is_file():
            raise KarukuError(f"--cmsis-nn {root} is not CMSIS-NN ({need} is missing)",
                              "give the folder of a CMSIS-NN checkout (Include/ and Source/ of ARM-software/CMSIS-NN)")
    return root


def library(folder: str | os.PathLike, rounding: str) -> Library:
    """CMSIS-NN's int8 sources, built with the model's requantization rule."""
    root = check_cmsis_nn(folder)
    sources = sorted(p for d in FOLDERS for p in (root / "Source" / d).glob("*.c")
                     if any(s in p.name for s in INT8))
    defines = ("CMSIS_NN_USE_SINGLE_ROUNDING",) if rounding == "single" else ()
    return Library("cmsisnn", tuple(sources), (root / "Include",), defines)


def _runtime(filename: str) -> str:
    return resources.files("karuku.deploy.c").joinpath("runtime").joinpath(filename).read_text()


class _Gen:
    def __init__(self, im: IntegerModel, name: str):
        self.im, self.name = im, name
        self.decls: list[str] = []
        self.calls: list[str] = []
        self.buffer = 4  # bytes of the kernels' scratch buffer (im2col columns)
        self.perm: dict[str, np.ndarray] = {}
        self.consumers: dict[str, list[Op]] = {}
        for op in im.ops:
            for v in op.inputs:
                self.consumers.setdefault(v, []).append(op)

    def zp(self, v: str) -> int:
        val = self.im.values[v]
        return val.zero_point - offset(val)

    def arrays(self, i: int, op: Op, weight: np.ndarray) -> None:
        arr = {r: self.im.arrays[k] for r, k in op.arrays.items()}
        self.decls += [_array("int8_t", f"op{i}_weight", weight.reshape(-1).tolist()),
                       _array("int32_t", f"op{i}_bias", arr["bias"].tolist()),
                       _array("int32_t", f"op{i}_mult", arr["m0"].tolist()),
                       _array("int32_t", f"op{i}_shift", (-arr["shift"]).tolist())]  # TFLite's exponent

    @staticmethod
    def dims(n=1, h=1, w=1, c=1) -> str:
        return f"{{{n}, {h}, {w}, {c}}}"

    def act(self, op: Op) -> str:
        vout = self.im.values[op.output]
        return f"{{{op.attrs['lo'] - offset(vout)}, {op.attrs['hi'] - offset(vout)}}}"

    def conv2d(self, i: int, op: Op, x: str, y: str) -> str:
        a, vin, vout = op.attrs, self.im.values[op.inputs[0]], self.im.values[op.output]
        w = self.im.arrays[op.arrays["weight"]].numpy()
        (c, h, wd), (oc, oh, ow), kh, kw = vin.shape, vout.shape, w.shape[2], w.shape[3]
        quant = f"{{(int32_t *)op{i}_mult, (int32_t *)op{i}_shift}}"
        tile = lambda v: f"{{{v[1]}, {v[0]}}}"  # noqa: E731 (cmsis_nn_tile is {w, h})
        common = (f"static const cmsis_nn_per_channel_quant_params q = {quant}; "
                  f"static const cmsis_nn_dims id = {self.dims(1, h, wd, c)}, bd = {self.dims(c=oc)}, "
                  f"od = {self.dims(1, oh, ow, oc)}")
        if a["groups"] == 1:
            self.arrays(i, op, w.transpose(0, 2, 3, 1))  # OHWI
            self.buffer = max(self.buffer, 2 * 2 * (-(-(kh * kw * c) // 4) * 4))
            return (f"{{ static const cmsis_nn_conv_params p = {{{-self.zp(op.inputs[0])}, {self.zp(op.output)}, "
                    f"{tile(a['stride'])}, {tile(a['padding'])}, {{1, 1}}, {self.act(op)}}}; {common}, "
                    f"fd = {self.dims(oc, kh, kw, c)};\n      "
                    f"st |= arm_convolve_wrapper_s8(&ctx, &p, &q, &id, {x}, &fd, op{i}_weight, &bd, op{i}_bias, "
                    f"&od, {y}); }}")
        if a["groups"] == c and oc % c == 0:
            self.arrays(i, op, w.transpose(1, 2, 3, 0))  # 1HWO
            self.buffer = max(self.buffer, 2 * c * kh * kw)
            return (f"{{ static const cmsis_nn_dw_conv_params p = {{{-self.zp(op.inputs[0])}, {self.zp(op.output)}, "
                    f"{oc // c}, {tile(a['stride'])}, {tile(a['padding'])}, {{1, 1}}, {self.act(op)}}}; {common}, "
                    f"fd = {self.dims(1, kh, kw, oc)};\n      "
                    f"st |= arm_depthwise_conv_wrapper_s8(&ctx, &p, &q, &id, {x}, &fd, op{i}_weight, &bd, "
                    f"op{i}_bias, &od, {y}); }}")
        raise KarukuError(f"the CMSIS-NN back-end has no kernel for a convolution with {a['groups']} groups "
                          f"(layer '{op.name}')", "use groups 1 or one group per input channel, or --kernels karuku")

    def linear(self, i: int, op: Op, x: str, y: str) -> str:
        w = self.im.arrays[op.arrays["weight"]].numpy()
        if op.inputs[0] in self.perm:  # reading a flatten in NHWC order: permute the columns to match
            w = w[:, self.perm[op.inputs[0]]]
        self.arrays(i, op, w)
        k, n = w.shape[1], w.shape[0]
        return (f"{{ static const cmsis_nn_fc_params p = {{{-self.zp(op.inputs[0])}, 0, {self.zp(op.output)}, "
                f"{self.act(op)}}}; static const cmsis_nn_per_channel_quant_params q = "
                f"{{(int32_t *)op{i}_mult, (int32_t *)op{i}_shift}}; static const cmsis_nn_dims "
                f"id = {self.dims(c=k)}, fd = {self.dims(n=k, c=n)}, bd = {self.dims(c=n)}, od = {self.dims(c=n)};\n"
                f"      st |= arm_fully_connected_per_channel_s8(&ctx, &p, &q, &id, {x}, &fd, op{i}_weight, &bd, "
                f"op{i}_bias, &od, {y}); }}")

    def maxpool2d(self, op: Op, x: str, y: str) -> str:
        a, vin, vout = op.attrs, self.im.values[op.inputs[0]], self.im.values[op.output]
        (c, h, w), (_, oh, ow) = vin.shape, vout.shape
        return (f"{{ static const cmsis_nn_pool_params p = {{{{{a['stride'][1]}, {a['stride'][0]}}}, "
                f"{{{a['padding'][1]}, {a['padding'][0]}}}, {{-128, 127}}}}; static const cmsis_nn_dims "
                f"id = {self.dims(1, h, w, c)}, fd = {self.dims(1, a['kernel'][0], a['kernel'][1], 1)}, "
                f"od = {self.dims(1, oh, ow, c)};\n      st |= arm_max_pool_s8(&ctx, &p, &id, {x}, &fd, &od, {y}); }}")

    def avgpool2d(self, op: Op, x: str, y: str) -> str:
        a, vin = op.attrs, self.im.values[op.inputs[0]]
        if list(a["kernel"]) != list(vin.shape[1:]) or list(a["stride"]) != list(vin.shape[1:]):
            raise KarukuError(f"the CMSIS-NN back-end has no kernel for an average pool over part of the input "
                              f"(layer '{op.name}')", "use global average pooling, or --kernels karuku")
        c, h, w = vin.shape
        return (f"kc_mean_s8({x}, {h * w}, {c}, {self.zp(op.inputs[0])}, {a['m0']}, {-a['shift']}, "
                f"{self.zp(op.output)}, {y});")

    def add(self, op: Op, x: str, y: str) -> str:
        a, n = op.attrs, math.prod(self.im.values[op.output].shape)
        vout = self.im.values[op.output]
        return (f"st |= arm_elementwise_add_s8({x}, A + {self.off[op.inputs[1]]}, {-self.zp(op.inputs[0])}, "
                f"{a['a_m0']}, {-a['a_shift']}, {-self.zp(op.inputs[1])}, {a['b_m0']}, {-a['b_shift']}, "
                f"{a['left_shift']}, {y}, {self.zp(op.output)}, {a['m0']}, {-a['shift']}, "
                f"{a['lo'] - offset(vout)}, {a['hi'] - offset(vout)}, {n});")

    def flatten(self, op: Op, x: str, y: str) -> str:
        vin = self.im.values[op.inputs[0]]
        n = math.prod(vin.shape)
        if len(vin.shape) == 3 and vin.shape[0] > 1 and vin.shape[1] * vin.shape[2] > 1:
            c, h, w = vin.shape
            if all(o.kind == "linear" for o in self.consumers.get(op.output, [])) and op.output != self.im.output:
                self.perm[op.output] = np.arange(n).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)
            else:
                return f"kc_nhwc_to_nchw({x}, {h}, {w}, {c}, {y});"
        elif op.inputs[0] in self.perm:
            self.perm[op.output] = self.perm[op.inputs[0]]
        return f"memmove({y}, {x}, {n});"

    def source(self) -> tuple[str, int]:
        im = self.im
        order = [im.input] + [op.output for op in im.ops]
        sizes = {v: math.prod(im.values[v].shape) for v in order}
        reads: dict[str, list[int]] = {}
        for i, op in enumerate(im.ops):
            for v in op.inputs:
                reads.setdefault(v, []).append(i)
        self.off, arena = plan(order, sizes, reads)
        for i, op in enumerate(im.ops):
            if op.kind not in SUPPORTED:
                raise KarukuError(f"the CMSIS-NN back-end has no kernel for op '{op.kind}' (layer '{op.name}')",
                                  f"supported: {', '.join(SUPPORTED)}; or --kernels karuku")
            x, y = f"A + {self.off[op.inputs[0]]}", f"A + {self.off[op.output]}"
            if op.kind == "clamp":
                vout = im.values[op.output]
                call = (f"kc_clamp_s8({x}, {sizes[op.output]}, {op.attrs['lo'] - offset(vout)}, "
                        f"{op.attrs['hi'] - offset(vout)}, {y});")
                if op.inputs[0] in self.perm:
                    self.perm[op.output] = self.perm[op.inputs[0]]
            elif op.kind in ("conv2d", "linear"):
                call = getattr(self, op.kind)(i, op, x, y)
            else:
                call = getattr(self, op.kind)(op, x, y)
            self.calls.append(f"/* {op.name} */\n    {call}")
        body = "\n    ".join(self.calls)
        n_in, n_out = sizes[im.input], sizes[im.output]
        return f"""/* generated by karuku {__version__}: {self.name} on CMSIS-NN kernels (int8, NHWC); do not edit */
#include <string.h>
#include "arm_nnfunctions.h"
#include "karuku_cmsis.h"
#include "{self.name}.h"

{"".join(self.decls)}
static int8_t karuku_arena[{max(arena, 4)}];
static int16_t karuku_buffer[{self.buffer // 2}]; /* the kernels' im2col columns */

int karuku_{self.name}_run(const int8_t *in, int8_t *out) {{
    int8_t *const A = karuku_arena;
    cmsis_nn_context ctx = {{karuku_buffer, (int32_t)sizeof karuku_buffer}};
    int st = 0;
    memcpy(A + {self.off[im.input]}, in, {n_in});
    {body}
    memcpy(out, A + {self.off[im.output]}, {n_out});
    return st;
}}
""", arena


def generate_cmsis(im: IntegerModel, name: str, cmsis_nn: str | os.PathLike) -> CProject:
    """The C project for `im` on CMSIS-NN: `<name>.c/.h`, `karuku_cmsis.c/.h`; links CMSIS-NN from `cmsis_nn`."""
    lib = library(cmsis_nn, im.rounding)
    name = c_name(name)
    gen = _Gen(im, name)
    src, arena = gen.source()
    vin, vout = im.values[im.input], im.values[im.output]
    proj = CProject(name, arena_bytes=arena, weight_bytes=sum(t.numel() * t.element_size() for k, t in
                                                              im.arrays.items() if not k.endswith("weight_scale")),
                    input_size=math.prod(vin.shape), output_size=math.prod(vout.shape), input_dtype="int8",
                    output_dtype="int8", scratch_values=gen.buffer // 2, kernel_sources=("karuku_cmsis.c",),
                    library=lib)
    up = name.upper()
    shape = lambda v: [v.shape[1], v.shape[2], v.shape[0]] if len(v.shape) == 3 else v.shape  # noqa: E731
    proj.files[f"{name}.h"] = f"""/* generated by karuku {__version__}: {name} on CMSIS-NN kernels; do not edit */
#ifndef KARUKU_{up}_H
#define KARUKU_{up}_H
#include <stdint.h>

#define KARUKU_{up}_INPUT_SIZE {proj.input_size}
#define KARUKU_{up}_OUTPUT_SIZE {proj.output_size}
#define KARUKU_{up}_ARENA_BYTES {arena}
/* Input: int8, NHWC {shape(vin)}, real = {vin.scale!r} * (q - {vin.zero_point - offset(vin)}).
 * Output: int8, NHWC {shape(vout)}, real = {vout.scale!r} * (q - {vout.zero_point - offset(vout)}).
 * Returns 0, or a CMSIS-NN error code (a kernel refused its arguments). */
int karuku_{name}_run(const int8_t *in, int8_t *out);
#endif
"""
    proj.files[f"{name}.c"] = src
    proj.files["karuku_cmsis.h"] = _runtime("karuku_cmsis.h")
    proj.files["karuku_cmsis.c"] = _runtime("karuku_cmsis.c")
    return proj


GUIDE = """# {name}: generated by karuku, on CMSIS-NN kernels

Files: `{name}.c` / `{name}.h` (the model: const weights for flash, one static arena of {arena} bytes and
{buffer} bytes of kernel scratch, no malloc), `karuku_cmsis.c` / `.h` (the few loops CMSIS-NN has no kernel
for). CMSIS-NN itself is not included: compile its int8 sources (Source/*/ files with s8 or q7 in the name)
with `-I CMSIS-NN/Include`{define}, e.g.

    gcc -std=c99 -O2 -I CMSIS-NN/Include{define} -c {name}.c karuku_cmsis.c CMSIS-NN/Source/*/*s8*.c

Call `karuku_{name}_run(in, out)`: `in` holds {isize} int8 values in NHWC order (quantize with scale
{iscale!r}, zero point {izp}); `out` receives {osize} int8 values (real = {oscale!r} × (q − {ozp})).
The same bytes a .tflite export computes (docs/EDGE.md).
"""


def cmsis_check(im: IntegerModel, proj: CProject, inputs, folder: Path) -> int:
    """Build on the host with CMSIS-NN, run, compare every byte with the integer engine (in int8 NHWC)."""
    from karuku.deploy.c import toolchain
    from karuku.deploy.tflite.verify import expected, to_tflite

    build = toolchain.build_host(proj, folder)
    q = im.quantize_input(inputs)
    out, _ = toolchain.run(build, to_tflite(im, q).view(np.uint8))
    ref = expected(im, q).view(np.uint8)
    if not np.array_equal(out, ref):
        bad = int((out != ref).any(1).sum())
        raise KarukuError(f"the CMSIS-NN project differs from the integer engine on {bad} of {len(q)} inputs",
                          "this is a karuku bug; please report it with the model and the CMSIS-NN version")
    return len(q)


def readme(proj: CProject, im: IntegerModel) -> str:
    """The project's README.md: its files, how to build it with CMSIS-NN, its input and output."""
    vin, vout = im.values[im.input], im.values[im.output]
    define = " -DCMSIS_NN_USE_SINGLE_ROUNDING" if im.rounding == "single" else ""
    return GUIDE.format(name=proj.name, arena=proj.arena_bytes, buffer=2 * proj.scratch_values, define=define,
                        isize=proj.input_size, iscale=vin.scale, izp=vin.zero_point - offset(vin),
                        osize=proj.output_size, oscale=vout.scale, ozp=vout.zero_point - offset(vout))
