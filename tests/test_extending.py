"""docs/ARCHITECTURE.md's worked examples, run: a pruning criterion, an observer, a loop stage and a dataset,
each added in a few lines and used from Python, the command line and a recipe."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

import karuku.cli.commands  # noqa: F401  (registers the commands)
from karuku.cli.app import app
from karuku.errors import KarukuError
from karuku.io.checkpoint import load_checkpoint
from karuku.pipeline import compress, load_recipe, parse_recipe

runner = CliRunner()


def recipe(tmp_path, stages, data=None, name="ext"):
    doc = {"version": 1, "name": name, "seed": 0, "data": data or {"name": "digits", "val_size": 200},
           "model": {"name": "lenet300", "train": {"epochs": 1, "lr": 0.05, "batch_size": 64}},
           "budget": {"max_drop": 100.0}, "recovery": {"epochs": 0, "max_rounds": 0}, "stages": stages}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    from karuku.data import DataConfig
    from karuku.training import TrainConfig
    from karuku.training.job import train_checkpoint

    path = tmp_path_factory.mktemp("ext") / "l300.safetensors"
    train_checkpoint("lenet300", TrainConfig(epochs=1, batch_size=64, lr=0.05), path,
                     DataConfig(name="digits", val_size=200), verbose=False)
    return path


def test_a_new_pruning_criterion_through_python_the_cli_and_a_recipe(lenet, tmp_path):
    from karuku.pruning import SCORES, PruneConfig, register_score

    @register_score("row-l2")  # the worked example: |w| times the L2 norm of its output row
    def row_l2(weight, generator=None):
        w = weight.detach()
        return w.abs() * w.flatten(1).norm(dim=1).view(-1, *([1] * (w.dim() - 1)))

    try:
        # validation knows the name, and a typo says which one was meant
        with pytest.raises(KarukuError, match="unknown pruning method 'row-l3'; did you mean 'row-l2'"):
            PruneConfig(method="row-l3")
        out = tmp_path / "p.safetensors"
        res = runner.invoke(app, ["prune", str(lenet), "--method", "row-l2", "--sparsity", "0.5", "--no-latency",
                                  "--out", str(out)])
        assert res.exit_code == 0, res.output
        ck = load_checkpoint(out)
        fc1, mask = ck.state["fc1.weight"], ck.sections["mask"]["fc1.weight"]
        score = row_l2(load_checkpoint(lenet).state["fc1.weight"])
        assert bool(score[mask].min() >= score[~mask].max())  # the lowest scores went, and only those
        assert int((fc1 == 0).sum()) == fc1.numel() // 2
        outcome = compress(load_recipe(recipe(tmp_path, [{"prune": {"method": "row-l2", "sparsity": 0.5}}])),
                           tmp_path / "run", verbose=False)
        summary = json.loads((outcome.run_dir / "summary.json").read_text())
        assert summary["attempts"][1]["settings"]["method"] == "row-l2"
        assert summary["final"]["measure"]["nonzeros"] < 0.6 * summary["final"]["measure"]["params"]
    finally:
        del SCORES["row-l2"]


def test_a_new_observer_through_python_the_cli_and_a_recipe(lenet, tmp_path):
    from karuku.quant import QuantConfig
    from karuku.quant.observers import OBSERVERS, Observer, register_observer

    @register_observer("half-range")  # the worked example: clip to half the range seen
    class HalfRange(Observer):
        def range(self, bits=8, signed=False):
            lo, hi = self._checked()
            return lo / 2, hi / 2

    try:
        with pytest.raises(KarukuError, match="unknown observer 'half-rang'; did you mean 'half-range'"):
            QuantConfig(observer="half-rang")
        out = tmp_path / "q.safetensors"
        res = runner.invoke(app, ["quantize", str(lenet), "--observer", "half-range", "--calibration", "64",
                                  "--out", str(out)])
        assert res.exit_code == 0, res.output
        wide = tmp_path / "w.safetensors"
        assert runner.invoke(app, ["quantize", str(lenet), "--observer", "minmax", "--calibration", "64",
                                   "--out", str(wide)]).exit_code == 0
        half, full = (load_checkpoint(p).meta["quant"]["activations"]["fc1"]["scale"] for p in (out, wide))
        assert half == pytest.approx(full / 2, rel=0.02)  # the observer's range is the one used
        _, problems = parse_recipe(yaml.safe_load(recipe(tmp_path, [{"quantize": {"observer": "half-range"}}])
                                                  .read_text()))
        assert problems == []
    finally:
        del OBSERVERS["half-range"]


def test_a_new_loop_stage_in_a_recipe(tmp_path):
    from pydantic import Field

    from karuku.config import Config
    from karuku.pipeline.stage import BY_CONFIG, STAGES, Stage, StageOutput, register_stage

    class HalfConfig(Config):
        """Store the weights in fp16 (the worked example of a loop stage)."""

        keep: list[str] = Field(default_factory=list, description="layers kept in fp32")

    @register_stage("half", HalfConfig)
    class HalfStage(Stage):
        def apply(self, model, cfg, run):
            n = sum(p.numel() * (4 if any(k in name for k in cfg.keep) else 2) for name, p in model.named_parameters())
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(p.half().float())  # what fp16 storage keeps
            return StageOutput(model, sizes={"fp16": n}, meta={"keep": cfg.keep})

    try:
        path = recipe(tmp_path, [{"half": {"keep": ["fc3"]}}])
        res = runner.invoke(app, ["recipe", "validate", str(path)])
        assert res.exit_code == 0 and "half" in res.output, res.output
        bad = recipe(tmp_path, [{"half": {"kep": []}}], name="bad")
        res = runner.invoke(app, ["recipe", "validate", str(bad)])
        assert res.exit_code == 1 and "stages[0].half.kep: Extra inputs are not permitted; did you mean 'keep'?" \
            in res.output, res.output
        outcome = compress(load_recipe(path), tmp_path / "run", verbose=False)
        final = json.loads((outcome.run_dir / "summary.json").read_text())["final"]
        assert final["kind"] == "half" and final["measure"]["deploy_kind"] == "fp16"
        assert final["measure"]["deploy_bytes"] == 2 * 50610 + 2 * (100 * 10 + 10)  # fc3 stays fp32
    finally:
        del STAGES["half"], BY_CONFIG[HalfConfig]


def test_a_new_dataset_through_the_cli_and_a_recipe(tmp_path):
    from karuku.data import DATASETS, DataConfig, register_dataset
    from karuku.data.sources import RawData

    @register_dataset("blobs", "three Gaussian blobs in 2-D", (1, 2), 3)  # the worked example
    def load_blobs(cfg: DataConfig) -> RawData:
        g = np.random.default_rng(0)
        centres = np.array([[0, 4], [4, 0], [-4, -4]], dtype=np.float32)
        y = g.integers(0, 3, 700)
        x = (centres[y] + g.standard_normal((700, 2))).astype(np.float32)[:, None]
        t = torch.from_numpy
        return RawData(t(x[:600]), t(y[:600]), t(x[600:]), t(y[600:]))

    try:
        with pytest.raises(KarukuError, match="unknown dataset 'blob'; did you mean 'blobs'"):
            DataConfig(name="blob")
        out = tmp_path / "b.safetensors"
        res = runner.invoke(app, ["train", "--model", "lenet300", "--data", "blobs", "--data-val-size", "100",
                                  "--epochs", "5", "--lr", "0.05", "--out", str(out), "--quiet"])
        assert res.exit_code == 0, res.output
        assert load_checkpoint(out).meta["metrics"]["test"]["accuracy"] > 0.9
        res = runner.invoke(app, ["evaluate", str(out), "--no-latency"])  # the checkpoint remembers its data
        assert res.exit_code == 0 and "test accuracy" in res.output, res.output
        outcome = compress(load_recipe(recipe(tmp_path, [{"prune": {"sparsity": 0.5}}],
                                              data={"name": "blobs", "val_size": 100})), tmp_path / "run",
                           verbose=False)
        assert json.loads((outcome.run_dir / "summary.json").read_text())["baseline"]["measure"]["total"] == 100
    finally:
        del DATASETS["blobs"]
