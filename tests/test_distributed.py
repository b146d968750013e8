"""torchrun with two processes against one process: same weights (up to float summation order)."""

import os
import signal
import subprocess
import sys

import pytest
import torch

from karuku.io.checkpoint import load_checkpoint


def _train(args, out, idx_dir, nproc=None):
    base = ["train", "--model", "lenet300", "--data", "idx", "--data-path", str(idx_dir), "--data-val-size", "100",
            "--epochs", "2", "--batch-size", "32", "--lr", "0.05", "--out", str(out), "--quiet", *args]
    if nproc:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
               "-m", "karuku", *base]
    else:
        cmd = [sys.executable, "-m", "karuku", *base]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # own session: on a timeout the whole process group (torchrun and its workers) is killed
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, err[-2000:]
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


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
