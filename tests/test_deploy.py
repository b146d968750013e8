"""fp32 ONNX export with parity, ONNX Runtime bench, device profiles."""

import onnx
import pytest
from typer.testing import CliRunner

from karuku.cli import commands  # noqa: F401  (registers the commands)
from karuku.cli.app import app
from karuku.deploy.bench import bench_onnx
from karuku.errors import KarukuError
from karuku.io.checkpoint import save_checkpoint
from karuku.measure.profiles import PROFILES, check_fit, get_profile
from karuku.models import ModelSpec

runner = CliRunner()


@pytest.fixture
def ckpt(tmp_path):
    spec = ModelSpec(name="lenet5-lecun", input_shape=(1, 28, 28), num_classes=10)
    return save_checkpoint(tmp_path / "m.safetensors", spec.build(), spec)


def test_export_onnx_checks_parity_and_bench_reads_it(ckpt, tmp_path):
    out = tmp_path / "m.onnx"
    res = runner.invoke(app, ["export", str(ckpt), "--format", "onnx", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "parity with PyTorch" in res.output and "≤ 1e-4" in res.output
    onnx.checker.check_model(onnx.load(str(out)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.safetensors"]  # no .data file
    rows = bench_onnx(out, threads=1, runs=3)
    assert [r["batch"] for r in rows] == [1, 64] and all(r["per_s"] > 0 for r in rows)
    res = runner.invoke(app, ["bench", str(out), "--runs", "3"])
    assert res.exit_code == 0 and "samples/s" in res.output


def test_export_c_of_a_float_checkpoint_says_what_to_run_first(ckpt):
    res = runner.invoke(app, ["export", str(ckpt), "--format", "c"])
    assert res.exit_code == 1 and "karuku quantize" in res.output


def test_bench_rejects_what_is_not_onnx(tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(KarukuError, match="not a loadable ONNX model"):
        bench_onnx(bad)


def test_profiles_fit_with_numbers():
    m4 = get_profile("mcu-m4")
    ok = check_fit(m4, weight_bytes=100_000, activation_bytes=10_000)
    assert ok.fits and "≤ flash" in ok.reasons[0]
    big = check_fit(m4, weight_bytes=2_000_000, activation_bytes=300_000)
    assert not big.fits and "> flash" in big.reasons[0] and "> RAM" in big.reasons[1]
    phone = check_fit(PROFILES["phone"], weight_bytes=2_000_000, activation_bytes=300_000)
    assert phone.fits and "weights + peak activations" in phone.reasons[1]
    with pytest.raises(KarukuError, match="unknown device profile 'mcu-m9'; did you mean 'mcu-m7'"):
        get_profile("mcu-m9")


def test_evaluate_with_a_profile(ckpt):
    res = runner.invoke(app, ["evaluate", str(ckpt), "--profile", "mcu-m4", "--no-latency"])
    assert res.exit_code == 0, res.output
    assert "fits mcu-m4" in res.output and "yes: weights" in res.output
    assert "196.6 KB on-chip" in res.output  # the profile's SRAM drives the energy estimate
