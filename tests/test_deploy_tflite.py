""".tflite export: every output byte equal to the integer engine in LiteRT (reference kernels) and TFLite Micro."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from helpers.edgenets import EdgeNet, integer_engine
from karuku.deploy.tflite.export import export_tflite, to_tflite
from karuku.deploy.tflite.lower import lower, same_padding, tflite_activation_range
from karuku.deploy.tflite.verify import agreement, expected, run_litert, run_tflm
from karuku.deploy.tflite.verify import to_tflite as tflite_input
from karuku.errors import KarukuError
from karuku.quant import QuantConfig, quantize
from karuku.quant.primitives import mean_multiplier, pool_multiplier, quantize_multiplier, rescale


@pytest.mark.parametrize("gap", [True, False])
def test_tflite_is_the_engine_in_both_interpreters(gap):
    im, x = integer_engine(EdgeNet(gap), (3, 8, 8))  # default rounding "single": the export matches the "double" engine
    eng, raw, data = to_tflite(im)
    assert eng.rounding == "double" and im.rounding == "single"
    res = agreement(eng, raw, x)
    assert res == {"inputs": 32, "litert": 32, "tflm_inputs": 32, "tflm": 32}
    ops = [o.op for o in lower(eng).operators]
    assert ops.count("DEPTHWISE_CONV_2D") == 1 and "PAD" in ops and "PADV2" in ops and "ADD" in ops
    assert ("MEAN" in ops) == gap and ops[-1] == "RESHAPE"  # [1, 1, 1, 5] -> [1, 5]
    assert "TRANSPOSE" not in ops  # the flatten of 2×2 pixels permutes fc1's columns instead
    assert len(raw) > data and raw[4:8] == b"TFL3"


def test_equal_quantization_vectors_are_written_once():
    """Every per-channel weight and bias of Net's 8-channel layers has 8 zero points 0: one vector in the file."""
    import tflite

    im, x = integer_engine(EdgeNet(True), (3, 8, 8))
    eng, raw, _ = to_tflite(im)
    g = tflite.Model.GetRootAsModel(raw, 0).Subgraphs(0)
    places = {}
    for i in range(g.TensorsLength()):
        q = g.Tensors(i).Quantization()
        if q is not None and q.ZeroPointLength() == 8:
            places.setdefault(tuple(q.ZeroPointAsNumpy()), set()).add(q._tab.Vector(q._tab.Offset(10)))
    assert list(places) == [(0,) * 8] and len(places[(0,) * 8]) == 1
    assert sum(g.Tensors(i).Quantization().ZeroPointLength() == 8 for i in range(g.TensorsLength())
               if g.Tensors(i).Quantization() is not None) >= 8  # 4 layers × weight and bias share it
    assert agreement(eng, raw, x[:8])["tflm"] == 8

def test_the_single_rounding_engine_differs_where_tflite_rounds_twice():
    """The reason the export converts to "double": with one rounding, some outputs move by a step."""
    im, x = integer_engine(EdgeNet(True), (3, 8, 8), n=192)
    _, raw, _ = to_tflite(im)
    q = im.quantize_input(x)
    got = run_tflm(raw, tflite_input(im, q))
    assert (got != expected(im, q)).any()  # im is the single-rounding engine
    assert np.array_equal(run_litert(raw, tflite_input(im, q)), got)


def test_mlp_input_vector_and_standalone_clamps():
    model = nn.Sequential(nn.ReLU(), nn.Linear(20, 16), nn.ReLU6(), nn.Linear(16, 20))
    im, x = integer_engine(model, (20,))
    assert im.ops[0].kind == "clamp"
    eng, raw, _ = to_tflite(im)
    assert agreement(eng, raw, x) == {"inputs": 32, "litert": 32, "tflm_inputs": 32, "tflm": 32}
    g = lower(eng)
    ops = [o.op for o in g.operators]
    assert ops[0] in ("RELU", "MAXIMUM") and ops.count("RESHAPE") == 2  # [1, 20] -> [1, 1, 1, 20] -> [1, 20]
    assert g.tensors[g.inputs[0]].shape == [1, 20] and g.tensors[g.outputs[0]].shape == [1, 20]


def test_export_writes_only_a_checked_file(tmp_path):
    im, x = integer_engine(EdgeNet(True), (3, 8, 8))
    msg = export_tflite(im, tmp_path / "m.tflite", x)
    assert "identical to the integer engine" in msg and (tmp_path / "m.tflite").stat().st_size > 0


@pytest.mark.parametrize("gap", [True, False])
def test_compact_file_leaves_out_what_the_interpreters_do_not_read(gap):
    """compact: no tensor names, no bias quantization on convolutions (linear layers are 1×1 CONV_2Ds here),
    buffers 4-byte aligned; smaller, and still the engine's bytes in both interpreters."""
    import tflite

    im, x = integer_engine(EdgeNet(gap), (3, 8, 8))
    eng, raw, data = to_tflite(im)
    _, small, _ = to_tflite(im, compact=True)
    assert data < len(small) < len(raw)
    assert agreement(eng, small, x) == {"inputs": 32, "litert": 32, "tflm_inputs": 32, "tflm": 32}
    m = tflite.Model.GetRootAsModel(small, 0)
    g, full = m.Subgraphs(0), tflite.Model.GetRootAsModel(raw, 0).Subgraphs(0)
    convs = [g.Operators(i) for i in range(g.OperatorsLength())
             if m.OperatorCodes(g.Operators(i).OpcodeIndex()).BuiltinCode() in (3, 4)]  # CONV_2D, DEPTHWISE_CONV_2D
    biases = {o.Inputs(2) for o in convs}
    assert len(biases) >= 6  # every convolution and linear layer of Net
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        assert t.Name() is None and full.Tensors(i).Name()
        assert (t.Quantization() is None) == (i in biases or full.Tensors(i).Quantization() is None)
    starts = [m.Buffers(i)._tab.Vector(m.Buffers(i)._tab.Offset(4)) for i in range(1, m.BuffersLength())]
    assert all(s % 4 == 0 for s in starts) and any(s % 16 for s in starts)


def test_grouped_convolution_and_windowed_average_pool():
    """CONV_2D with groups (version 6) and an average pool over windows as a DEPTHWISE_CONV_2D with weights 1."""
    model = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.ReLU(),
                          nn.AvgPool2d(3, 2, 1), nn.Flatten(), nn.Linear(8 * 3 * 3, 3))
    im, x = integer_engine(model, (4, 6, 6))
    eng, raw, _ = to_tflite(im)
    assert agreement(eng, raw, x) == {"inputs": 32, "litert": 32, "tflm_inputs": 32, "tflm": 32}
    g = lower(eng)
    assert [(o.op, o.version) for o in g.operators if o.layer == "1"] == [("CONV_2D", 6)]
    pool = [o for o in g.operators if o.layer == "3"]
    assert [o.op for o in pool] == ["PAD", "DEPTHWISE_CONV_2D"]  # SAME would pad 0 on top for stride 2
    ones = g.tensors[pool[1].inputs[1]]
    assert ones.data.shape == (1, 3, 3, 8) and (ones.data == 1).all() and ones.scale == [np.float32(1 / 9)]


def test_what_tflite_cannot_compute_exactly_is_named_with_the_layer():
    pooled = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AvgPool2d(3), nn.Flatten(), nn.Linear(4 * 2 * 2, 3))
    im, _ = integer_engine(pooled, (3, 8, 8))
    op = im.ops[1]
    v_in, v_out = im.values[op.inputs[0]], im.values[op.output]
    m0, shift = mean_multiplier(v_in.scale / v_out.scale, 9)  # what earlier conversions held for every pool
    assert (m0, shift) != (op.attrs["m0"], op.attrs["shift"])
    im.ops[1] = replace(op, attrs={**op.attrs, "m0": m0, "shift": shift})
    with pytest.raises(KarukuError, match=r"layer '1'.*multiplier.*float32\(1/9\)") as err:
        to_tflite(im)
    assert "re-convert" in err.value.hint
    im.ops[1] = replace(op, kind="softmax")
    with pytest.raises(KarukuError, match=r"layer '1': op 'softmax' has no TFLite equivalent"):
        to_tflite(im)


def test_pool_multiplier_is_what_tflite_derives_for_a_convolution():
    """s_x · float32(1/n) / s_y in double, TFLite's rounding of M0; within 2^-23 of s_x / (s_y · n)."""
    for s_x, s_y, n in ((0.02, 0.015, 9), (0.0089, 0.0291, 4), (0.5, 0.01, 49), (0.1, 0.1, 3)):
        s_x, s_y = float(np.float32(s_x)), float(np.float32(s_y))
        got = pool_multiplier(s_x, s_y, n)
        assert got == quantize_multiplier(s_x * float(np.float32(1 / n)) / s_y)
        m = s_x / (s_y * n)
        assert abs(got[0] * 2.0 ** -(31 + got[1]) - m) <= m * 2 ** -23


def test_activation_ranges_and_same_padding_follow_tflite():
    assert tflite_activation_range("RELU", 0.05, -128) == (-128, 127)
    assert tflite_activation_range("RELU", 0.05, -3) == (-3, 127)
    assert tflite_activation_range("RELU6", 0.05, -128) == (-128, -8)  # 6 / 0.05 = 120
    assert tflite_activation_range("RELU6", 6 / 255, -128) == (-128, 127)
    assert same_padding(28, 5, 1, 2) and same_padding(32, 3, 1, 1)
    assert not same_padding(32, 3, 2, 1)  # SAME pads 0 on top and 1 below
    assert same_padding(33, 3, 2, 1)


def test_mean_multiplier_is_tflite_s():
    """TFLite: M0' = (M0 << p) / n with p = floor(log2 n), shift' = shift + p; the result is m / n to ~2^-29."""
    for m, n in ((0.9, 64), (1.7, 9), (0.3, 125), (1.0, 1), (2.5, 49)):
        m0, shift = quantize_multiplier(m)
        got = mean_multiplier(m, n)
        p = n.bit_length() - 1
        assert got == ((m0 << p) // n, shift + p)
        assert abs(got[0] * 2.0 ** -(31 + got[1]) - m / n) <= m / n * 2 ** -28
    acc = torch.arange(-3000, 3000, dtype=torch.int32)
    m0, shift = mean_multiplier(1.0, 64)
    assert torch.equal(rescale(acc * 64, m0, shift, "double"), rescale(acc, *quantize_multiplier(1.0), "double"))


def test_quantize_multiplier_rounds_ties_away_from_zero():
    m = (2 ** 30 + 0.5) / 2 ** 31  # frac · 2^31 = 2^30 + 1/2 exactly
    assert quantize_multiplier(m) == (2 ** 30 + 1, 0)


@pytest.fixture
def quantized(tmp_path):
    """A lenet5-lecun checkpoint, its quantized form (random calibration data), both saved."""
    from karuku.io.checkpoint import save_checkpoint
    from karuku.models import ModelSpec
    from karuku.quant import save_quantized

    torch.manual_seed(0)
    spec = ModelSpec(name="lenet5-lecun", input_shape=(1, 28, 28), num_classes=10)
    model = spec.build().eval()
    qm = quantize(model, QuantConfig(), torch.randn(64, 1, 28, 28))
    return save_checkpoint(tmp_path / "f.safetensors", model, spec), save_quantized(tmp_path / "q.safetensors", qm,
                                                                                   spec)


def test_cli_export_tflite(quantized, tmp_path):
    from typer.testing import CliRunner

    from karuku.cli import commands  # noqa: F401  (registers the commands)
    from karuku.cli.app import app

    runner = CliRunner()
    fp, q = quantized
    res = runner.invoke(app, ["export", str(q), "--format", "tflite", "--out", str(tmp_path / "m.tflite")])
    assert res.exit_code == 0, res.output
    assert "identical to the integer engine" in res.output and (tmp_path / "m.tflite").stat().st_size > 60_000
    res = runner.invoke(app, ["export", str(fp), "--format", "tflite"])  # float: no int8 .tflite without ranges
    assert res.exit_code == 1 and "needs a quantized checkpoint" in res.output and "karuku quantize" in res.output
    assert len(res.output.strip().splitlines()) == 1
    res = runner.invoke(app, ["export", str(q), "--format", "tflite", "--kernels", "cmsis-nn"])
    assert res.exit_code == 1 and "use them with --format c" in res.output
    res = runner.invoke(app, ["export", str(q), "--format", "tflite", "--compact", "--out", str(tmp_path / "s.tflite")])
    assert res.exit_code == 0 and "compact int8 .tflite" in res.output, res.output
    assert (tmp_path / "s.tflite").stat().st_size < (tmp_path / "m.tflite").stat().st_size
    res = runner.invoke(app, ["export", str(q), "--format", "c", "--compact"])
    assert res.exit_code == 1 and "use it with --format tflite" in res.output
