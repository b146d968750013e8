"""Nothing lost, nothing silently wrong on resume: a state is picked up only by the run it belongs to, survives
until the result is written, and run folders resume wherever they are moved."""

import json
import shutil

import pytest
import torch
import yaml

from karuku.data.config import DataConfig
from karuku.errors import KarukuError
from karuku.io.checkpoint import load_checkpoint
from karuku.pipeline import compress, load_recipe
from karuku.training import TrainConfig, resume
from karuku.training import job as train_job
from karuku.training.job import train_checkpoint

CFG = TrainConfig(epochs=2, batch_size=32, lr=0.05)


class Crash(Exception):
    pass


def data(limit: int = 600) -> DataConfig:
    return DataConfig(name="digits", val_size=100, train_limit=limit)


def crash_after_first_epoch(monkeypatch):
    real = resume.save_state

    def save_then_crash(*args, **kwargs):
        real(*args, **kwargs)  # the first epoch's state is on disk, as after a kill -9 in the second
        raise Crash()

    monkeypatch.setattr(resume, "save_state", save_then_crash)
    return real


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "m.safetensors"
    train_checkpoint("lenet300", CFG, out, data(), verbose=False)
    return load_checkpoint(out)


def test_a_state_of_other_data_settings_is_refused(tmp_path, monkeypatch):
    out = tmp_path / "m.safetensors"
    real = crash_after_first_epoch(monkeypatch)
    with pytest.raises(Crash):
        train_checkpoint("lenet300", CFG, out, data(600), verbose=False)
    monkeypatch.setattr(resume, "save_state", real)
    state = tmp_path / "m.safetensors.state"
    assert state.is_file()
    with pytest.raises(KarukuError, match="belongs to another run: its data settings differ"):
        train_checkpoint("lenet300", CFG, out, data(500), verbose=False)
    with pytest.raises(KarukuError, match="its starting weights .* differ"):  # another model: no RuntimeError
        train_checkpoint("mlp-student", CFG, out, data(600), verbose=False)
    with pytest.raises(KarukuError, match="its training settings differ"):
        train_checkpoint("lenet300", CFG.model_copy(update={"lr": 0.1}), out, data(600), verbose=False)
    assert not out.exists() and state.is_file()  # nothing written under the wrong description


def test_another_init_is_another_run(tmp_path, monkeypatch, uninterrupted):
    init = tmp_path / "init.safetensors"
    shutil.copyfile(uninterrupted.path, init)
    out = tmp_path / "m.safetensors"
    real = crash_after_first_epoch(monkeypatch)
    with pytest.raises(Crash):
        train_checkpoint("lenet300", CFG, out, data(), verbose=False)
    monkeypatch.setattr(resume, "save_state", real)
    with pytest.raises(KarukuError, match="its starting weights"):
        train_checkpoint("lenet300", CFG, out, data(), init=init, verbose=False)


def test_the_same_run_resumes_to_the_same_weights(tmp_path, monkeypatch, uninterrupted):
    out = tmp_path / "m.safetensors"
    real = crash_after_first_epoch(monkeypatch)
    with pytest.raises(Crash):
        train_checkpoint("lenet300", CFG, out, data(), verbose=False)
    monkeypatch.setattr(resume, "save_state", real)
    train_checkpoint("lenet300", CFG, out, data(), verbose=False)
    got = load_checkpoint(out)
    assert all(torch.equal(got.state[k], v) for k, v in uninterrupted.state.items())
    assert not (tmp_path / "m.safetensors.state").exists()


def test_a_kill_between_training_and_saving_loses_no_training(tmp_path, monkeypatch, uninterrupted):
    out = tmp_path / "m.safetensors"
    real = train_job.save_checkpoint

    def killed(*args, **kwargs):
        raise Crash()

    monkeypatch.setattr(train_job, "save_checkpoint", killed)
    with pytest.raises(Crash):
        train_checkpoint("lenet300", CFG, out, data(), verbose=False)
    state = tmp_path / "m.safetensors.state"
    assert state.is_file()  # the window's defect: the state was deleted before the checkpoint existed
    monkeypatch.setattr(train_job, "save_checkpoint", real)
    steps = []
    monkeypatch.setattr("karuku.training.loop._step", lambda *a, **k: steps.append(1))
    meta = train_checkpoint("lenet300", CFG, out, data(), verbose=False)
    assert steps == [] and meta["result"]["iterations"] == uninterrupted.meta["result"]["iterations"]
    got = load_checkpoint(out)
    assert all(torch.equal(got.state[k], v) for k, v in uninterrupted.state.items())
    assert not state.exists()


RECIPE = {"version": 1, "name": "move", "seed": 1, "data": {"name": "digits", "val_size": 100},
          "model": {"name": "lenet300", "train": {"epochs": 1, "lr": 0.05, "batch_size": 32}},
          "budget": {"max_accuracy_drop": 50.0}, "recovery": {"epochs": 0},
          "stages": [{"finetune": {"epochs": 1}}]}


def test_a_run_folder_resumes_after_it_is_moved(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(RECIPE))
    first = compress(load_recipe(path), tmp_path / "a", verbose=False)
    results = [json.loads(p.read_text()) for p in (tmp_path / "a" / "steps").glob("*/result.json")]
    assert results and all(r["checkpoint"].startswith("steps/") for r in results)  # relative to the run
    assert not list((tmp_path / "a").rglob("*.state"))  # resume states go once their step is written
    shutil.move(tmp_path / "a", tmp_path / "b")
    again = compress(load_recipe(path), tmp_path / "b", verbose=False)
    log = (tmp_path / "b" / "run.log").read_text()
    assert log.count("done before, skipped") == 2
    assert again.final["measure"]["accuracy"] == first.final["measure"]["accuracy"]
    assert str(tmp_path / "b") in again.final["checkpoint"]


def test_a_kill_after_the_baseline_trained_loses_no_training(tmp_path, monkeypatch):
    """The same window in `compress`: the baseline's state outlives its training until result.json is written."""
    from karuku.pipeline import steps

    doc = dict(RECIPE, stages=[{"prune": {"sparsity": 0.5}}])  # no training after the baseline's
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc))
    real = steps.save_checkpoint

    def killed(*args, **kwargs):
        raise Crash()

    monkeypatch.setattr(steps, "save_checkpoint", killed)
    with pytest.raises(Crash):
        compress(load_recipe(path), tmp_path / "run", verbose=False)
    assert len(list((tmp_path / "run").rglob("*.state"))) == 1
    monkeypatch.setattr(steps, "save_checkpoint", real)
    trained = []
    monkeypatch.setattr("karuku.training.loop._step", lambda *a, **k: trained.append(1))
    compress(load_recipe(path), tmp_path / "run", verbose=False)
    assert trained == [] and not list((tmp_path / "run").rglob("*.state"))


def test_a_damaged_state_is_one_line(tmp_path, monkeypatch):
    """A state whose counts or history are not what karuku writes: was a TypeError / AttributeError, or a resume
    that silently skipped training (an iteration past the end)."""
    from karuku.io import safefile

    out = tmp_path / "m.safetensors"
    real = crash_after_first_epoch(monkeypatch)
    with pytest.raises(Crash):
        train_checkpoint("lenet300", CFG, out, data(), verbose=False)
    monkeypatch.setattr(resume, "save_state", real)
    state = tmp_path / "m.safetensors.state"
    tensors, doc = safefile.read(state, "training state")
    doc.pop("tensors_sha256")
    for change in ({"iteration": "abc"}, {"epoch": None}, {"epoch": -3}, {"history": 5}, {"iteration": 10**12}):
        safefile.write(state, tensors, dict(doc, **change))  # checksum valid: the damage is the content
        with pytest.raises(KarukuError, match="m.safetensors.state is damaged") as err:
            train_checkpoint("lenet300", CFG, out, data(), verbose=False)
        assert "\n" not in str(err.value) and not out.exists(), change


@pytest.mark.parametrize("text", ["{", "[1, 2]", "\udcff"])
def test_a_damaged_result_or_settings_file_is_one_line(tmp_path, text):
    from karuku.io.once import once
    from karuku.lottery.config import LotteryConfig
    from karuku.lottery.experiment import experiment_dir

    (tmp_path / "result.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(KarukuError, match="result.json is damaged .* redo that step"):
        once(tmp_path, lambda folder: {})
    (tmp_path / "settings.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(KarukuError, match="settings.json is damaged"):
        experiment_dir(tmp_path, LotteryConfig())
