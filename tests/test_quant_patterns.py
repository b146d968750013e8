"""Patterns of real pretrained CNNs (EfficientNet-Lite's, reproduced in tiny models: nothing is downloaded):
TF "same" padding in a Conv2d subclass, sizes and devices read off tensors, linear layers on [N, T, C]
inputs, BatchNorm that nearly switches a channel off. Each quantizes, runs on integers, exports, counts."""

import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from karuku.deploy.c import toolchain
from karuku.deploy.c.codegen import generate
from karuku.deploy.c.project import to_bytes
from karuku.errors import KarukuError
from karuku.measure import totals
from karuku.quant import QuantConfig, export_qdq, quantize, to_integer


class SameConv(nn.Conv2d):
    """TF "same" padding as EfficientNet ports write it: a child ZeroPad2d, then F.conv2d on the parameters."""

    def __init__(self, cin, cout, k, stride=1, groups=1, size=12):
        super().__init__(cin, cout, k, stride, groups=groups, bias=False)
        out = -(-size // stride)
        pad = max((out - 1) * stride + k - size, 0)
        self.static_padding = nn.ZeroPad2d((pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))

    def forward(self, x):
        return F.conv2d(self.static_padding(x), self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class LiteBlock(nn.Module):
    """Stem (stride 2, padded right and bottom only), an inverted residual with a depthwise conv, the head."""

    def __init__(self):
        super().__init__()
        self.stem, self.bn0 = SameConv(3, 8, 3, stride=2), nn.BatchNorm2d(8)
        self.expand, self.bn1 = SameConv(8, 16, 1, size=6), nn.BatchNorm2d(16)
        self.dw, self.bn2 = SameConv(16, 16, 3, groups=16, size=6), nn.BatchNorm2d(16)
        self.project, self.bn3 = SameConv(16, 8, 1, size=6), nn.BatchNorm2d(8)
        self.act, self.pool, self.fc = nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Linear(8, 10)

    def forward(self, x):
        bs = x.size(0)
        x = self.act(self.bn0(self.stem(x)))
        y = self.act(self.bn1(self.expand(x)))
        y = self.bn3(self.project(self.act(self.bn2(self.dw(y)))))
        x = (x + y).to(x.device)
        return self.fc(self.pool(x).view(bs, -1))


def _bn_noise(model):
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model


def _check_everywhere(model, x, im, tmp_path, name):
    """Engine ⇄ fake-quant within a step; ONNX fused and (unfused) within a step; C byte-identical."""
    eng = im.run(x, fast=True).numpy()
    step = im.values[im.output].scale
    data = export_qdq(im)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    basic = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    assert np.abs(basic - eng).max() <= step * 1.0001 and (basic.argmax(1) == eng.argmax(1)).mean() >= 0.98
    proj = generate(im, name)
    q = im.quantize_input(x)
    out, _ = toolchain.run(toolchain.build_host(proj, tmp_path / name), to_bytes(q))
    assert np.array_equal(out, to_bytes(im.run_int(q)))
    return data


def test_tf_same_padding_in_a_conv2d_subclass(tmp_path):
    """fx traces into the subclass: get_attr weights and F.conv2d, sizes read off the input (x.size(0)), a
    `.to(x.device)`; the padding folds into the conv as [top, left, bottom, right]."""
    torch.manual_seed(0)
    model = _bn_noise(LiteBlock()).eval()
    x = torch.randn(48, 3, 12, 12)
    qm = quantize(model, QuantConfig(), x)
    assert [(n.name, n.op) for n in qm.nodes][:3] == [("x", "input"), ("stem", "conv"), ("expand", "conv")]
    stem = next(n for n in qm.nodes if n.name == "stem")
    assert stem.attrs["padding"] == [0, 0, 1, 1] and stem.attrs["act"] == "relu6" and stem.bn is not None
    assert not any(n.op in ("pad", "float", "aux") for n in qm.nodes)
    im = to_integer(qm)
    fq, ints = qm(x).detach(), im.run(x)
    assert (fq - ints).abs().max() <= im.values[im.output].scale * 1.0001
    assert (model(x).argmax(1) == fq.argmax(1)).float().mean() >= 0.9
    data = _check_everywhere(model, x, im, tmp_path, "lite")
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    fused = collections.Counter(n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node)
    assert fused["QLinearConv"] == 4 and "Pad" not in fused and "Conv" not in fused


class Sizes(nn.Module):
    """Values that are not tensors: a batch size read off `shape`, a device; they only shape a reshape and a
    `.to(device)`, so nothing of them is left to quantize."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(16, 10)

    def forward(self, x):
        y = self.conv(x)
        n, c, dev = y.shape[0], y.size()[1], x.device
        return self.fc(y.reshape(n, c, -1).to(dev).view(n, -1))


def test_sizes_and_devices_read_off_tensors_are_not_activations():
    torch.manual_seed(0)
    model, x = Sizes().eval(), torch.randn(16, 3, 4, 4)
    qm = quantize(model, QuantConfig(), x)
    assert [n.op for n in qm.nodes] == ["input", "conv", "reshape", "flatten", "linear"]
    im = to_integer(qm)
    assert (qm(x).detach() - im.run(x)).abs().max() <= im.values[im.output].scale * 1.0001


def test_macs_count_work_done_in_a_modules_own_forward():
    """The subclass has a child (its padding), so it is not a leaf: its F.conv2d must still count."""
    model = LiteBlock()
    stem = 8 * 6 * 6 * 3 * 9
    expand, dw, project, fc = 16 * 36 * 8, 16 * 36 * 9, 8 * 36 * 16, 80
    assert totals(model, (3, 12, 12)).macs == stem + expand + dw + project + fc

    class Blocks(nn.Module):  # a ModuleList iterated by its parent: counted once, not twice
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])

        def forward(self, x):
            for b in self.blocks:
                x = b(x)
            return x

    assert totals(Blocks(), (4,)).macs == 32


class Tokens(nn.Module):
    """A linear layer over the channels of every position: inputs [N, H·W, C]."""

    def __init__(self):
        super().__init__()
        self.conv, self.mix, self.fc = nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Linear(8, 6), nn.Linear(6 * 36, 10)

    def forward(self, x):
        t = F.relu(self.conv(x)).flatten(2).transpose(1, 2)
        return self.fc(F.relu(self.mix(t)).flatten(1))


def test_linear_on_three_dimensional_inputs_with_bias_correction(tmp_path):
    torch.manual_seed(0)
    model = Tokens().eval()
    x = torch.randn(48, 3, 12, 12)
    before = model.mix.bias.detach().clone()
    qm = quantize(model, QuantConfig(bias_correction=True), x)
    assert not torch.equal(qm.layers["mix"].bias.detach(), before)  # corrected, per output feature
    im = to_integer(qm)
    assert im.values["mix"].shape == [36, 6]
    assert (qm(x).detach() - im.run(x)).abs().max() <= im.values[im.output].scale * 1.0001
    _check_everywhere(model, x, im, tmp_path, "tokens")


def test_a_channel_batchnorm_nearly_switched_off_keeps_an_int32_bias():
    """Folding γ ≈ 0 leaves weights of 1e-7 beside a bias of 2: that channel gets a coarser weight scale
    instead of a bias of 2 / (s_w · s_in) ≈ 10^10 (more than int32 holds)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 64, 10))
    model.eval()
    with torch.no_grad():
        model[1].weight[2] = 1e-7
        model[1].bias[2] = 2.0
    x = torch.randn(32, 3, 8, 8)
    qm = quantize(model, QuantConfig(), x)
    im = to_integer(qm)
    assert im.arrays["0.bias"].abs().max() <= 1 << 30
    fq, ints, ref = qm(x).detach(), im.run(x), model(x).detach()
    assert (fq - ints).abs().max() <= im.values[im.output].scale * 1.0001
    assert (ref.argmax(1) == ints.argmax(1)).float().mean() >= 0.9


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.scale = nn.Linear(12, 10), nn.Parameter(torch.full((10,), 0.5))

    def forward(self, x):
        return self.fc(x.flatten(1)) * self.scale


def test_a_parameter_read_by_an_op_kept_in_float():
    """The parameter is an `aux` value (no quantizer: it is not an activation); the product runs in float."""
    torch.manual_seed(0)
    model, x = Scaled().eval(), torch.randn(16, 3, 2, 2)
    with pytest.raises(KarukuError, match=r"cannot quantize node 'mul' \(mul\)"):
        quantize(model, QuantConfig(), x)
    qm = quantize(model, QuantConfig(layer_bits={"mul": "float"}), x)
    assert [n.op for n in qm.nodes] == ["input", "flatten", "linear", "aux", "float"]
    ref = model(x).detach()
    assert (qm(x).detach() - ref).abs().max() <= 0.05 * ref.abs().max()


def test_the_parity_diagnosis_models_asymmetric_padding():
    """The pair-saturation model of export's parity check (karuku.deploy.parity) pads [top, left, bottom, right]
    as the conv does: with 7-bit weights (nothing can saturate) it reproduces the engine's stem exactly."""
    from karuku.deploy.parity import _saturation_match, _stored

    torch.manual_seed(0)
    model, x = _bn_noise(LiteBlock()).eval(), torch.randn(8, 3, 12, 12)
    im = to_integer(quantize(model, QuantConfig(target_isa="avx2"), x))
    stem = next(op for op in im.ops if op.name == "stem")
    assert stem.attrs["padding"] == [0, 0, 1, 1]
    env = im.run_all(im.quantize_input(x))
    xs, ys = (_stored(im, v, env[v]) for v in (stem.inputs[0], stem.output))
    assert _saturation_match(im, stem, xs, ys) == 1.0
