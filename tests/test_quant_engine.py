"""The integer-only engine: exact ops, agreement with the fake-quant model, its file format."""

import json

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from karuku.data import DataConfig, load_splits
from karuku.errors import KarukuError
from karuku.models import build
from karuku.quant import IntegerModel, QuantConfig, quantize, to_integer
from karuku.quant.engine import ops
from karuku.quant.primitives import quantize_multiplier, requantize
from karuku.training import TrainConfig, predict, train


@pytest.fixture(scope="module")
def digits(idx_dir):
    return load_splits(DataConfig(name="idx", path=str(idx_dir), val_size=100))


def _randomise_bn(net):
    torch.manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net


def test_conv_matches_a_loop_written_from_the_spec():
    torch.manual_seed(0)
    x = torch.randint(0, 256, (1, 2, 5, 4), dtype=torch.int32)
    w = torch.randint(-127, 128, (3, 2, 3, 3), dtype=torch.int8)
    b = torch.randint(-5000, 5000, (3,), dtype=torch.int32)
    pairs = [quantize_multiplier(m) for m in (0.0021, 0.0007, 0.0113)]
    m0 = torch.tensor([p[0] for p in pairs], dtype=torch.int32)
    sh = torch.tensor([p[1] for p in pairs], dtype=torch.int32)
    zx, zy = 7, 100
    got = ops.conv2d(x, zx, w, b, m0, sh, zy, 100, 255, [2, 1], [1, 1], 1)
    fast = ops.conv2d(x, zx, w, b, m0, sh, zy, 100, 255, [2, 1], [1, 1], 1, fast=True)
    assert torch.equal(got, fast)
    oh, ow = got.shape[2:]
    assert (oh, ow) == (3, 4)
    for co in range(3):
        for oy in range(oh):
            for ox in range(ow):
                acc = int(b[co])
                for ci in range(2):
                    for ky in range(3):
                        for kx in range(3):
                            iy, ix = oy * 2 + ky - 1, ox + kx - 1
                            v = int(x[0, ci, iy, ix]) if 0 <= iy < 5 and 0 <= ix < 4 else zx  # pad = zero point
                            acc += (v - zx) * int(w[co, ci, ky, kx])
                want = int(requantize(torch.tensor([acc]), int(m0[co]), int(sh[co]), zy, 100, 255))
                assert int(got[0, co, oy, ox]) == want


def test_depthwise_and_pools_exact():
    torch.manual_seed(0)
    x = torch.randint(-128, 128, (2, 4, 6, 6), dtype=torch.int32)
    w = torch.randint(-127, 128, (4, 1, 3, 3), dtype=torch.int8)
    z = torch.zeros(4, dtype=torch.int32)
    m0, sh = quantize_multiplier(0.01)
    args = (x, -3, w, z, torch.full((4,), m0), torch.full((4,), sh), 0, -128, 127, [1, 1], [1, 1], 4)
    assert torch.equal(ops.conv2d(*args), ops.conv2d(*args, fast=True))
    assert torch.equal(ops.maxpool2d(x, [2, 2], [2, 2], [0, 0], -128), torch.nn.functional.max_pool2d(
        x.float(), 2).int())
    m0, sh = quantize_multiplier(1 / 36)
    avg = ops.avgpool2d(x, 5, [6, 6], [6, 6], m0, sh, 0, -128, 127)
    exact = ((x - 5).sum((2, 3), keepdim=True).double() / 36)
    assert (avg.double() - exact).abs().max() <= 0.5 + 1e-6


@pytest.fixture(scope="module")
def lenet(digits):
    torch.manual_seed(0)
    net = build("lenet5-lecun", digits.input_shape, 10)
    train(net, digits, TrainConfig(epochs=3, lr=0.05, batch_size=32), verbose=False)
    return net.eval()


def test_engine_agrees_with_fake_quant(lenet, digits):
    qm = quantize(lenet, QuantConfig(observer="mse"), digits.calibration(256))
    im = to_integer(qm)
    x = digits.test.tensors[0]
    fq, ints = predict(qm, x), im.run(x)
    step = im.values[im.output].scale
    assert (fq.argmax(1) == ints.argmax(1)).float().mean() >= 0.995
    assert (fq - ints).abs().max() <= step * 1.0001  # within one quantization step
    assert torch.equal(im.run_int(im.quantize_input(x)), im.run_int(im.quantize_input(x), fast=True))
    assert {o.kind for o in im.ops} == {"conv2d", "maxpool2d", "flatten", "linear"}
    acc_fp = (predict(lenet, x).argmax(1) == digits.test.tensors[1]).float().mean()
    acc_int = (ints.argmax(1) == digits.test.tensors[1]).float().mean()
    assert acc_fp > 0.6 and acc_int >= acc_fp - 0.03


@pytest.mark.parametrize("name,kwargs", [("resnet-s", {"widths": (8, 16, 16)}),
                                         ("mobilenetv2-s", {"width": 0.25, "head": 32})])
def test_residual_depthwise_relu6_models(name, kwargs, digits):
    torch.manual_seed(0)
    net = _randomise_bn(build(name, digits.input_shape, 10, **kwargs)).eval()
    qm = quantize(net, QuantConfig(), digits.calibration(64))
    im = to_integer(qm)
    kinds = {o.kind for o in im.ops}
    assert {"add", "avgpool2d", "conv2d", "linear"} <= kinds
    x = digits.test.tensors[0][:60]
    fq, ints = predict(qm, x), im.run(x, fast=True)
    step = im.values[im.output].scale
    assert (fq.argmax(1) == ints.argmax(1)).float().mean() >= 0.98
    assert ((fq - ints).abs() <= step * 1.0001).float().mean() >= 0.98
    assert (fq - ints).abs().max() <= 3 * step
    assert torch.equal(im.run_int(im.quantize_input(x[:8])), im.run_int(im.quantize_input(x[:8]), fast=True))
    every = im.run_all(im.quantize_input(x[:8]))
    assert set(every) == {im.input, *(o.output for o in im.ops)}
    assert torch.equal(every[im.output], im.run_int(im.quantize_input(x[:8])))
    for name, v in every.items():  # each stored value lies in its integer type's range
        lo, hi = (0, 255) if im.values[name].dtype == "uint8" else (-128, 127)
        assert lo <= int(v.min()) and int(v.max()) <= hi


def test_save_load_round_trip_and_hostile_files(lenet, digits, tmp_path):
    im = to_integer(quantize(lenet, QuantConfig(), digits.calibration(64)))
    path = im.save(tmp_path / "m.safetensors")
    again = IntegerModel.load(path)
    x = digits.test.tensors[0][:50]
    assert torch.equal(im.run_int(im.quantize_input(x)), again.run_int(again.quantize_input(x)))
    assert again.arrays["conv1.weight"].dtype == torch.int8 and again.arrays["conv1.bias"].dtype == torch.int32
    raw = path.read_bytes()
    tensors = st_load(raw)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        doc = json.loads(fh.metadata()["karuku"])
    doc["ops"][0]["kind"] = "softmax"
    from karuku.io import safefile

    safefile.write(tmp_path / "bad.safetensors", tensors, {k: v for k, v in doc.items() if k != "tensors_sha256"})
    with pytest.raises(KarukuError, match="malformed"):
        IntegerModel.load(tmp_path / "bad.safetensors")
    (tmp_path / "cut.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(KarukuError, match="truncated or corrupt"):
        IntegerModel.load(tmp_path / "cut.safetensors")
    (tmp_path / "plain.safetensors").write_bytes(st_save({"a": torch.zeros(1)}))
    with pytest.raises(KarukuError):
        IntegerModel.load(tmp_path / "plain.safetensors")


def test_rounding_rule_is_saved_and_version_1_files_read_as_double(lenet, digits, tmp_path):
    qm = quantize(lenet, QuantConfig(rounding="double"), digits.calibration(64))
    im = to_integer(qm)
    single = to_integer(quantize(lenet, QuantConfig(), digits.calibration(64)))
    assert im.rounding == "double" and single.rounding == "single"
    assert IntegerModel.load(im.save(tmp_path / "d.safetensors")).rounding == "double"
    doc = im.document()
    del doc["rounding"]
    doc["format_version"] = 1  # files written before the field existed were made with two roundings
    assert IntegerModel.from_parts(im.arrays, doc).rounding == "double"
    doc["rounding"] = "onnxruntime"  # ONNX Runtime's float32 rule (karuku.quant.ort_requant) reads back too
    assert IntegerModel.from_parts(im.arrays, doc).rounding == "onnxruntime"
    doc["rounding"] = "stochastic"
    with pytest.raises(KarukuError, match="unknown requantization rounding 'stochastic'") as err:
        IntegerModel.from_parts(im.arrays, doc)
    assert err.value.hint == "use one of: single, double, onnxruntime"
    x = digits.test.tensors[0][:100]
    # the same model under both rules: outputs a step or two apart at most (the rules differ near halves)
    d = (im.run_int(im.quantize_input(x)) - single.run_int(single.quantize_input(x))).abs()
    assert d.max() <= 2


def test_int8_activations_and_per_tensor_weights(lenet, digits):
    qm = quantize(lenet, QuantConfig(act_dtype="int8", per_channel=False, observer="percentile"),
                  digits.calibration(128))
    im = to_integer(qm)
    assert {v.dtype for v in im.values.values()} == {"int8"}
    assert all(o.attrs["lo"] == im.values[o.output].zero_point for o in im.ops if o.kind == "conv2d")  # fused ReLU
    scales = im.arrays["conv1.weight_scale"]
    assert torch.equal(scales, scales[:1].expand_as(scales))
    x = digits.test.tensors[0]
    fq, ints = predict(qm, x), im.run(x)
    assert (fq.argmax(1) == ints.argmax(1)).float().mean() >= 0.99
    assert (fq - ints).abs().max() <= im.values[im.output].scale * 1.0001
