"""The operators users' CNNs have, through every form karuku writes: the fake-quant model, the integer engine,
the int8 QDQ ONNX (fused by ONNX Runtime) and the generated C (gcc on the host, Cortex-M4 under QEMU)."""

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
from karuku.quant import QuantConfig, export_qdq, quantize, to_integer
from karuku.quant.engine import ops
from karuku.quant.engine.convert import byte_values, table
from karuku.quant.engine.graph import Value
from karuku.quant.unary import UNARY, apply


class Concat(nn.Module):
    """Branches on different scales joined by torch.cat (channels), then a conv and adaptive pooling."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 6, 1)
        self.mix = nn.Conv2d(13, 8, 3, padding=1, groups=1)
        self.pool, self.fc = nn.AdaptiveAvgPool2d(2), nn.Linear(32, 10)

    def forward(self, x):
        a, b = F.relu(self.a(x)), self.b(x)
        y = torch.cat([a, b, x], dim=1)
        return self.fc(torch.flatten(self.pool(F.relu(self.mix(y))), 1))


class Pools(nn.Module):
    """Average pooling with padding, functional pooling, a spatial mean without kept dimensions."""

    def __init__(self):
        super().__init__()
        self.conv, self.avg = nn.Conv2d(3, 8, 3, padding=1), nn.AvgPool2d(3, 1, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        y = self.avg(F.relu(self.conv(x)))
        y = F.avg_pool2d(y, 2)
        g = F.adaptive_avg_pool2d(y, 1).flatten(1)
        return self.fc(torch.cat([g, y.mean((2, 3))], 1))


class Activations(nn.Module):
    """Every table activation, in module and functional forms, between convolutions."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 1)
        self.hs, self.lrelu, self.fc = nn.Hardswish(), nn.LeakyReLU(0.1), nn.Linear(8 * 4, 10)

    def forward(self, x):
        y = self.hs(self.c1(x))
        y = torch.sigmoid(self.c2(y))
        y = F.hardsigmoid(self.c3(y)) + torch.tanh(y)
        y = F.silu(y)
        y = F.gelu(self.lrelu(y))
        return self.fc(F.adaptive_avg_pool2d(y, 2).flatten(1))


class Movement(nn.Module):
    """Channel shuffle (module, and view + transpose), permute, nearest upsampling, zero padding, reshape."""

    def __init__(self):
        super().__init__()
        self.conv, self.shuffle = nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ChannelShuffle(2)
        self.up, self.pad = nn.Upsample(scale_factor=2), nn.ZeroPad2d((1, 0, 2, 1))
        self.fc = nn.Linear(8 * 7 * 6, 10)

    def forward(self, x):
        y = self.shuffle(F.relu(self.conv(x)))
        n, c, h, w = y.shape
        y = y.view(n, 4, c // 4, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
        y = self.up(y).permute(0, 1, 3, 2)
        y = F.interpolate(F.max_pool2d(self.pad(y), 2), scale_factor=2, mode="nearest")
        y = F.avg_pool2d(y, 2).reshape(n, c, -1)
        return self.fc(y.flatten(1))


class TableOnly(nn.Module):
    """No multiply-accumulate at all: tables, concatenation and data movement. ONNX Runtime computes these
    exactly as the engine on every CPU (no products that could saturate, no float rounding)."""

    def forward(self, x):
        y = torch.cat([F.hardswish(x), torch.tanh(x), x], 1)
        y = nn.functional.pad(y, [1, 0, 0, 1])
        n, c, h, w = y.shape
        y = y.view(n, 3, c // 3, h, w).transpose(1, 2).reshape(n, c, h, w)
        y = F.interpolate(F.max_pool2d(y, 2), scale_factor=2)
        return F.silu(torch.flatten(y.permute(0, 2, 3, 1), 1))


class AllOps(nn.Module):
    """Every new op in one small model (for the Cortex-M4 run): TF "same" stem padding, hard-swish, a depthwise
    residual block, sigmoid / tanh, concatenation, channel shuffle, padded and plain average pooling, nearest
    upsampling, hard-sigmoid, zero padding before max pooling, adaptive pooling 4 → 2, SiLU."""

    def __init__(self):
        super().__init__()
        self.pad, self.stem, self.bn = nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8)
        self.dw, self.pw = nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 8, 1)
        self.branch, self.shuffle = nn.Conv2d(8, 4, 3, padding="same"), nn.ChannelShuffle(4)
        self.avg, self.up, self.down = nn.AvgPool2d(3, 1, 1), nn.Upsample(scale_factor=2), nn.Conv2d(12, 12, 2, 2)
        self.apool, self.fc = nn.AdaptiveAvgPool2d(2), nn.Linear(48, 10)

    def forward(self, x):
        x = F.hardswish(self.bn(self.stem(self.pad(x))))
        y = self.pw(F.relu(self.dw(x))) + x
        c = self.shuffle(torch.cat([y, torch.tanh(torch.sigmoid(self.branch(y)))], 1))
        c = self.up(F.avg_pool2d(self.avg(c), 2))
        c = F.max_pool2d(F.pad(F.hardsigmoid(self.down(c)), [1, 1, 1, 1]), 3, 1)
        return self.fc(F.silu(torch.flatten(self.apool(c), 1)))


MODELS = {"concat": Concat, "pools": Pools, "activations": Activations, "movement": Movement,
          "tables": TableOnly, "all": AllOps}


def _quantized(name: str, n: int = 64):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    x = torch.randn(n, 3, 16 if name == "all" else 12, 16 if name == "all" else 12)
    qm = quantize(model, QuantConfig(), x)
    return model, qm, to_integer(qm), x


@pytest.fixture(scope="module")
def quantized():
    return {name: _quantized(name) for name in MODELS}


@pytest.mark.parametrize("name", list(MODELS))
def test_engine_agrees_with_the_fake_quant_model(quantized, name):
    model, qm, im, x = quantized[name]
    kinds = {o.kind for o in im.ops}
    want = {"concat": {"concat", "avgpool2d"}, "pools": {"avgpool2d", "concat", "flatten"},
            "activations": {"lut"}, "movement": {"reshape", "transpose", "upsample", "pad"},
            "tables": {"lut", "concat", "pad", "transpose", "upsample"},
            "all": {"lut", "concat", "pad", "transpose", "upsample", "reshape", "avgpool2d", "add"}}[name]
    assert want <= kinds, kinds
    fq, ints = qm(x).detach(), im.run(x)
    step = im.values[im.output].scale
    assert (fq - ints).abs().max() <= step * 1.0001  # within one quantization step everywhere
    assert (fq.argmax(1) == ints.argmax(1)).float().mean() >= 0.98
    q = im.quantize_input(x)
    assert torch.equal(im.run_int(q), im.run_int(q, fast=True))
    ref = model(x).detach()
    assert (ref - fq).abs().mean() <= 0.1 * ref.abs().mean()  # and the fake-quant model is close to float


def test_tables_are_the_fake_quant_model_exactly():
    """Every one of the 256 inputs of each activation, and of a requantizing copy, lands on the integer the
    fake-quant model computes (dequantize, the function in float32, quantize)."""
    from karuku.quant.fakequant import ste_fake_quant

    for dtype, zp in (("uint8", 100), ("int8", -7)):
        vin, vout = Value([1], dtype, zp, 0.043), Value([1], dtype, zp // 2, 0.0211)
        lo, hi = (0, 255) if dtype == "uint8" else (-128, 127)
        x = (byte_values(dtype) - zp).float() * torch.tensor(vin.scale)
        for name in UNARY:
            fn = lambda v, name=name: apply(name, v, {"slope": 0.1})  # noqa: E731
            want = ste_fake_quant(fn(x), torch.tensor(vout.scale), torch.tensor(float(vout.zero_point)), lo, hi)
            got = (table(vin, vout, fn) - vout.zero_point).float() * vout.scale
            assert torch.equal(got, want), name
        got = ops.concat([byte_values(dtype)], [table(vin, vout)], 0)
        want = ste_fake_quant(x, torch.tensor(vout.scale), torch.tensor(float(vout.zero_point)), lo, hi)
        assert torch.equal((got - vout.zero_point).float() * vout.scale, want)


def test_data_movement_ops_are_torch_on_the_integers():
    x = torch.randint(-128, 128, (2, 6, 3, 4), dtype=torch.int32)
    assert torch.equal(ops.transpose(x, [2, 0, 1]), x.permute(0, 3, 1, 2))
    assert torch.equal(ops.upsample(x, [2, 3]), F.interpolate(x.float(), scale_factor=(2, 3)).int())
    assert torch.equal(ops.pad(x, [1, 0, 2, 3], -5), F.pad(x, (0, 3, 1, 2), value=-5))
    assert torch.equal(ops.reshape(x, [3, 2, 12]), x.reshape(2, 3, 2, 12))
    table_ = torch.arange(256, dtype=torch.int32).flip(0)
    assert torch.equal(ops.lut(x, table_), 255 - (x & 0xFF))  # indexed by the byte: -1 is entry 255


def _ort(data: bytes, level, tmp_path=None):
    so = ort.SessionOptions()
    so.graph_optimization_level = level
    so.intra_op_num_threads = 1
    if tmp_path is not None:
        so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", list(MODELS))
def test_int8_onnx_fuses_into_int8_kernels_and_agrees(quantized, name, tmp_path):
    _, _, im, x = quantized[name]
    data = export_qdq(im)
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    _ort(data, ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, tmp_path)
    fused = collections.Counter(n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node)
    # nothing is left in float: one QuantizeLinear at the input, one DequantizeLinear at the output
    assert fused["QuantizeLinear"] == 1 and fused["DequantizeLinear"] == 1, fused
    assert not {"Conv", "Concat", "AveragePool", "GlobalAveragePool", "Sigmoid", "Gemm", "Add"} & set(fused), fused
    want = {"concat": {"QLinearConcat", "QLinearAveragePool", "QLinearConv", "QGemm"},
            "pools": {"QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearConcat"},
            "activations": {"QLinearSigmoid", "QLinearLeakyRelu", "Gather", "QLinearAdd"},
            "movement": {"Transpose", "Resize", "Pad", "Reshape", "MaxPool"},
            "tables": {"QLinearConcat", "Gather", "Transpose", "Resize", "Pad"},
            "all": {"QLinearConcat", "QLinearSigmoid", "QLinearAveragePool", "Gather", "Pad", "QLinearAdd"}}[name]
    assert want <= set(fused), fused
    eng = im.run(x, fast=True).numpy()
    step = im.values[im.output].scale
    # unfused (float arithmetic on the dequantized integers, the same on every CPU): the engine to within the
    # rounding of float sums and of ties (ONNX rounds ties to even, the engine up: "movement" and "all" average
    # 2×2 windows of upsampled, equal values, whose means land on ties: 8-11 % of their logits are a step apart)
    basic = _ort(data, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC).run(None, {"input": x.numpy()})[0]
    assert np.abs(basic - eng).max() <= step * 1.0001
    assert (np.abs(basic - eng) < step / 2).mean() >= 0.85
    assert (basic.argmax(1) == eng.argmax(1)).mean() >= 0.98
    if name == "tables":  # no products to saturate and no float rounding: the int8 kernels are the engine
        fast = _ort(data, ort.GraphOptimizationLevel.ORT_ENABLE_ALL).run(None, {"input": x.numpy()})[0]
        assert np.array_equal(fast, eng)


def test_generated_c_is_byte_identical_for_every_new_op(quantized, tmp_path):
    """Every model on the host (gcc -Werror), the float builds too; the one with all the ops on a Cortex-M4."""
    for name, (model, _, im, x) in quantized.items():
        proj = generate(im, name)
        q = im.quantize_input(x)
        out, _ = toolchain.run(toolchain.build_host(proj, tmp_path / name), to_bytes(q))
        assert np.array_equal(out, to_bytes(im.run_int(q))), name
        fout, _ = toolchain.run(toolchain.build_host(proj, tmp_path / f"{name}_f", float_build=True), x.numpy())
        ref = model(x).detach().numpy()  # the float build: the float graph, weights as the int8 build has them
        assert np.abs(fout - ref).mean() <= 0.05 * np.abs(ref).mean(), name
    _, _, im, x = quantized["all"]
    q = im.quantize_input(x[:4])
    m4, _ = toolchain.run(toolchain.build_mcu(generate(im, "all"), tmp_path / "m4"), to_bytes(q))
    assert np.array_equal(m4, to_bytes(im.run_int(q)))


def test_module_functional_and_method_forms_are_the_same_op():
    from karuku.quant.fuse import trace

    forms = {"module": nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
             "function": lambda x: torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1),
             "method": lambda x: x.mean((-1, -2)), "torch": lambda x: torch.mean(x, dim=[2, 3])}
    for name, form in forms.items():
        body = form if isinstance(form, nn.Module) else _Wrap(form)
        ops_ = [(n.op, n.attrs.get("global")) for n in trace(body, torch.randn(2, 4, 5, 5))]
        assert ops_ == [("input", None), ("avgpool", True), ("flatten", None)], (name, ops_)


class _Wrap(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


@pytest.mark.parametrize("body, needle", [
    (lambda x: F.adaptive_avg_pool2d(x, 4), r"node 'adaptive_avg_pool2d' \(adaptive_avg_pool2d\)"),  # unequal
    (lambda x: F.interpolate(x, scale_factor=1.5), r"node 'interpolate' \(interpolate\)"),
    (lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"), r"node 'interpolate'"),
    (lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False), r"node 'avg_pool2d'"),
    (lambda x: F.pad(x, [1, 1, 1, 1], value=1.0), r"node 'pad'"),
    (lambda x: x.transpose(0, 1), r"node 'transpose'"),  # moves the batch
    (lambda x: torch.cat([x, x], 0), r"node 'cat'"),  # along the batch
])
def test_what_has_no_integer_form_is_named_at_quantize_time(body, needle):
    with pytest.raises(KarukuError, match=needle + ".*no integer form"):
        quantize(_Wrap(body), QuantConfig(calibration=8), torch.randn(8, 3, 6, 6))


def test_a_users_cnn_quantizes_and_exports_to_int8_onnx_and_c(tmp_path, idx_dir):
    """The command line, as the new user went: train, quantize (PTQ), export int8 ONNX and C."""
    from typer.testing import CliRunner

    import karuku.cli.commands  # noqa: F401  (registers the commands)
    from karuku.cli.app import app

    def run(*args):
        res = CliRunner().invoke(app, [str(a) for a in args])
        assert res.exit_code == 0, res.output
        return res.output

    ckpt, q = tmp_path / "branchy.safetensors", tmp_path / "branchy.q.safetensors"
    run("train", "--model", "helpers.usermodels:branchy", "--data", "idx", "--data-path", idx_dir,
        "--data-val-size", 100, "--epochs", 2, "--lr", 0.05, "--batch-size", 32, "--out", ckpt, "--quiet")
    run("quantize", ckpt, "--data-path", idx_dir, "--calibration", 128, "--out", q)
    out = run("export", q, "--int8", "--out", tmp_path / "b.onnx")
    assert "int8 QDQ ONNX" in out and (tmp_path / "b.onnx").is_file()
    out = run("export", q, "--format", "c", "--out", tmp_path / "c")
    assert "identical to the integer engine" in out and list((tmp_path / "c").glob("*.c"))


def test_int8_activations_are_stored_shifted_and_the_tables_follow():
    """int8 engine values travel in the file as uint8 (v + 128): the Gather tables and the padding value are
    re-indexed and re-encoded to match, so ONNX Runtime still computes the engine's integers exactly."""
    torch.manual_seed(0)
    x = torch.randn(32, 3, 12, 12)
    im = to_integer(quantize(TableOnly().eval(), QuantConfig(act_dtype="int8"), x))
    assert {v.dtype for v in im.values.values()} == {"int8"}
    data = export_qdq(im)
    got = _ort(data, ort.GraphOptimizationLevel.ORT_ENABLE_ALL).run(None, {"input": x.numpy()})[0]
    assert np.array_equal(got, im.run(x).numpy())
