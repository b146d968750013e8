"""C source literals shared by the integer and the float generators: const arrays and float32 numbers."""

from __future__ import annotations

import math

from karuku.errors import KarukuError


def c_array(ctype: str, ident: str, values, per_line: int = 24) -> str:
    """`static const <ctype> <ident>[n] = {...};` with `per_line` values a line."""
    flat = [str(int(v)) if ctype != "float" else c_float(v) for v in values]
    lines = [", ".join(flat[i:i + per_line]) for i in range(0, len(flat), per_line)]
    return f"static const {ctype} {ident}[{len(flat)}] = {{\n    " + ",\n    ".join(lines) + "\n};\n"


def c_float(v: float) -> str:
    """A C float literal that round-trips float32 (9 significant digits)."""
    if not math.isfinite(v):
        raise KarukuError(f"non-finite value {v} in a float build", "recalibrate the model")
    text = f"{float(v):.9g}"
    return (text if any(c in text for c in ".e") else text + ".0") + "f"
