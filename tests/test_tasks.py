"""Tasks as the quality measure: the built-in measures exactly, a user's metric, budgets in the task's terms, and
a model that is not a classifier (an embedding model on unlabelled data) through prune → quantize → export,
judged by its fidelity to the uncompressed model."""

from __future__ import annotations

import json
import textwrap
import uuid

import pytest
import torch
import yaml

from karuku.errors import KarukuError
from karuku.measure.config import MeasureConfig
from karuku.tasks import TASKS, TaskConfig, measure_task


def test_builtin_measures_are_exact_sums():
    logits = torch.tensor([[3.0, 1, 2, 0, -1, -2], [0, 5, 1, 2, 3, 4], [1, 2, 3, 4, 5, 6]])
    y = torch.tensor([0, 2, 0])
    got = TASKS["classification"].measure(logits, y, None)
    assert got["top1"] == 1 and got["top5"] == 2  # the third's label is its lowest logit: outside its top 5
    assert got["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, y, reduction="sum")))
    reg = TASKS["regression"].measure(torch.tensor([[1.0, 2], [0, 0]]), torch.tensor([[1.0, 0], [3, -1]]), None)
    assert reg == {"mse": pytest.approx(2.0 + 5.0), "mae": pytest.approx(1.0 + 2.0)}
    fid = TASKS["fidelity"].measure(torch.tensor([[1.0, 0], [0, 2]]), None, torch.tensor([[2.0, 0], [1, 0]]))
    assert fid == {"cosine": pytest.approx(1.0), "agreement": 1.0}
    with pytest.raises(KarukuError, match="label 7 is out of range for a model with 6 outputs"):
        TASKS["classification"].measure(logits, torch.tensor([0, 7, 1]), None)


def test_metric_drop_is_in_the_metric_terms():
    top1, mse = TASKS["classification"].metric("top1"), TASKS["regression"].metric("mse")
    assert top1.worse_by(0.98, 0.975) == pytest.approx(0.5) and top1.unit == "pt"
    assert mse.worse_by(0.10, 0.13) == pytest.approx(0.03) and mse.worse_by(0.10, 0.08) < 0
    with pytest.raises(KarukuError, match="task 'regression' has no metric 'top1'"):
        TaskConfig(name="regression", metric="top1")


METRICS = '''
import math
import torch


def within_half(outputs, targets):
    return float(((outputs.squeeze(1) - targets).abs() < 0.5).float().mean())


def broken(outputs, targets):
    return math.nan
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    name = f"usertask_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(METRICS) + textwrap.dedent(PIPELINE_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_user_metric_by_import_path_and_nan_refused(user_module):
    from torch.utils.data import TensorDataset

    data = TensorDataset(torch.arange(10.0)[:, None], torch.arange(10.0) + torch.tensor([0.1, 0.7] * 5))
    model = torch.nn.Identity()
    r = measure_task(model, data, TaskConfig(name=f"{user_module}:within_half"), batch_size=3)
    assert r.metric == "within_half" and r.value == pytest.approx(0.5) and r.total == 10
    with pytest.raises(KarukuError, match=rf"metric '{user_module}:broken' returned nan on a batch of 3 examples"):
        measure_task(model, data, TaskConfig(name=f"{user_module}:broken"), batch_size=3)


PIPELINE_MODULE = '''

class Points(torch.utils.data.Dataset):
    """Unlabelled inputs: nothing to train on but the uncompressed model's own outputs."""

    def __init__(self, n, seed):
        self.x = torch.randn(n, 12, generator=torch.Generator().manual_seed(seed))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


def unlabelled():
    return Points(384, 0), Points(128, 1)


class Curves(torch.utils.data.Dataset):
    """Two values to regress from 12 inputs (smooth functions of them, with a little noise)."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 12, generator=g)
        self.y = torch.stack([torch.tanh(self.x[:, :4].sum(1)), self.x[:, 4:8].abs().mean(1)], 1)
        self.y += 0.01 * torch.randn(self.y.shape, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def curves():
    return Curves(512, 0), Curves(128, 1)


def regressor():
    torch.manual_seed(5)
    return torch.nn.Sequential(torch.nn.Linear(12, 48), torch.nn.ReLU(), torch.nn.Linear(48, 2))


def embedder():
    """A 'pretrained' embedding model: fixed weights, 8 outputs, no classes."""
    torch.manual_seed(7)
    return torch.nn.Sequential(torch.nn.Linear(12, 48), torch.nn.ReLU(), torch.nn.Linear(48, 8))
'''


def test_an_embedding_model_through_prune_quantize_export_judged_by_fidelity(user_module, tmp_path):
    from karuku.pipeline import compress, load_recipe

    recipe = {"version": 1, "name": "embed", "data": {"name": f"{user_module}:unlabelled", "val_size": 0},
              "model": {"name": f"{user_module}:embedder", "train": {"epochs": 0, "batch_size": 32}},
              "task": {"name": "fidelity"}, "budget": {"min_fidelity": 0.995},
              "recovery": {"epochs": 3, "lr": 0.02, "max_rounds": 0},
              "stages": [{"prune": {"sparsity": 0.6, "exclude": ["2"]}},
                         {"quantize": {"mode": "ptq", "calibration": 128}}, {"export": {"format": "onnx"}}]}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    outcome = compress(load_recipe(path), tmp_path / "run", verbose=False)
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    base, attempts = summary["baseline"]["measure"], summary["attempts"]
    assert base["task"] == "fidelity" and base["metrics"]["cosine"] == pytest.approx(1.0)  # the baseline vs itself
    prune = attempts[1]
    assert prune["recovered"]  # 60 % of the first layer gone: below the floor until the baseline taught it back
    assert prune["measure"]["metrics"]["cosine"] > prune["before_recovery"]["metrics"]["cosine"]
    assert [c["limit"] for c in summary["checks"]] == ["min_fidelity"]
    final = summary["final"]["measure"]
    assert final["deploy_kind"] == "int8" and summary["checks"][0]["value"] == pytest.approx(final["metrics"]["cosine"])
    assert (outcome.run_dir / "steps").is_dir() and any(outcome.run_dir.rglob("model.int8.onnx"))
    assert "test cosine" in (outcome.run_dir / "report.md").read_text()
    assert summary["peak_rss_bytes"] > 0 and summary["quality"]["metric"] == "cosine"
    from karuku.api import evaluate_checkpoint

    data = {"name": f"{user_module}:unlabelled", "val_size": 0}  # the run's task and baseline: from the file
    ev = evaluate_checkpoint(outcome.run_dir / "final.safetensors", data, MeasureConfig(latency=False, runs=1))
    assert ev.task == "fidelity" and ev.metrics["cosine"] == pytest.approx(final["metrics"]["cosine"], abs=1e-6)


def test_a_regression_model_through_prune_quantize_export_judged_by_its_error(user_module, tmp_path):
    # pruning fine-tunes against the dense model's outputs (distill: values are matched, not soft-targeted)
    from karuku.pipeline import compress, load_recipe

    recipe = {"version": 1, "name": "curves", "data": {"name": f"{user_module}:curves", "val_size": 64},
              "model": {"name": f"{user_module}:regressor", "train": {"epochs": 30, "lr": 0.05, "batch_size": 32}},
              "budget": {"max_drop": 0.02}, "recovery": {"epochs": 0, "max_rounds": 0},
              "stages": [{"prune": {"sparsity": 0.5, "exclude": ["2"], "distill": True,
                                    "finetune": {"epochs": 3, "lr": 0.01}}},
                         {"quantize": {"mode": "ptq", "calibration": 128}}, {"export": {"format": "onnx"}}]}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    outcome = compress(load_recipe(path), tmp_path / "run", verbose=False)
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    base, final = summary["baseline"]["measure"], summary["final"]["measure"]
    assert base["task"] == "regression" and summary["quality"]["metric"] == "mse"
    assert base["metrics"]["mse"] < 0.1  # the baseline learned the curves (predicting the mean gives ~0.4)
    assert final["deploy_kind"] == "int8" and any(outcome.run_dir.rglob("model.int8.onnx"))
    assert [c["limit"] for c in summary["checks"]] == ["max_drop"]
    assert summary["checks"][0]["value"] == pytest.approx(final["metrics"]["mse"] - base["metrics"]["mse"], abs=1e-6)
    assert summary["ok"] == (final["metrics"]["mse"] - base["metrics"]["mse"] <= 0.02)


def test_a_budget_that_limits_nothing_is_refused(user_module, tmp_path):
    from karuku.pipeline import compress
    from karuku.pipeline.recipe import Recipe

    r = Recipe(version=1, data={"name": f"{user_module}:unlabelled", "val_size": 0},
               model={"name": f"{user_module}:embedder", "train": {"epochs": 0}}, budget={})
    with pytest.raises(KarukuError, match="sets no quality limit for the task's metric 'cosine'.*min_fidelity"):
        compress(r, tmp_path / "run", verbose=False)
    r = r.model_copy(update={"task": TaskConfig(name="regression"), "budget": r.budget.model_copy(
        update={"min_fidelity": 0.9})})
    with pytest.raises(KarukuError, match="min_fidelity applies to the fidelity task"):
        compress(r, tmp_path / "run2", verbose=False)


def test_a_metric_alone_applies_to_the_data_own_task():
    from karuku.tasks.checkpoint import task_for

    ckpt = type("Ckpt", (), {"meta": {}, "path": "m.safetensors"})()
    assert TaskConfig(metric="mae").name is None  # `--task-metric mae` alone is valid until the data says
    assert task_for(ckpt, {"metric": "mae"}, targets="values") == TaskConfig(name="regression", metric="mae")
    stored = type("Ckpt", (), {"meta": {"task": {"name": "fidelity", "baseline": "b.safetensors"}}})()
    assert task_for(stored, {"metric": "agreement"}, targets="values").baseline == "b.safetensors"
    assert task_for(ckpt, None) is None  # nothing said: the data's own task, decided when measured
