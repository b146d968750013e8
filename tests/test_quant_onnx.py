"""Int8 QDQ ONNX: checker-clean, self-contained, fused by ONNX Runtime, agreeing with the integer engine."""

import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from karuku.data import DataConfig, load_splits
from karuku.models import build
from karuku.quant import QuantConfig, export_qdq, quantize, to_integer


def _optimised_ops(model_bytes: bytes, tmp_path) -> collections.Counter:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    return collections.Counter(n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node)


def _session(model_bytes: bytes):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("target, representation, wtype", [
    ("portable", "u8s7", onnx.TensorProto.INT8),  # 7-bit weights: exact on every CPU, the fast kernels
    ("avx512-vnni", "u8u8", onnx.TensorProto.UINT8),  # 8-bit weights stored + 128: exact on every CPU
])
def test_resnet_qdq_fuses_and_agrees(idx_dir, tmp_path, target, representation, wtype):
    # both representations are exact whatever CPU runs this test (tests/test_isa_emulated.py shows it on AVX2)
    splits = load_splits(DataConfig(name="idx", path=str(idx_dir), val_size=0))
    torch.manual_seed(0)
    net = build("resnet-s", splits.input_shape, 10, widths=(8, 16, 16)).eval()
    im = to_integer(quantize(net, QuantConfig(target_isa=target), splits.calibration(128)))
    data = export_qdq(im, representation=representation)
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model, full_check=True)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    ints = {i.name: i.data_type for i in model.graph.initializer}
    assert [n for n in ints if ".w_int8" in n or ".w_uint8" in n]
    assert all(ints[n] == wtype for n in ints if n.endswith((".w_int8", ".w_uint8")))
    assert all(ints[n] == onnx.TensorProto.UINT8 for n in ints if n.endswith(".zero_point") and "w_zero" not in n)
    ops = _optimised_ops(data, tmp_path)
    # everything runs in ONNX Runtime's int8 kernels: no float Conv / Add / Gemm left
    assert ops["QLinearConv"] == 9 and ops["QLinearAdd"] == 3 and ops["QGemm"] == 1
    assert not {"Conv", "Add", "Gemm"} & set(ops)
    x = splits.test.tensors[0]
    ort_out = _session(data).run(None, {"input": x.numpy()})[0]
    eng = im.run(x, fast=True).numpy()
    assert (ort_out.argmax(1) == eng.argmax(1)).mean() >= 0.99
    assert np.abs(ort_out - eng).max() <= 3 * im.values[im.output].scale


def test_mobilenet_and_lenet_qdq(idx_dir, tmp_path):
    splits = load_splits(DataConfig(name="idx", path=str(idx_dir), val_size=0))
    for name, kwargs in (("mobilenetv2-s", {"width": 0.25, "head": 32}), ("lenet5", {})):
        torch.manual_seed(0)
        net = build(name, splits.input_shape, 10, **kwargs).eval()
        im = to_integer(quantize(net, QuantConfig(observer="percentile", target_isa="portable"),
                                 splits.calibration(64)))
        data = export_qdq(im)
        ops = _optimised_ops(data, tmp_path)
        assert "Conv" not in ops and ops["QLinearConv"] >= 2, (name, ops)
        x = splits.test.tensors[0][:100]
        ort_out = _session(data).run(None, {"input": x.numpy()})[0]
        eng = im.run(x, fast=True).numpy()
        assert (ort_out.argmax(1) == eng.argmax(1)).mean() >= 0.98, name


@pytest.mark.parametrize("target", ["portable", "avx2"])
def test_dynamic_onnx_fuses_into_dynamic_quantize_matmul(idx_dir, tmp_path, target):
    from karuku.quant import export_onnx

    splits = load_splits(DataConfig(name="idx", path=str(idx_dir), val_size=0))
    torch.manual_seed(0)
    net = build("lenet300", splits.input_shape, 10).eval()
    # portable: 7-bit int8 weights; 8-bit weights exported for avx2: uint8 weights (u8u8); both exact everywhere
    qm = quantize(net, QuantConfig(mode="dynamic", target_isa="portable" if target == "portable" else "amx"),
                  splits.calibration(4))
    data = export_onnx(qm, target_isa=target)
    ops = _optimised_ops(data, tmp_path)
    assert ops["DynamicQuantizeMatMul"] == 3 and "MatMul" not in ops and "Gemm" not in ops
    x = splits.test.tensors[0]
    out = _session(data).run(None, {"input": x.numpy()})[0]
    ref = qm(x).detach().numpy()
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.98
