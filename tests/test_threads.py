"""Threads: chosen from the cores this process may use, set on every command and recipe, recorded with results."""

import json
import os

import pytest
import torch
import typer
from typer.testing import CliRunner

import karuku.cli.commands  # noqa: F401  (registers the commands)
from karuku import threads
from karuku.cli.app import app
from karuku.pipeline import parse_recipe

runner = CliRunner()
COMPUTING = ("train", "evaluate", "prune", "sensitivity", "quantize", "distill", "cluster", "pack", "unpack",
             "export", "bench", "lottery", "compress", "demo")


def test_usable_cores_follow_affinity_and_the_cgroup_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5})
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: None)
    threads.usable_cores.cache_clear()
    try:
        assert threads.usable_cores() == 6  # taskset / cpuset
        monkeypatch.setattr(threads, "_cgroup_quota", lambda: 2.5)
        threads.usable_cores.cache_clear()
        assert threads.usable_cores() == 3  # docker --cpus 2.5
    finally:
        threads.usable_cores.cache_clear()


def test_cgroup_quota_files(tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")
    assert threads._cgroup_quota(v2) == 1.5
    (v2 / "cpu.max").write_text("max 100000\n")
    assert threads._cgroup_quota(v2) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert threads._cgroup_quota(v1) == 2.0
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert threads._cgroup_quota(v1) is None


def test_busy_means_other_work_contends_for_the_cpu(tmp_path, monkeypatch):
    psi = tmp_path / "cpu"
    psi.write_text("some avg10=97.63 avg60=99.18 avg300=99.61 total=8201433848\n"
                   "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    assert threads.cpu_pressure(psi) == 97.63
    assert threads.cpu_pressure(tmp_path / "none") is None
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert threads.busy(pressure=97.6, load=0.1)  # tasks waited for a CPU most of the last 10 s
    assert threads.busy(pressure=None, load=14.0)  # no pressure figures: the load average fills both cores
    assert not threads.busy(pressure=0.0, load=2.2, own=2)  # this process's own 2 threads are not others' work
    assert not threads.busy(pressure=None, load=None)


def test_the_default_is_one_thread_on_a_busy_machine():
    assert threads.default_threads(cores=4, machine_busy=False) == 4
    assert threads.default_threads(cores=4, machine_busy=True) == 1
    assert threads.default_threads(cores=1, machine_busy=False) == 1


def test_an_automatic_count_steps_down_once_when_the_machine_gets_busy(monkeypatch):
    monkeypatch.setattr(threads, "default_threads", lambda: 2)
    monkeypatch.setattr(threads, "busy", lambda own=0: False)
    try:
        assert threads.use_threads() == 2 and torch.get_num_threads() == 2
        start = threads._auto["checked"]
        assert threads.adapt(start + 1) is None  # checks at most every CHECK_EVERY seconds
        assert threads.adapt(start + 10) is None and torch.get_num_threads() == 2  # quiet: kept
        monkeypatch.setattr(threads, "busy", lambda own=0: True)
        assert threads.adapt(start + 20) == 1 and torch.get_num_threads() == 1
        monkeypatch.setattr(threads, "busy", lambda own=0: False)
        assert threads.adapt(start + 500) is None and torch.get_num_threads() == 1  # never back up in a run
        threads.use_threads(2)  # a count the user gave is kept whatever the load
        monkeypatch.setattr(threads, "busy", lambda own=0: True)
        assert threads.adapt(start + 1000) is None and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_every_computing_command_takes_threads():
    root = typer.main.get_command(app)
    for name in COMPUTING:
        cmd = root.commands[name]
        assert "--threads" in {o for p in cmd.params for o in p.opts}, name
        assert not any(o != "--threads" and o.endswith("-threads") for p in cmd.params for o in p.opts), name


@pytest.mark.parametrize("command", [["train", "--model", "lenet300", "--out", "x"], ["bench", "x.onnx"],
                                     ["compress", "r.yaml"], ["demo"], ["evaluate", "x"]])
@pytest.mark.parametrize("bad", ["0", "-1", "100000"])
def test_bad_threads_are_one_line_before_any_work(command, bad):
    res = runner.invoke(app, [*command, "--threads", bad])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1 and f"invalid --threads {bad}" in lines[0], res.output


def test_recipes_name_threads_without_changing_the_run_folder():
    doc = {"version": 1, "model": {"name": "lenet300"}, "data": {"name": "digits", "val_size": 100}}
    plain, _ = parse_recipe(doc)
    one, _ = parse_recipe(dict(doc, threads=1))
    assert one.threads == 1 and plain.threads is None
    assert one.digest() == plain.digest()  # threads do not name the run folder
    _, problems = parse_recipe(dict(doc, threads=0))
    assert problems and problems[0].startswith("threads:")


def test_onnx_runtime_sessions_stop_spinning_with_passive_waiting(monkeypatch):
    from karuku.measure.onnx_runtime import export_bytes, session
    from karuku.models import build

    raw = export_bytes(build("lenet300", (1, 8, 8), 10).eval(), (1, 8, 8))
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    opts = session(raw, threads=2).get_session_options()
    assert opts.intra_op_num_threads == 2 and opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    with pytest.raises(RuntimeError, match="does not have configuration"):  # ONNX Runtime's default: spinning
        session(raw).get_session_options().get_session_config_entry("session.intra_op.allow_spinning")


def test_threads_are_recorded_with_results(tmp_path, idx_dir):
    out = tmp_path / "m.safetensors"
    res = runner.invoke(app, ["train", "--model", "lenet300", "--data", "idx", "--data-path", str(idx_dir),
                              "--data-val-size", "100", "--epochs", "1", "--threads", "1", "--quiet",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    from karuku.io.checkpoint import load_checkpoint

    meta = load_checkpoint(out).meta
    assert meta["threads"] == 1 and meta["result"]["threads"] == 1
    js = tmp_path / "ev.json"
    res = runner.invoke(app, ["evaluate", str(out), "--threads", "1", "--runs", "2", "--json", str(js)])
    assert res.exit_code == 0 and json.loads(js.read_text())["threads"] == 1
    assert torch.get_num_threads() == 1
