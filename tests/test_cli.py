"""The command line: real commands on tiny data; bad input is one line and a non-zero exit."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from karuku.cli.app import app
from karuku.cli.commands import data  # noqa: F401  (registers the commands)

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, idx_dir):
    out = tmp_path_factory.mktemp("cli") / "lecun.safetensors"
    res = run("train", "--model", "lenet5-lecun", "--data", "idx", "--data-path", idx_dir, "--data-val-size", 100,
              "--epochs", 2, "--lr", 0.05, "--batch-size", 32, "--out", out)
    assert res.exit_code == 0, res.output
    return out, res


def test_train_writes_a_checkpoint_and_reports(trained):
    out, res = trained
    assert "test accuracy" in res.output and out.is_file()
    assert not out.with_name(out.name + ".state").exists()


def test_evaluate_prints_the_table_and_json(trained, tmp_path, idx_dir):
    out, _ = trained
    js = tmp_path / "ev.json"
    res = run("evaluate", out, "--data-path", idx_dir, "--json", js, "--runs", 3)
    assert res.exit_code == 0, res.output
    for label in ("test accuracy", "MACs / sample", "onnxruntime latency b1", "energy / inference"):
        assert label in res.output
    doc = json.loads(js.read_text())
    assert doc["params"] == 61_706 and doc["total"] == 200 and doc["latency"]["torch"]["b1_median_ms"] > 0


def test_user_model_by_import_path(tmp_path, idx_dir):
    out = tmp_path / "tiny.safetensors"
    res = run("train", "--model", "helpers.usermodels:tiny", "--model-arg", "width=7", "--data", "idx",
              "--data-path", idx_dir, "--data-val-size", 100, "--epochs", 1, "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    res = run("evaluate", out, "--data-path", idx_dir, "--no-latency")
    assert res.exit_code == 0 and "5,575" in res.output  # 784*7+7 + 7*10+10


@pytest.mark.parametrize("args, needle", [
    (["train", "--model", "lenet3000", "--out", "{tmp}/x.safetensors"], "unknown model 'lenet3000'; did you mean"),
    (["train", "--model", "lenet300", "--data", "cifar", "--out", "{tmp}/x.safetensors"], "unknown dataset 'cifar'"),
    (["train", "--model", "lenet300", "--epochs", "-1", "--out", "{tmp}/x.safetensors"],
     "invalid --epochs: Input should be greater than or equal to 0"),
    (["train", "--model", "lenet300", "--optimizer", "rmsprop", "--out", "{tmp}/x.safetensors"],
     "invalid --optimizer"),
    (["train", "--model", "pkg_that_is_not.here:f", "--out", "{tmp}/x.safetensors"], "cannot import"),
    (["train", "--model", "lenet300", "--out", "/proc/karuku/x.safetensors"], "cannot create folder"),
    (["evaluate", "{tmp}/missing.safetensors"], "not found"),
    (["evaluate", "{tmp}/garbage.safetensors"], "not a readable safetensors checkpoint"),
    (["data", "fetch", "imagenet"], "unknown dataset 'imagenet'"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, needle):
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 64)
    res = run(*[a.format(tmp=tmp_path) for a in args])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "x.safetensors").exists()


def test_the_wrong_dataset_for_a_checkpoint(trained):
    out, _ = trained
    res = run("evaluate", out, "--data", "digits", "--no-latency")
    assert res.exit_code == 1 and "expects (1, 28, 28)" in res.output


def test_debug_shows_the_traceback(tmp_path):
    res = runner.invoke(app, ["--debug", "evaluate", str(tmp_path / "missing.safetensors")])
    assert res.exit_code == 1 and res.exception is not None and "not found" in str(res.exception)


def test_lists():
    res = run("data", "list")
    assert res.exit_code == 0 and "mnist1d" in res.output and "digits" in res.output
    res = run("models")
    assert res.exit_code == 0 and "431,080" in res.output and "266,610" in res.output


def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "karuku", "train", "--epochs", "-1", "--model", "x", "--out", "y"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.startswith("error: invalid --epochs")
