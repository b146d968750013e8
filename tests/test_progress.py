"""Progress and time (issue 19): every long step says how far it is, how long it has run and how long it will."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys

import pytest
import torch

from karuku.codec import ClusterConfig
from karuku.codec.job import cluster_checkpoint
from karuku.data import DataConfig, load_splits
from karuku.io.checkpoint import save_checkpoint
from karuku.models import ModelSpec
from karuku.progress import Progress, duration
from karuku.pruning import PruneConfig, prune
from karuku.quant import QuantConfig, quantize
from karuku.training import TrainConfig, train
from karuku.training.estimate import seconds_per_iteration

SPAN = r"(\d+ s|\d+ min \d\d s|\d+ h \d\d min)"
TIMING = re.compile(rf"\[{SPAN} elapsed(, about {SPAN} left)?\]$")


def test_durations_read_as_a_person_says_them():
    assert [duration(s) for s in (0.4, 42, 185, 3600 * 2 + 14 * 60 + 5)] == ["0 s", "42 s", "3 min 05 s", "2 h 14 min"]


def test_lines_say_elapsed_and_left_and_join_an_outer_step():
    lines = []
    with Progress(100, "job", echo=lines.append) as job:
        assert Progress.current() is job
        job.note("starting")
        part = job.part(40, "first")
        for i in range(1, 41):
            part.update(i)
        part.line("done")
        assert job.done == 40 and job.estimate() is not None
        resumed = job.part(60, "second", done=30)  # 30 finished before this process: not counted as fast
        assert job.done == 70 and job.estimate() > 0
        resumed.update(60)
        resumed.line("done")
    assert Progress.current() is None
    assert lines[0] == "job: starting"
    assert lines[1].startswith("job: first: done  [") and TIMING.search(lines[1]) and "left]" in lines[1]
    assert lines[2].startswith("job: second: done") and "left" not in lines[2]  # nothing left to estimate


def test_without_a_terminal_a_line_comes_at_least_every_n_seconds(monkeypatch):
    monkeypatch.setenv("KARUKU_PROGRESS_EVERY", "0")
    lines = []
    p = Progress(5, "train", echo=lines.append)
    for i in range(1, 6):
        p.update(i, f"loss {1 / i:.2f}")
    assert [line.split("  [")[0] for line in lines] == [
        f"train: {i}/5 iterations ({20 * i} %)  loss {1 / i:.2f}" for i in range(1, 5)]
    assert all(TIMING.search(line) and "left]" in line for line in lines)


def test_a_terminal_gets_a_bar_with_elapsed_and_left_time():
    code = ("import time; from karuku.progress import Progress\n"
            "with Progress(50, 'train') as p:\n"
            "    for i in range(1, 51):\n        p.update(i, 'loss 0.1'); time.sleep(0.004)\n")
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=child, stderr=child, close_fds=True,
                            env=dict(os.environ, COLUMNS="120", TERM="xterm"))
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=60)
    os.close(main)
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out.decode(errors="replace"))
    assert proc.returncode == 0, text
    assert "━" in text and "50/50" in text and "0:00:0" in text and "left" in text  # bar, count, elapsed, left


@pytest.fixture(scope="module")
def small():
    splits = load_splits(DataConfig(name="digits", val_size=200))
    spec = ModelSpec(name="lenet300", input_shape=splits.input_shape, num_classes=splits.num_classes)
    torch.manual_seed(0)
    model = spec.build()
    train(model, splits, TrainConfig(epochs=1, lr=0.05, batch_size=64), verbose=False)
    return splits, model


def _epochs(out: str, label: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(label) and " epoch " in line]


def test_a_timing_probe_counts_for_no_running_step(small):
    splits, model = small
    with Progress(100, "job", echo=lambda line: None) as job:
        per_iteration = seconds_per_iteration(model, splits, TrainConfig(batch_size=64))
        assert job.done == 0 and Progress.current() is job
    assert 0 < per_iteration < 1


def test_training_estimates_the_time_left_from_the_first_epoch(small, capsys):
    splits, model = small
    train(model, splits, TrainConfig(epochs=3, lr=0.01, batch_size=64), verbose=True)
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "train: 60 iterations (3 epochs of 20)"  # what is about to run, before it runs
    lines = _epochs(out, "train: epoch")
    assert len(lines) == 3 and all(TIMING.search(line) for line in lines)
    assert "left]" in lines[0] and "left]" in lines[1] and "left" not in lines[2]


def test_prune_with_fine_tuning_reports_every_round_against_the_whole_schedule(small, capsys):
    splits, model = small
    cfg = PruneConfig(sparsity=0.8, schedule="iterative:3", finetune=TrainConfig(epochs=1, lr=0.01, batch_size=64))
    prune(model, cfg, splits, verbose=True)
    lines = _epochs(capsys.readouterr().out, "prune: fine-tuning round")
    assert [line.split(":")[1].strip().split(" (")[0] for line in lines] == [
        "fine-tuning round 1/3", "fine-tuning round 2/3", "fine-tuning round 3/3"]
    # one estimate for the whole schedule: after round 1 of 3, two thirds are left
    assert "left]" in lines[0] and "left]" in lines[1] and "left" not in lines[2]
    assert "iter 20/20" in lines[0]


def test_qat_and_cluster_tuning_show_progress(small, capsys, tmp_path):
    splits, model = small
    quantize(model, QuantConfig(mode="qat", finetune=TrainConfig(epochs=1, lr=0.001, batch_size=64)), splits=splits,
             input_shape=splits.input_shape, verbose=True)
    assert len(_epochs(capsys.readouterr().out, "QAT: epoch")) == 1
    spec = ModelSpec(name="lenet300", input_shape=splits.input_shape, num_classes=splits.num_classes)
    save_checkpoint(tmp_path / "m.safetensors", model, spec, {"data": splits.config.model_dump(mode="json")})
    cluster_checkpoint(tmp_path / "m.safetensors", ClusterConfig(bits=4, finetune=TrainConfig(epochs=1, lr=0.001)),
                       tmp_path / "c.safetensors")
    assert len(_epochs(capsys.readouterr().out, "cluster tuning: epoch")) == 1
