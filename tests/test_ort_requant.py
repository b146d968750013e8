"""The engine's "onnxruntime" rule is what ONNX Runtime computes, bit for bit (karuku.quant.ort_requant).

One-op integer models written by hand (so the scales can be chosen to hit what breaks a fixed-point rule:
multipliers that put accumulators exactly on halves, accumulators beyond 2^24 whose float32 rounds, scales
that are not powers of two), exported as QDQ ONNX and run in ONNX Runtime: every output equals the engine's
under rule "onnxruntime". On the same files the fixed-point rule "single" is one step off somewhere — the
cause of EfficientNet-Lite0's int8 ONNX agreeing with the engine on only 96.3 % of top-1 before this rule.
Then a tiny EfficientNet-like model (BatchNorm folded into a depthwise conv with a large gain, a channel
nearly switched off, a residual add, pooling) agrees with ONNX Runtime on every value and passes the
export's parity check with 0 steps. u8u8 / u8s7 are exact on every x86 CPU (AVX2 and newer), so these hold
on any of them; tests/test_isa_emulated.py repeats the one-op check on an emulated AVX2-only CPU.
"""

import platform
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from helpers.ort_cases import folded_block, multipliers, one_conv
from karuku.deploy.parity import check, debug_values
from karuku.measure.onnx_runtime import session
from karuku.quant.engine.graph import IntegerModel, Op, Value
from karuku.quant.onnx_export import export_qdq
from karuku.quant.ort_requant import fma32
from karuku.quant.primitives import quantize_multiplier

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="the rule is ONNX Runtime's x86 kernels'; its Arm kernels add in fixed point")


def _ort_ints(im: IntegerModel, q: torch.Tensor, representation: str = "u8s7") -> np.ndarray:
    """ONNX Runtime's output integers for engine integers `q` (fed as the floats they stand for)."""
    vin, vout = im.values[im.input], im.values[im.output]
    x = ((q.float() - vin.zero_point) * vin.scale).numpy()
    got = session(export_qdq(im, representation=representation), 1).run(None, {"input": x})[0]
    return np.rint(got / np.float32(vout.scale)).astype(np.int64) + vout.zero_point


def _engine(im: IntegerModel, q: torch.Tensor, rule: str) -> np.ndarray:
    return replace(im, rounding=rule).run_int(q, fast=True).numpy().astype(np.int64)


def test_conv_and_depthwise_requantize_as_onnx_runtime_does():
    rng = np.random.default_rng(0)
    cout = 16
    # channels 0-3: M = 2^-k exactly, so accumulators land on halves (ties: ONNX Runtime rounds them to even,
    # "single" up); channel 4: a bias near 2^30 beside M ≈ 1e-7 (the folded-BatchNorm channel: float32(acc)
    # rounds, and the output still lies inside the range); the rest: scales with every mantissa bit set
    s_w = rng.uniform(1e-3, 2e-2, cout)
    s_w[:4] = 2.0 ** -np.arange(7, 11)
    bias = rng.integers(-3000, 3000, cout)
    s_w[4], bias[4] = 120 / (0.5 * (1 << 30)), 1 << 30
    for groups, cin in ((1, 8), (cout, cout)):  # a full conv, then a depthwise one
        im = one_conv(cin, cout, groups, s_w, bias, rng)
        q = torch.from_numpy(rng.integers(0, 256, (48, cin, 12, 12)).astype(np.int32))
        ort = _ort_ints(im, q)
        assert np.array_equal(ort, _engine(im, q, "onnxruntime"))
        single = _engine(im, q, "single")
        assert (single != ort).any() and np.abs(single - ort).max() == 1  # ties and float32 rounding
        assert 100 < ort[:, 4].mean() < 140  # the big-bias channel is really inside the range


def test_linear_and_three_dimensional_linear_requantize_as_onnx_runtime_does():
    rng = np.random.default_rng(1)
    s_w = np.concatenate([2.0 ** -np.arange(8, 12), rng.uniform(1e-3, 1e-2, 12)])
    m0, shift = multipliers(0.25, s_w, 0.75)
    for shape in ([40], [6, 40]):  # Gemm, and MatMul over the rows of each sample
        arrays = {"f.weight": torch.from_numpy(rng.integers(-63, 64, (16, 40)).astype(np.int8)),
                  "f.bias": torch.from_numpy(rng.integers(-500, 500, 16).astype(np.int32)), "f.m0": m0,
                  "f.shift": shift, "f.weight_scale": torch.from_numpy(s_w.astype(np.float32))}
        values = {"x": Value(shape, "uint8", 128, 0.25), "y": Value([*shape[:-1], 16], "uint8", 120, 0.75)}
        op = Op("linear", ["x"], "y", "f", {"lo": 0, "hi": 255}, {r: f"f.{r}" for r in
                                                                   ("weight", "bias", "m0", "shift", "weight_scale")})
        im = IntegerModel("x", "y", values, [op], arrays)
        q = torch.from_numpy(rng.integers(0, 256, (2000, *shape)).astype(np.int32))
        ort = _ort_ints(im, q)
        assert np.array_equal(ort, _engine(im, q, "onnxruntime"))
        assert (_engine(im, q, "single") != ort).any()


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_add_and_pools_compute_as_onnx_runtime_does(dtype):
    """QLinearAdd (fused multiply-adds on the stored bytes), QLinearGlobalAveragePool (integer sum, float32
    multiplier), QLinearAveragePool (float32 throughout); int8 values travel as bytes moved up by 128."""
    rng = np.random.default_rng(2)
    off = 128 if dtype == "int8" else 0
    for trial in range(4):
        sa, sb, sy = (float(np.float32(v)) for v in np.exp(rng.uniform(-4, 0, 3)))
        za, zb, zy = (int(v) - off for v in rng.integers(0, 256, 3))
        lo, hi = -off, 255 - off
        add = Op("add", ["a", "b"], "y", "add", {"left_shift": 20, "lo": lo, "hi": hi, "a_m0": 0, "a_shift": 0,
                                                "b_m0": 0, "b_shift": 0, "m0": 0, "shift": 0})
        twice = 2 * max(sa, sb)
        for role, m in (("a_", sa / twice), ("b_", sb / twice), ("", twice / ((1 << 20) * sy))):
            add.attrs[f"{role}m0"], add.attrs[f"{role}shift"] = quantize_multiplier(m)
        # a and b both derived from the input by max pools (pure data movement), so the model has one input
        values = {"x": Value([16, 16, 16], dtype, za, sa), "a": Value([16, 16, 16], dtype, za, sa),
                  "b": Value([16, 16, 16], dtype, za, sa), "y": Value([16, 16, 16], dtype, zy, sy)}
        if trial % 2:  # b on its own scale: a requantizing pool in between
            values["b"] = Value([16, 16, 16], dtype, zb, sb)
        pool_b = _pool("x", "b", values, [1, 1], [1, 1], [0, 0])
        ops = [Op("maxpool2d", ["x"], "a", "a", {"kernel": [1, 1], "stride": [1, 1], "padding": [0, 0]}), pool_b, add]
        values["g"] = Value([16, 1, 1], dtype, zb, sb)
        values["p"] = Value([16, 8, 8], dtype, zy, sy * 0.7)
        ops += [_pool("y", "g", values, [16, 16], [16, 16], [0, 0]), _pool("y", "p", values, [3, 3], [2, 2], [1, 1])]
        for out in ("y", "g", "p"):
            im = IntegerModel("x", out, values, [o for o in ops if o.output in _needs(ops, out)], {})
            q = torch.from_numpy(rng.integers(lo, hi + 1, (64, 16, 16, 16)).astype(np.int32))
            assert np.array_equal(_ort_ints(im, q), _engine(im, q, "onnxruntime")), (trial, out)


def _pool(src: str, dst: str, values: dict, kernel, stride, padding) -> Op:
    from karuku.quant.primitives import mean_multiplier

    m0, shift = mean_multiplier(values[src].scale / values[dst].scale, kernel[0] * kernel[1])
    lo, hi = (-128, 127) if values[dst].dtype == "int8" else (0, 255)
    attrs = {"kernel": kernel, "stride": stride, "m0": m0, "shift": shift, "lo": lo, "hi": hi}
    if any(padding):
        attrs["padding"] = padding
    return Op("avgpool2d", [src], dst, dst, attrs)


def _needs(ops: list[Op], out: str) -> set[str]:
    by = {o.output: o for o in ops}
    need, todo = set(), [out]
    while todo:
        v = todo.pop()
        if v in by and v not in need:
            need.add(v)
            todo += by[v].inputs
    return need


@settings(max_examples=300, deadline=None)
@given(st.floats(-1e4, 1e4, width=32), st.floats(-1e4, 1e4, width=32), st.floats(-1e4, 1e4, width=32),
       st.integers(-60, 60))
@example(2.0 ** -12 * (1 + 2.0 ** -23), 2.0 ** -12 * (1 - 2.0 ** -23), 1 + 2.0 ** -23, 0)  # float64 sum on a half
def test_fma32_rounds_once(x, y, z, e):
    """Against exact rational arithmetic: the float32 nearest x·y + z (ties to even), also when the float64
    sum would round a second time (z scaled far from x·y)."""
    from fractions import Fraction

    z = float(np.float32(z * 2.0 ** e))
    got = float(fma32(torch.tensor(x), torch.tensor(y), torch.tensor(z)))
    exact = Fraction(x) * Fraction(y) + Fraction(z)
    below = np.float32(float(exact))
    cands = [np.nextafter(below, np.float32(-np.inf)), below, np.nextafter(below, np.float32(np.inf))]
    best = min(cands, key=lambda c: (abs(Fraction(float(c)) - exact), int(np.float32(c).view(np.int32)) & 1))
    assert got == float(best)


def test_folded_batchnorm_block_agrees_with_onnx_runtime_on_every_value():
    im, x = folded_block()
    assert im.arrays["dw.bias"].abs().max() > 1 << 29  # the folded channel's bias sits at the int32 floor
    ort = debug_values(im, "u8s7", x, 1)
    eng = replace(im, rounding="onnxruntime").run_all(im.quantize_input(x), fast=True)
    for op in im.ops:
        assert np.array_equal(ort[f"q:{op.output}"].astype(np.int64), eng[op.output].numpy()), op.output
    # Not asserted here: that the fixed-point rule "single" differs on this block. Whether any accumulator lands
    # on a rounding half depends on the scales calibration found, i.e. on the float kernels of the machine that
    # ran torch (on an Intel Xeon with AVX-512 no value does; on an AMD Zen 5, or an AVX2 view of the Xeon, some
    # do). The contrast is asserted where it is built in: test_conv_and_depthwise_requantize_as_onnx_runtime_does.
    parity, _ = check(im, "u8s7", x, threads=1)
    assert parity.ok and parity.agreement == 1.0 and parity.max_steps == 0, parity.line()
