"""The C project on CMSIS-NN kernels: byte-identical to the integer engine on the host and on QEMU Cortex-M4.

CMSIS-NN is Arm's library, not karuku's: the tests build it from a copy at ../shared/vendor/CMSIS-NN (beside
the repository; CI has it there) or $KARUKU_CMSIS_NN. Without it the tests that need it are skipped with the
place they looked, and under CI (CI=true) they fail instead: a missing copy must not pass as green.
"""

import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from helpers.edgenets import EdgeNet, integer_engine
from karuku.deploy.c import toolchain
from karuku.deploy.c.cmsis import check_cmsis_nn, cmsis_check, generate_cmsis
from karuku.deploy.tflite.verify import expected, to_tflite
from karuku.errors import KarukuError
from karuku.quant import QuantConfig, quantize, to_integer

ROOT = Path(__file__).resolve().parents[1]
PLACES = [Path(p) for p in (os.environ.get("KARUKU_CMSIS_NN"), ROOT.parent / "shared/vendor/CMSIS-NN",
                            Path("/work/shared/vendor/CMSIS-NN")) if p]


@pytest.fixture(scope="module")
def cmsis() -> Path:
    for place in PLACES:
        if (place / "Include/arm_nnfunctions.h").is_file():
            return place
    msg = f"CMSIS-NN not found (looked in {', '.join(map(str, PLACES))}); set KARUKU_CMSIS_NN to a CMSIS-NN checkout"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)



@pytest.mark.parametrize("rounding", ["single", "double"])
def test_cmsis_nn_project_is_the_engine_on_the_host(cmsis, tmp_path, rounding):
    for i, (model, shape) in enumerate([(EdgeNet(True), (3, 8, 8)), (EdgeNet(False), (3, 8, 8)),
                                        (nn.Sequential(nn.ReLU(), nn.Linear(20, 16), nn.ReLU6(), nn.Linear(16, 7)),
                                         (20,)),
                                        (nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten()), (2, 5, 5))]):
        im, x = integer_engine(model, shape, rounding=rounding)
        proj = generate_cmsis(im, f"m{i}", cmsis)
        assert cmsis_check(im, proj, x, tmp_path / f"m{i}") == 32
        assert ("CMSIS_NN_USE_SINGLE_ROUNDING" in proj.library.defines) == (rounding == "single")
    assert "arm_transpose_s8" in proj.files["m3.c"]  # a flatten that is the output reorders at run time


def test_cmsis_nn_project_takes_token_ids_as_int32(cmsis, tmp_path):
    from helpers.usermodels import token_flat

    g = torch.Generator().manual_seed(0)
    ids, mask = torch.randint(0, 32, (64, 12), generator=g), (torch.rand(64, 12, generator=g) > 0.3).long()
    im = to_integer(quantize(token_flat().eval(), QuantConfig(observer="minmax", target_isa="avx512-vnni"),
                             (ids, mask)))
    proj = generate_cmsis(im, "tokens", cmsis)
    assert cmsis_check(im, proj, (ids, mask), tmp_path) == 64  # every byte, as the .tflite computes them
    assert ("int karuku_tokens_run(const int32_t *in_input_ids, const int32_t *in_attention_mask, int8_t *out);"
            in proj.files["tokens.h"])
    assert "kk_gather_rows(in_input_ids" in proj.files["tokens.c"] and "kk_tokens.inc" in proj.files


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs gcc-arm-none-eabi and qemu-system-arm (see .ci/run)")
def test_cmsis_nn_project_is_the_engine_on_cortex_m4(cmsis, tmp_path):
    im, x = integer_engine(EdgeNet(True), (3, 8, 8))
    proj = generate_cmsis(im, "net", cmsis)
    build = toolchain.build_mcu(proj, tmp_path, gc_sections=True)
    q = im.quantize_input(x)
    out, ticks = toolchain.run(build, to_tflite(im, q).view(np.uint8))
    assert np.array_equal(out, expected(im, q).view(np.uint8)) and ticks > 0
    mem = toolchain.memory_from_map(build.map_file, ("m4_net.o", "m4_karuku_cmsis.o", "libcmsisnn.a("))
    lib = toolchain.memory_from_map(build.map_file, ("libcmsisnn.a(",))
    assert 0 < lib["flash_bytes"] < mem["flash_bytes"]


def test_a_folder_that_is_not_cmsis_nn_is_one_line(tmp_path):
    (tmp_path / "Include").mkdir()
    with pytest.raises(KarukuError, match=r"is not CMSIS-NN \(Include/arm_nnfunctions.h is missing\)"):
        check_cmsis_nn(tmp_path)


def test_grouped_convolution_and_windowed_average_pool(cmsis, tmp_path):
    """arm_convolve_s8 with 2 groups; an average pool over padded windows as a depthwise convolution of ones."""
    model = nn.Sequential(nn.Conv2d(4, 8, 3), nn.Conv2d(8, 8, 3, groups=2), nn.AvgPool2d(3, 2, 1), nn.Flatten())
    im, x = integer_engine(model, (4, 7, 7))
    proj = generate_cmsis(im, "g", cmsis)
    assert cmsis_check(im, proj, x, tmp_path) == 32
    assert proj.files["g.c"].count("arm_convolve_wrapper_s8(") == 2 and "op2_ones" in proj.files["g.c"]


@pytest.mark.slow
def test_every_new_op_on_cmsis_nn(cmsis, tmp_path):
    """The ops models (concatenation, tables, pools, movement) on the host, and the one with all of them on a
    Cortex-M4 under QEMU: every byte the engine's."""
    from test_quant_ops import MODELS, _quantized

    calls = ""
    for name in MODELS:
        _, _, im, x = _quantized(name, 48)
        proj = generate_cmsis(im, name, cmsis)
        assert cmsis_check(im, proj, x[:16], tmp_path / name) == 16, name
        calls += proj.files[f"{name}.c"]
    assert all(f in calls for f in ("arm_concatenation_s8_", "kc_concat_lut_s8(", "kc_lut_s8(", "arm_pad_s8(",
                                    "arm_transpose_s8(", "kc_upsample_s8(", "op1_ones"))
    if shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc"):
        q = im.quantize_input(x[:4])
        out, _ = toolchain.run(toolchain.build_mcu(proj, tmp_path / "m4"), to_tflite(im, q).view(np.uint8))
        assert np.array_equal(out, expected(im, q).view(np.uint8))


def test_an_op_without_a_kernel_is_named_with_the_layer(cmsis):
    im, _ = integer_engine(nn.Sequential(nn.Conv2d(4, 8, 3), nn.MaxPool2d(2)), (4, 7, 7))
    im.ops[1] = replace(im.ops[1], kind="softmax")
    with pytest.raises(KarukuError, match=r"no kernel for op 'softmax' \(layer '1'\)"):
        generate_cmsis(im, "g", cmsis)


def test_onnxruntime_rule_is_refused_before_cmsis_nn_is_built(tmp_path):
    """ONNX Runtime's float32 rule is not CMSIS-NN's fixed point: one line, before the library is looked at."""
    from dataclasses import replace

    im, _ = integer_engine(nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten()), (2, 5, 5))
    with pytest.raises(KarukuError, match=r"CMSIS-NN requantizes in fixed point; this integer model uses rule "
                                          r"'onnxruntime' \(convert it with one of: single, double\)"):
        generate_cmsis(replace(im, rounding="onnxruntime"), "m", tmp_path / "no-cmsis-here")


def test_cli_export_c_on_cmsis_nn(cmsis, tmp_path):
    from typer.testing import CliRunner

    from karuku.cli import commands  # noqa: F401  (registers the commands)
    from karuku.cli.app import app
    from karuku.models import ModelSpec
    from karuku.quant import save_quantized

    spec = ModelSpec(name="lenet300", input_shape=(1, 28, 28), num_classes=10)
    torch.manual_seed(0)
    model = spec.build().eval()
    q = save_quantized(tmp_path / "q.safetensors", quantize(model, QuantConfig(), torch.randn(64, 1, 28, 28)), spec)
    out = tmp_path / "proj"
    runner = CliRunner()
    res = runner.invoke(app, ["export", str(q), "--format", "c", "--kernels", "cmsis-nn", "--cmsis-nn", str(cmsis),
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "identical to the integer engine" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "karuku_cmsis.c", "karuku_cmsis.h", "kk_tokens.h",
                                                     "kk_tokens.inc", "lenet300.c", "lenet300.h"]  # no CMSIS-NN
    res = runner.invoke(app, ["export", str(q), "--format", "c", "--kernels", "cmsis-nn", "--cmsis-nn", str(tmp_path)])
    assert res.exit_code == 1 and "is not CMSIS-NN" in res.output
    res = runner.invoke(app, ["export", str(q), "--format", "c", "--kernels", "cmsis-nn"])
    assert res.exit_code == 1 and "--cmsis-nn DIR" in res.output
