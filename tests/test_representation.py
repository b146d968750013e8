"""Int8 representations: the NumPy model of x86's pair-saturating multiply, which representations it can break,
and what quantizing and exporting for a target ISA produce. Nothing here depends on this machine's ISA."""

import numpy as np
import onnx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from karuku.errors import KarukuError
from karuku.models import build
from karuku.quant import QuantConfig, export_onnx, export_qdq, quantize, to_integer
from karuku.quant.representation import (
    REPRESENTATIONS,
    choose,
    exact_on,
    max_abs_weight,
    pair_saturating_dot,
    weight_bits_for,
)

K = st.integers(1, 40)


def _exact(x, w):
    return np.asarray(x, np.int64) @ np.asarray(w, np.int64).T


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_seven_bit_weights_never_saturate(data):
    k, n = data.draw(K), data.draw(st.integers(1, 6))
    x = data.draw(arrays(np.uint8, (3, k)))  # every uint8 activation, 0..255
    w = data.draw(arrays(np.int8, (n, k), elements=st.integers(-63, 63)))
    assert np.array_equal(pair_saturating_dot(x, w), _exact(x, w))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_u8u8_twin_computes_the_same_integers(data):
    """u8u8 stores w + 128 with zero point 128: (x·(w+128)) − 128·Σx is x·w for every int8 weight."""
    k = data.draw(K)
    x = data.draw(arrays(np.uint8, (2, k)))
    w = data.draw(arrays(np.int8, (3, k), elements=st.integers(-127, 127)))
    stored = w.astype(np.int64) + 128
    assert np.array_equal(_exact(x, stored) - 128 * x.astype(np.int64).sum(1, keepdims=True), _exact(x, w))


def test_eight_bit_weights_do_saturate():
    x = np.full((1, 4), 255, np.uint8)
    w = np.full((1, 4), 127, np.int8)
    assert _exact(x, w)[0, 0] == 4 * 255 * 127
    assert pair_saturating_dot(x, w)[0, 0] == 2 * 32767  # each pair clipped at int16's maximum
    # 64 is the largest safe magnitude: 2·255·64 = 32640 fits, 2·255·65 = 33150 does not
    assert pair_saturating_dot(x, np.full((1, 4), 64))[0, 0] == 4 * 255 * 64
    assert pair_saturating_dot(x, np.full((1, 4), 65))[0, 0] < 4 * 255 * 65


def test_choice_per_target():
    assert weight_bits_for("avx512-vnni") == 8 and weight_bits_for("arm64") == 8
    assert weight_bits_for("avx2") == 7 and weight_bits_for("portable") == 7 and weight_bits_for("avx512") == 7
    assert choose(127, "avx512-vnni") == "u8s8" and choose(127, "avx2") == "u8u8"
    assert choose(63, "avx512-vnni") == "u8s7" and choose(63, "avx2") == "u8s7"
    assert not exact_on("u8s8", "avx2") and not exact_on("u8s8", "portable") and exact_on("u8s8", "amx")
    assert all(exact_on(r, t) for r in ("u8s7", "u8u8") for t in ("avx2", "portable", "arm64"))


@pytest.fixture(scope="module")
def calib():
    return torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_quantizing_for_a_saturating_target_caps_weights_at_seven_bits(calib):
    net = build("lenet5", (1, 28, 28), 10).eval()
    wide = quantize(net, QuantConfig(target_isa="avx512-vnni", layer_bits={"fc*": 6}), calib)
    assert wide.cfg.bits == 8 and max_abs_weight(to_integer(wide)) == 127
    narrow = quantize(net, QuantConfig(target_isa="avx2", layer_bits={"conv1": 8, "fc*": 6}), calib)
    assert narrow.cfg.target_isa == "avx2" and narrow.cfg.bits == 7
    assert narrow.cfg.layer_bits == {"conv1": 7, "fc*": 6}
    assert max_abs_weight(to_integer(narrow)) == max_abs_weight(narrow) == 63
    auto = quantize(net, QuantConfig(), calib)
    assert auto.cfg.target_isa != "auto"  # resolved to this CPU when quantizing, so the checkpoint keeps it


def _meta(raw: bytes) -> dict:
    return {p.key: p.value for p in onnx.load_from_string(raw).metadata_props}


def _weights(raw: bytes) -> dict:
    return {i.name: i.data_type for i in onnx.load_from_string(raw).graph.initializer if ".w_" in i.name}


def test_export_stores_the_representation_of_the_target(calib):
    net = build("lenet5", (1, 28, 28), 10).eval()
    qm = quantize(net, QuantConfig(target_isa="avx512-vnni"), calib)
    vnni = export_qdq(qm)
    assert _meta(vnni) == {"karuku.representation": "u8s8", "karuku.target_isa": "avx512-vnni",
                           "karuku.rounding": "onnxruntime", "karuku.engine_rounding": "single"}
    avx2 = export_qdq(qm, target_isa="avx2")  # 8-bit weights on a saturating CPU: stored as uint8 + 128
    assert _meta(avx2)["karuku.representation"] == "u8u8"
    types = _weights(avx2)
    assert types and all(t == onnx.TensorProto.UINT8 for n, t in types.items() if n.endswith(".w_uint8"))
    zps = [i for i in onnx.load_from_string(avx2).graph.initializer if i.name.endswith(".w_zero_point")]
    assert zps and all(set(onnx.numpy_helper.to_array(z).tolist()) == {128} for z in zps)
    with pytest.raises(KarukuError, match=r"weights up to ±127, more than the u8s7 representation holds"):
        export_qdq(qm, representation="u8s7")
    seven = quantize(net, QuantConfig(target_isa="portable"), calib)
    assert _meta(export_qdq(seven))["karuku.representation"] == "u8s7"


def test_dynamic_export_stores_the_representation(calib):
    net = build("lenet300", (1, 28, 28), 10).eval()
    qm = quantize(net, QuantConfig(mode="dynamic", target_isa="avx512-vnni"), calib)
    assert _meta(export_onnx(qm))["karuku.representation"] == "u8s8"
    raw = export_onnx(qm, target_isa="avx2")
    assert _meta(raw)["karuku.representation"] == "u8u8"
    assert any(n.endswith(".w_uint8") for n in _weights(raw))


def test_int8_engine_values_are_stored_as_uint8(calib):
    net = build("lenet300", (1, 28, 28), 10).eval()
    im = to_integer(quantize(net, QuantConfig(act_dtype="int8"), calib))
    assert {v.dtype for v in im.values.values()} == {"int8"}
    model = onnx.load_from_string(export_qdq(im))
    zps = [i for i in model.graph.initializer if i.name.endswith(".zero_point") and "w_zero" not in i.name]
    assert zps and all(z.data_type == onnx.TensorProto.UINT8 for z in zps)


def test_unknown_representation_is_refused(calib):
    qm = quantize(build("lenet300", (1, 28, 28), 10).eval(), QuantConfig(), calib)
    with pytest.raises(KarukuError, match="unknown int8 representation 'u4s4'"):
        export_qdq(qm, representation="u4s4")
    assert set(REPRESENTATIONS) == {"u8s8", "u8s7", "u8u8"}
