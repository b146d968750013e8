"""Does ONNX Runtime on this CPU compute what the integer engine computes? If not: where, by how much, and why.

`check` runs an int8 ONNX file's twin on inputs and compares top-1 with the engine computing ONNX Runtime's
requantization rule ("onnxruntime", karuku.quant.ort_requant: float32 multipliers, ties to even): the same
integers, the same accumulators, and the rounding the file's runtime applies, so on a CPU whose kernels are
exact every value agrees. (The engine's fixed-point rules differ from float32 on about two outputs in a
million by one step, which deep networks amplify: EfficientNet-Lite0 agreed on 96.3 % of top-1 that way.)
On a miss, `explain` runs the file again with every quantized value as an output and walks the engine's ops in
order: the first value away from the engine is where ONNX Runtime departs. For a conv / linear there, the
likely cause is tested rather than guessed: the pair-saturating multiply of x86 CPUs without VNNI
(karuku.quant.representation.pair_saturating_dot) is applied to ONNX Runtime's own input of that layer; if it
reproduces ONNX Runtime's output, that is the cause.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from karuku.cpu import detect
from karuku.errors import KarukuError
from karuku.quant import ort_requant
from karuku.quant.engine import IntegerModel
from karuku.quant.engine.graph import ONNXRUNTIME
from karuku.quant.engine.ops import pads4
from karuku.quant.representation import exact_on, pair_saturating_dot

THRESHOLD = 0.999  # top-1 agreement an int8 file must reach


@dataclass
class Departure:
    """The first value where ONNX Runtime and the engine part ways."""

    value: str
    kind: str
    max_steps: int
    fraction: float  # of its elements that differ at all
    saturation_match: float | None = None  # conv / linear: how much of ORT's output the saturating model explains

    def line(self) -> str:
        return (f"first departs at '{self.value}' ({self.kind}): up to {self.max_steps} steps, "
                f"{100 * self.fraction:.2f} % of its values differ")


@dataclass
class Parity:
    """The outcome of one parity check (JSON-able with `as_dict`)."""

    inputs: int
    agreement: float
    max_steps: int  # over the output integers
    representation: str  # what the file stores
    checked_as: str  # what ran here (an exact twin when the file's representation is not exact on this CPU)
    cpu_target: str
    departure: Departure | None = None
    cause: str | None = None

    @property
    def ok(self) -> bool:
        return self.agreement >= THRESHOLD

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        s = (f"top-1 agreement with the integer engine on {self.inputs} inputs: {100 * self.agreement:.2f} % "
             f"(outputs at most {self.max_steps} step{'s' if self.max_steps != 1 else ''} apart)")
        if self.checked_as != self.representation:
            s += f" (checked as {self.checked_as}: this CPU's u8 x s8 kernels saturate)"
        if self.departure is not None:
            s += f"; {self.departure.line()}"
        if self.cause:
            s += f"; likely cause: {self.cause}"
        return s


def _session(raw: bytes, threads: int | None):
    from karuku.measure.onnx_runtime import session

    return session(raw, threads)


def as_onnxruntime(im: IntegerModel) -> IntegerModel:
    """The engine computing what ONNX Runtime computes for the int8 ONNX file of `im` (same integers)."""
    return replace(im, rounding=ONNXRUNTIME)


def check(im: IntegerModel, representation: str, inputs: torch.Tensor, threads: int | None = None,
          explain_misses: bool = True) -> tuple[Parity, bytes]:
    """Run the file `representation` stands for on this CPU (or its exact u8u8 twin where the representation is
    not exact here) on `inputs`; returns the parity and the ONNX bytes checked."""
    from karuku.quant.onnx_export import export_qdq

    here = detect().target
    checked_as = representation if exact_on(representation, here) else "u8u8"
    raw = export_qdq(im, representation=checked_as)
    im = as_onnxruntime(im)
    n = im.n_examples(inputs)
    ref = torch.cat([im.run_int(im.quantize_input(im.slice_inputs(inputs, i, i + 256)), fast=True)
                     for i in range(0, n, 256)])
    sess = _session(raw, threads)
    got = sess.run(None, _feeds(im, inputs))[0]
    out = im.values[im.output]
    got_q = np.rint(got / out.scale).astype(np.int64) + out.zero_point
    agree = float(np.mean(ref.numpy().argmax(1) == got_q.argmax(1)))
    steps = int(np.abs(got_q - ref.numpy()).max(initial=0))
    p = Parity(n, agree, steps, representation, checked_as, here)
    if not p.ok and explain_misses:
        p.departure, p.cause = explain(im, checked_as, im.slice_inputs(inputs, 0, 256), threads)
    return p, raw


def _feeds(im: IntegerModel, inputs) -> dict[str, np.ndarray]:
    """The int8 file's inputs by name (karuku.quant.onnx_export.input_names)."""
    from karuku.quant.onnx_export import input_names

    return {name: t.numpy() for name, t in zip(input_names(im), im.split_inputs(inputs))}


def _stored(im: IntegerModel, name: str, t: torch.Tensor) -> np.ndarray:
    """Engine integers as the ONNX file stores them (uint8: int8 values move up by 128)."""
    return t.numpy().astype(np.int64) + (128 if im.values[name].dtype == "int8" else 0)


def explain(im: IntegerModel, representation: str, inputs: torch.Tensor, threads: int | None = None
            ) -> tuple[Departure | None, str]:
    """Where ONNX Runtime first departs from the engine on `inputs`, and the likely cause."""
    return locate(im, representation, inputs, debug_values(im, representation, inputs, threads))


def debug_values(im: IntegerModel, representation: str, inputs: torch.Tensor, threads: int | None = None
                 ) -> dict[str, np.ndarray]:
    """Every quantized value ONNX Runtime computes for `inputs` (`q:<name>` → stored integers)."""
    from karuku.quant.onnx_export import export_qdq

    sess = _session(export_qdq(im, representation=representation, debug_outputs=True), threads)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, _feeds(im, inputs))))


def locate(im: IntegerModel, representation: str, inputs: torch.Tensor, ort: dict[str, np.ndarray]
           ) -> tuple[Departure | None, str]:
    """The first engine value (computing ONNX Runtime's rule) that ONNX Runtime's values `ort` (from
    `debug_values`) miss by more than a step — else by one —, with the cause tested (pure: ONNX Runtime may
    have run elsewhere, e.g. on an emulated CPU)."""
    im = as_onnxruntime(im)
    eng = im.run_all(im.quantize_input(inputs), fast=True)
    diffs = [(op, np.abs(ort[f"q:{op.output}"].astype(np.int64) - _stored(im, op.output, eng[op.output])))
             for op in im.ops if f"q:{op.output}" in ort]
    for least in (2, 1):
        for op, diff in diffs:
            if diff.max(initial=0) < least:
                continue
            d = Departure(op.output, op.kind, int(diff.max()), float(np.mean(diff > 0)))
            if op.kind in ("conv2d", "linear") and f"q:{op.inputs[0]}" in ort:
                n = 32  # enough to test the cause, and the NumPy model stays quick
                d.saturation_match = _saturation_match(im, op, ort[f"q:{op.inputs[0]}"][:n],
                                                       ort[f"q:{op.output}"][:n])
            return d, _cause(d, representation)
    return None, "every value ONNX Runtime computes equals the engine's: the outputs differ after the last op"


def _cause(d: Departure, representation: str) -> str:
    if d.saturation_match is not None and d.saturation_match >= 0.99:
        return (f"ONNX Runtime's u8 x s8 kernels on this CPU add pairs of products in saturating int16 (the "
                f"pair-saturating model reproduces {100 * d.saturation_match:.1f} % of '{d.value}'); the "
                f"{representation} file is not exact here: export with --target-isa portable (or avx2)")
    if d.kind == "lut":
        return (f"ONNX Runtime builds its own table for '{d.value}' from its own float function; a value on a "
                "rounding tie can land one step apart")
    return (f"ONNX Runtime computes '{d.value}' differently from the engine's model of its kernels (not int16 "
            "pair saturation; another ONNX Runtime version or CPU kernel?); report it with `karuku --debug`")


def _saturation_match(im: IntegerModel, op, x_stored: np.ndarray, y_ort: np.ndarray) -> float:
    """Fraction of ONNX Runtime's output of `op` within one step of the engine's arithmetic with x86's
    pair-saturating multiply applied to ONNX Runtime's own stored input."""
    vin, vout = im.values[op.inputs[0]], im.values[op.output]
    off_in = 128 if vin.dtype == "int8" else 0
    zx = vin.zero_point + off_in
    w = im.arrays[op.arrays["weight"]].numpy().astype(np.int64)
    x = x_stored.astype(np.int64)
    if op.kind == "linear":
        acc = pair_saturating_dot(x, w) - zx * w.sum(1)
    else:
        acc = _conv_saturating(x, w, zx, op.attrs)
        if acc is None:
            return 0.0
    a = im.arrays
    shape = (1, -1) if op.kind == "linear" else (1, -1, 1, 1)
    acc_t = torch.from_numpy(acc).to(torch.int64) + a[op.arrays["bias"]].to(torch.int64).reshape(shape)
    acc_t = acc_t.clamp(-(1 << 31), (1 << 31) - 1).to(torch.int32)
    m = ort_requant.multiplier(vin.scale, a[op.arrays["weight_scale"]], vout.scale).reshape(shape)
    y = ort_requant.requantize(acc_t, m, vout.zero_point, op.attrs["lo"], op.attrs["hi"])
    y = y.numpy().astype(np.int64) + (128 if vout.dtype == "int8" else 0)
    return float(np.mean(np.abs(y - y_ort.astype(np.int64)) <= 1))


def _conv_saturating(x: np.ndarray, w: np.ndarray, zx: int, attrs: dict) -> np.ndarray | None:
    """Grouped conv through an NHWC im2col (kernel row, column, then channel: ONNX Runtime's order), padded with
    the raw zero point, multiplied pair-saturating; minus zx · Σw. None for depthwise (another kernel)."""
    n, c, h, wd = x.shape
    cout, cg, kh, kw = w.shape
    groups = attrs["groups"]
    if cg == 1 and groups == c and groups > 1:
        return None
    (sh, sw), (top, left, bottom, right) = attrs["stride"], pads4(attrs["padding"])
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=zx)
    oh, ow = (h + top + bottom - kh) // sh + 1, (wd + left + right - kw) // sw + 1
    out = np.empty((n, cout, oh, ow), np.int64)
    per = cout // groups
    for g in range(groups):
        xg = xp[:, g * cg:(g + 1) * cg].transpose(0, 2, 3, 1)  # N, H, W, Cg
        cols = np.stack([xg[:, i:i + sh * oh:sh, j:j + sw * ow:sw, :] for i in range(kh) for j in range(kw)], 3)
        cols = cols.reshape(n, oh, ow, kh * kw * cg)
        wg = w[g * per:(g + 1) * per].transpose(0, 2, 3, 1).reshape(per, -1)
        acc = pair_saturating_dot(cols, wg) - zx * wg.sum(1)
        out[:, g * per:(g + 1) * per] = acc.transpose(0, 3, 1, 2)
    return out


def require(p: Parity, what: str = "int8 ONNX") -> None:
    """A one-line KarukuError for a parity miss (names the layer and the cause)."""
    if not p.ok:
        raise ParityError(p, f"{what} agrees with the integer engine on only {100 * p.agreement:.2f} % of top-1 "
                             f"(< {100 * THRESHOLD:.1f} %); " + "; ".join(
                                 x for x in (p.departure.line() if p.departure else None, p.cause) if x))


class ParityError(KarukuError):
    """A parity miss; `.parity` has the figures (the compression loop falls back on it)."""

    def __init__(self, parity: Parity, message: str):
        super().__init__(message)
        self.parity = parity
