"""`karuku cluster / pack / unpack / evaluate model.krk` on tiny data; bad input is one line and exit 1."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from karuku.cli.app import app
from karuku.cli.commands import evaluate, pack  # noqa: F401  (registers the commands)
from karuku.data import DataConfig
from karuku.io.checkpoint import load_model, save_checkpoint
from karuku.models.spec import ModelSpec

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    torch.manual_seed(0)
    spec = ModelSpec(name="lenet300", input_shape=(1, 8, 8), num_classes=10)
    model = spec.build()
    with torch.no_grad():
        for m in (model.fc1, model.fc2, model.fc3):
            m.weight[m.weight.abs() < m.weight.abs().median()] = 0
    path = tmp_path_factory.mktemp("codec") / "pruned.safetensors"
    save_checkpoint(path, model, spec, {"data": DataConfig(name="digits", val_size=200).model_dump(mode="json")})
    return path


def test_cluster_pack_evaluate_unpack(pruned, tmp_path):
    shared, krk, back = tmp_path / "shared.safetensors", tmp_path / "m.krk", tmp_path / "back.safetensors"
    res = run("cluster", pruned, "--out", shared, "--bits", 4, "--layer-bits", "fc3=3", "--finetune-epochs", 1,
              "--finetune-lr", 0.001, "--quiet")
    assert res.exit_code == 0, res.output
    assert "fc3.weight 3" in res.output and "test accuracy" in res.output
    js = tmp_path / "sizes.json"
    res = run("pack", shared, "--out", krk, "--json", js)
    assert res.exit_code == 0, res.output
    sizes = json.loads(js.read_text())
    assert sizes["packed_file_bytes"] == krk.stat().st_size and sizes["ratio_file"] > 3
    res = run("evaluate", krk, "--no-latency")
    assert res.exit_code == 0, res.output
    assert "packed_file_bytes" in res.output and "test accuracy" in res.output
    res = run("unpack", krk, "--out", back)
    assert res.exit_code == 0, res.output
    a, _ = load_model(shared)
    b, ckpt = load_model(back)
    x = torch.randn(5, 1, 8, 8)
    assert torch.equal(a(x), b(x)) and ckpt.meta["cluster"]["bits"]["fc3.weight"] == 3


@pytest.mark.parametrize("args, message", [
    (("--bits", 9), "invalid --bits"),
    (("--bits", 0), "invalid --bits"),
    (("--layer-bits", "fc1=12"), "1..8"),
    (("--layer-bits", "fc1"), "bad --layer-bits"),
    (("--init", "kmeans++"), "invalid --init"),
])
def test_bad_cluster_options_are_one_line(pruned, tmp_path, args, message):
    res = run("cluster", pruned, "--out", tmp_path / "x.safetensors", *args)
    assert res.exit_code == 1 and message in res.output and len(res.output.strip().splitlines()) == 1


def test_pack_of_a_missing_or_hostile_file_is_one_line(tmp_path):
    res = run("pack", tmp_path / "nope.safetensors", "--out", tmp_path / "m.krk")
    assert res.exit_code == 1 and "not found" in res.output
    bad = tmp_path / "bad.krk"
    bad.write_bytes(b"\x89KRK\r\n\x1a\n" + b"\x00" * 60)
    for cmd in (("unpack", bad, "--out", tmp_path / "c.safetensors"), ("evaluate", bad, "--no-latency")):
        res = run(*cmd)
        assert res.exit_code == 1 and "error:" in res.output and len(res.output.strip().splitlines()) == 1
