"""torchrun with two processes against one process: same weights (up to float summation order)."""

import pytest
import torch

from helpers.procs import karuku_cli
from karuku.io.checkpoint import load_checkpoint


def _train(args, out, idx_dir, nproc=0):
    base = ["train", "--model", "lenet300", "--data", "idx", "--data-path", str(idx_dir), "--data-val-size", "100",
            "--epochs", "2", "--batch-size", "32", "--lr", "0.05", "--out", str(out), "--quiet", *args]
    return karuku_cli(base, nproc)


@pytest.mark.slow
def test_two_processes_match_one(idx_dir, tmp_path):
    one, two = tmp_path / "one.safetensors", tmp_path / "ddp" / "two.safetensors"
    _train([], one, idx_dir)
    proc = _train([], two, idx_dir, nproc=2)
    assert proc.stdout.count("test accuracy") == 1  # only rank 0 reports and writes
    assert sorted(p.name for p in two.parent.iterdir()) == ["two.safetensors"]
    a, b = load_checkpoint(one), load_checkpoint(two)
    for k in a.state:
        assert torch.allclose(a.state[k], b.state[k], atol=1e-4), k
    acc_a = a.meta["metrics"]["test"]["accuracy"]
    acc_b = b.meta["metrics"]["test"]["accuracy"]
    assert acc_a > 0.8 and abs(acc_a - acc_b) <= 0.01
