"""Lottery tickets: IMP rates and masks, controls, a resumable tiny experiment, the report."""

import json

import pytest
import torch

from karuku.data import DataConfig
from karuku.errors import KarukuError
from karuku.io.checkpoint import load_checkpoint
from karuku.lottery import LotteryConfig, imp, results, run, write_report
from karuku.lottery.experiment import Snapshot
from karuku.models import build
from karuku.pruning.mask import SECTION, Mask
from karuku.pruning.targets import prunable
from karuku.training import TrainConfig, train


def test_level_rates_compound_on_the_survivors():
    names = ["fc1.weight", "fc2.weight", "fc3.weight"]
    rates = imp.level_rates(names, 0.2, 0.1, 3)
    assert rates["fc1.weight"] == pytest.approx(1 - 0.8**3)
    assert rates["fc3.weight"] == pytest.approx(1 - 0.9**3)  # the output layer at half rate


def test_ticket_masks_only_shrink_and_prune_the_smallest():
    torch.manual_seed(0)
    model = build("lenet300", (1, 28, 28), 10)
    names = prunable(model)
    prev = None
    for level in (1, 2, 3):
        rates = imp.level_rates(names, 0.2, 0.1, level)
        mask = imp.ticket_mask(model, prev, names, rates, "layer")
        for n in names:
            w = dict(model.named_parameters())[n].detach().abs()
            assert int((~mask[n]).sum()) == round(rates[n] * w.numel())
            assert w[~mask[n]].max() <= w[mask[n]].min()
            if prev is not None:
                assert not bool((mask[n] & ~prev[n]).any())  # nothing revived
        prev = mask


def test_random_mask_keeps_the_per_layer_counts():
    model = build("lenet300", (1, 28, 28), 10)
    names = prunable(model)
    ticket = imp.ticket_mask(model, None, names, imp.level_rates(names, 0.5, 0.1, 1), "layer")
    rnd = imp.random_mask(model, ticket, seed=3)
    for n in names:
        assert int(rnd[n].sum()) == int(ticket[n].sum())
    assert not torch.equal(rnd["fc1.weight"], ticket["fc1.weight"])


def test_snapshot_takes_the_weights_at_the_rewind_iteration():
    from karuku.data import load_splits

    splits = load_splits(DataConfig(name="digits", val_size=100))
    model = build("lenet300", (1, 8, 8), 10)
    snap = Snapshot(5)
    train(model, splits, TrainConfig(iterations=5, batch_size=32), hooks=[snap], verbose=False)
    assert torch.equal(snap.state["fc1.weight"], model.fc1.weight)


def _cfg(**kw):
    base = dict(model="lenet300", data=DataConfig(name="digits", val_size=200), levels=2, rate=0.5,
                train=TrainConfig(optimizer="adam", lr=1e-3, batch_size=32, iterations=30, eval_every=10,
                                  schedule="constant"))
    return LotteryConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    out = tmp_path_factory.mktemp("lt")
    lines = []
    folder = run(_cfg(), out, log=lines.append)
    return out, folder, lines


def test_experiment_runs_every_variant_at_every_level(experiment):
    _, folder, lines = experiment
    rows = results(folder)
    assert {(r["level"], r["variant"]) for r in rows} == {
        (0, "dense"), (1, "ticket"), (1, "reinit"), (1, "random-mask"), (2, "ticket"), (2, "reinit"),
        (2, "random-mask")}
    remaining = {r["level"]: r["weights_remaining"] for r in rows}
    assert remaining[0] == 1.0 and remaining[1] < 0.6 and remaining[2] < 0.35
    assert all(r["iterations"] == 30 and r["early_stop_iteration"] in (10, 20, 30) for r in rows)
    # before any training: the size of the experiment and a time estimate from iterations timed here
    assert lines[0].startswith("lottery: 7 training runs of 30 iterations") and "ms per iteration" in lines[0]
    assert "the 210 iterations left take about" in lines[0]
    units = [line for line in lines if "weights, test" in line]  # one per finished unit, with the time left
    assert len(units) == 7 and all("elapsed" in line for line in units)
    assert "left]" in units[0] and "left]" not in units[-1]  # the last one has nothing left to estimate


def test_ticket_weights_stay_pruned(experiment):
    _, folder, _ = experiment
    ckpt = load_checkpoint(folder / "trial-0" / "level-02" / "ticket" / "model.safetensors")
    mask = Mask(ckpt.sections[SECTION])
    for n in mask:
        assert bool((ckpt.state[n][~mask[n]] == 0).all())


def test_rerun_skips_finished_units_and_redoes_a_lost_one(experiment):
    out, folder, _ = experiment
    lost = folder / "trial-0" / "level-02" / "reinit" / "result.json"
    before = json.loads(lost.read_text())
    lost.unlink()
    lines = []
    run(_cfg(), out, log=lines.append)
    units = [line for line in lines if "weights, test" in line]
    assert len(units) == 1 and "level 2 reinit" in units[0]
    assert "6 finished before" in lines[0] and "the 30 iterations left" in lines[0]
    after = json.loads(lost.read_text())
    assert after["test_acc"] == before["test_acc"] and after["early_stop_iteration"] == before["early_stop_iteration"]


def test_report_files(experiment):
    out, folder, _ = experiment
    assert write_report(out) == [folder]
    for name in ("table.csv", "table.json", "lottery.png", "report.md"):
        assert (folder / name).is_file()
    table = json.loads((folder / "table.json").read_text())
    assert {r["variant"] for r in table} == {"dense", "ticket", "reinit", "random-mask"}


def test_bad_input(experiment, tmp_path):
    _, folder, _ = experiment
    with pytest.raises(KarukuError, match="holds another experiment.*rate"):
        run(_cfg(rate=0.3), folder)
    with pytest.raises(KarukuError, match="beyond the training length"):
        run(_cfg(rewind=31), tmp_path)
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(KarukuError, match="invalid LotteryConfig rate"):
            _cfg(rate=bad)
    with pytest.raises(KarukuError, match="unknown control"):
        _cfg(controls=["shuffle"])
