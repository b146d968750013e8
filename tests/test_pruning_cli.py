"""`karuku prune` and `karuku sensitivity` end to end on tiny MNIST-shaped data."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import karuku.cli.commands  # noqa: F401,E402  (registers the commands)
from karuku.cli.app import app
from karuku.data import DataConfig
from karuku.io.checkpoint import load_checkpoint, load_model, save_checkpoint
from karuku.pruning import Mask
from karuku.training import TrainConfig
from karuku.training.job import train_checkpoint

runner = CliRunner()


@pytest.fixture(scope="module")
def ckpt(idx_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "lenet300.safetensors"
    train_checkpoint("lenet300", TrainConfig(epochs=2, batch_size=100, lr=0.1), path,
                     DataConfig(name="idx", path=str(idx_dir), val_size=100), verbose=False)
    return path


def _run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def test_unstructured_prune_with_finetune(ckpt, tmp_path):
    out = tmp_path / "p.safetensors"
    code, text = _run("prune", ckpt, "--sparsity", "0.8", "--scope", "global", "--finetune-epochs", "1",
                      "--finetune-batch-size", "100", "--quiet", "--runs", "3", "--out", out,
                      "--json", tmp_path / "f.json")
    assert code == 0, text
    assert "no speed-up" in text and "MACs effective" in text and "fc1" in text
    model, ck = load_model(out)
    mask = Mask.from_section(ck.sections["mask"])
    assert mask.sparsity == pytest.approx(0.8, abs=1e-5)
    assert all(bool((dict(model.named_parameters())[n][~m] == 0).all()) for n, m in mask.items())
    figures = json.loads((tmp_path / "f.json").read_text())
    assert figures["after"]["latency"]["onnxruntime"]["b64_per_s"] > 0
    assert json.loads(out.with_suffix(".mask.json").read_text())["sparsity"] == pytest.approx(0.8, abs=1e-5)


def test_iterative_then_structured_rebuilds(ckpt, tmp_path):
    out = tmp_path / "s.safetensors"
    code, text = _run("prune", ckpt, "--structured", "--target", "macs", "--sparsity", "0.5",
                      "--schedule", "iterative:2", "--finetune-epochs", "1", "--finetune-batch-size", "100", "--quiet",
                      "--no-latency", "--out", out)
    assert code == 0, text
    assert "physically smaller" in text
    model, ck = load_model(out)
    assert len(ck.meta["transforms"]) == 2 and model.fc1.out_features < 300
    assert ck.meta["pruning"]["config"]["structured"] is True


@pytest.mark.parametrize("args,msg", [
    (["--sparsity", "1.5"], "invalid --sparsity"),
    (["--override", "nope=0.5"], "override pattern 'nope' matches no layer"),
    (["--override", "fc1"], "bad --override 'fc1'"),
    (["--exclude", "fc*"], "every prunable layer is excluded"),
    (["--schedule", "iterative:3"], "add fine-tuning: PruneConfig(finetune=TrainConfig(...)), or --finetune-epochs N"),
    (["--schedule", "sometimes"], "invalid --schedule"),
    (["--method", "largest"], "unknown pruning method 'largest'"),
    (["--structured", "--method", "l3"], "unknown structured method 'l3'"),
    (["--structured", "--allocation", "budget"], "allocation=budget needs structured pruning with target=macs"),
])
def test_bad_input_is_one_line(ckpt, tmp_path, args, msg):
    code, text = _run("prune", ckpt, "--no-latency", "--out", tmp_path / "x.safetensors", *args)
    assert code == 1 and msg in text, text
    assert text.strip().count("\n") == 0


def test_mask_that_does_not_fit(ckpt, tmp_path):
    model, ck = load_model(ckpt)
    bad = tmp_path / "bad.safetensors"
    save_checkpoint(bad, model, ck.spec, {"data": ck.meta["data"]},
                    sections={"mask": {"fc1.weight": torch.ones(3, 3, dtype=torch.bool)}})
    code, text = _run("prune", bad, "--no-latency", "--out", tmp_path / "y.safetensors")
    assert code == 1 and "does not fit the model: shape fc1.weight (3, 3)≠(300, 784)" in text, text


def test_sensitivity_command(ckpt, tmp_path):
    code, text = _run("sensitivity", ckpt, "--rates", "0.5,0.9,0.99", "--target", "0.9", "--out", tmp_path / "s")
    assert code == 0, text
    assert "--override fc1=" in text
    table = (tmp_path / "s" / "sensitivity.md").read_text()
    assert "| fc1 | 235,200 |" in table
    assert (tmp_path / "s" / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"
    code, text = _run("sensitivity", ckpt, "--rates", "0.5,x", "--out", tmp_path / "s")
    assert code == 1 and "invalid --rates" in text


def test_checkpoint_meta_keeps_the_data(ckpt, tmp_path):
    out = tmp_path / "q.safetensors"
    code, text = _run("prune", ckpt, "--sparsity", "0.5", "--no-latency", "--out", out)
    assert code == 0, text
    assert load_checkpoint(out).meta["data"]["name"] == "idx"
