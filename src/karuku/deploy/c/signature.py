"""The C run functions' inputs: one `in` for a model of one float input, else one pointer per input in forward's
order (token ids as int32, quantized inputs as int8 bytes, floats in the float build); what the arena holds."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from karuku.quant.engine.graph import INTEGER_INPUT, IntegerModel


def c_name(name: str) -> str:
    """A C identifier made from a layer or model name."""
    ident = re.sub(r"[^0-9A-Za-z_]", "_", name)
    return ident if ident and not ident[0].isdigit() else f"m_{ident}"


def arena_inputs(im: IntegerModel) -> list[str]:
    """The inputs copied into the arena: the quantized ones (token ids are read where the caller keeps them)."""
    return [i for i in im.inputs if im.values[i].dtype != INTEGER_INPUT]


def c_inputs(im: IntegerModel, float_build: bool = False) -> list[tuple[str, str, int]]:
    """(C parameter `in_<name>`, element type, count) of each input in forward's order: token ids int32, the
    others int8 bytes (float in the float build)."""
    quantized = "float" if float_build else "int8_t"
    return [(f"in_{c_name(i)}", "int32_t" if im.values[i].dtype == INTEGER_INPUT else quantized,
             math.prod(im.values[i].shape)) for i in im.inputs]


def run_params(im: IntegerModel, float_build: bool = False) -> str:
    """The run function's input parameters: `in` for one float input, else one pointer per input."""
    if not im.several:
        return f"const {'float' if float_build else 'int8_t'} *in"
    return ", ".join(f"const {t} *{n}" for n, t, _ in c_inputs(im, float_build))


def param(im: IntegerModel, value: str) -> str:
    """The run function's parameter that holds input `value`."""
    return f"in_{c_name(value)}" if im.several else "in"


def integer_use(im: IntegerModel, value: str) -> str:
    """What an integer input holds, from the ops that read it: token ids (their table's size) or plain numbers."""
    vocab = [im.arrays[o.arrays["rows"]].shape[0] for o in im.ops
             if o.kind in ("gather", "gather_mean") and value in o.inputs]
    if vocab:
        return f"token ids, each in 0 .. {min(vocab) - 1}"
    return "integers (a mask, counts) taken as numbers and quantized inside"


def header_inputs(im: IntegerModel, up: str, quantized: Callable[[str], str]) -> tuple[str, str]:
    """(the input-size #defines, the input comments) of a generated header; `quantized(value)` describes a
    quantized input's bytes (layout, scale and zero point), which the two C back-ends store differently."""
    if not im.several:
        return (f"#define KARUKU_{up}_INPUT_SIZE {math.prod(im.values[im.input].shape)}\n",
                f"/* Input: {quantized(im.input)}. */\n")
    sizes = "".join(f"#define KARUKU_{up}_INPUT_{c_name(i).upper()}_SIZE {n}\n"
                    for i, (_, _, n) in zip(im.inputs, c_inputs(im)))
    about = "".join(f"/* Input {c}: {n} int32, shape {im.values[i].shape}: {integer_use(im, i)}. */\n"
                    if t == "int32_t" else f"/* Input {c}: {quantized(i)}. */\n"
                    for i, (c, t, n) in zip(im.inputs, c_inputs(im)))
    return sizes, about


def copy_inputs(im: IntegerModel, arena: str, off: dict[str, int], elem: int = 1) -> str:
    """The run function's first statements: each quantized input copied into the arena (`arena` + `off`, in
    elements of `elem` bytes), and `(void)in_<name>;` for an input no op reads (a mask the model ignores), so
    -Wunused-parameter stays quiet."""
    read = {i for o in im.ops for i in o.inputs}
    unused = "".join(f"(void){param(im, i)}; " for i in im.inputs if im.several and i not in read)
    return unused + "\n    ".join(f"memcpy({arena} + {off[i] // elem}, {param(im, i)}, "
                                  f"{elem * math.prod(im.values[i].shape)});" for i in arena_inputs(im))
