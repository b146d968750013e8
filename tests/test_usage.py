"""What a user types wrong: one line and exit 1 for usage errors and every bad number, plain `--help`, hints
that name real flags, settings that cannot take effect refused, recipes checked whole (files included)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

import karuku
import karuku.cli.commands  # noqa: F401  (registers the commands)
from karuku.cli.app import app
from karuku.errors import KarukuError

runner = CliRunner()
SRC = Path(karuku.__file__).parent


def one_line(res, needle: str) -> None:
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert needle in lines[0], res.output


@pytest.mark.parametrize("args, needle", [
    (["trian"], "No such command 'trian'. Did you mean 'train'?"),
    (["train", "--modle", "lenet300", "--out", "x"], "No such option: --modle"),
    (["train", "--model", "lenet300"], "Missing option '--out'"),
    (["recipe", "validat", "r.yaml"], "No such command 'validat'"),
    (["lottery", "--model", "lenet300"], "Missing option '--out'"),
    (["evaluate"], "Missing argument"),
])
def test_usage_errors_are_one_line_and_exit_1(args, needle):
    one_line(runner.invoke(app, args), needle)


def test_usage_errors_through_the_real_command():
    proc = subprocess.run([sys.executable, "-m", "karuku", "train", "--modle", "x"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "╭" not in proc.stderr
    assert proc.stderr.startswith("error: No such option: --modle") and "karuku train --help" in proc.stderr


def test_help_is_plain_and_shows_what_it_says():
    res = runner.invoke(app, ["cluster", "--help"], terminal_width=200)
    assert res.exit_code == 0
    assert "<bool>" not in res.output and "<list" not in res.output
    assert "[min, max]" in res.output  # no markup eats the brackets
    assert "--quiet / --no-quiet" in res.output and "--bits N" in res.output and "--init linear|density|random" in (
        res.output)
    assert runner.invoke(app, []).exit_code == 0  # `karuku` alone: the help


def test_hints_name_flags_that_exist():
    root = typer.main.get_command(app)
    flags = set()

    def walk(cmd):
        for p in cmd.params:
            flags.update(p.opts)
            flags.update(p.secondary_opts)
        for sub in getattr(cmd, "commands", {}).values():
            walk(sub)

    walk(root)
    outside = {"--help", "--cpus", "--specs", "--no-deps", "--no-binary", "--no-clean", "--no-", "--finetune-",
               "--data-", "--only-binary", "--gc-sections"}  # prefixes; docker, gcc, ld and pip flags
    named = {m for f in SRC.rglob("*.py") for m in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", f.read_text())}
    assert named - flags - outside == set()


def _bounded_options():
    """(command, flag, value) for every numeric option: a value below its lower and above its upper bound."""
    root = typer.main.get_command(app)
    cases = []
    for name, cmd in sorted(root.commands.items()):
        for p in cmd.params:
            if not p.opts or not p.opts[0].startswith("--") or p.metavar not in ("N", "X"):
                continue
            step = 1 if p.metavar == "N" else 0.5
            for sign, bound in re.findall(r"([≥>≤<]) (-?[\d.e+]+)", p.help or ""):
                b = float(bound)
                bad = {"≥": b - step, ">": b, "≤": b + step, "<": b}[sign]  # just outside the bound
                cases.append((name, p.opts[0], str(int(bad)) if p.metavar == "N" else repr(bad)))
            if p.opts[0] == "--threads":
                cases += [(name, "--threads", "0"), (name, "--threads", "100000")]
    return cases


BAD_VALUES = _bounded_options()
NEEDS = {"train": ["--model", "lenet300", "--out", "x.safetensors"], "lottery": ["--out", "x"],
         "distill": ["--teacher", "t.safetensors", "--out", "x.safetensors"], "demo": [], "bench": ["x.onnx"]}


def test_every_numeric_option_has_bounds_and_the_batch_is_large():
    assert len(BAD_VALUES) >= 73, len(BAD_VALUES)
    root = typer.main.get_command(app)
    for name, cmd in root.commands.items():
        for p in cmd.params:
            if p.metavar in ("N", "X") and p.opts[0] != "--threads":
                assert re.search(r"[≥>]", p.help or ""), (name, p.opts[0])  # every number has a lower bound


@pytest.mark.parametrize("command, flag, value", BAD_VALUES)
def test_bad_values_fail_at_parse_time_naming_the_flag(command, flag, value, tmp_path):
    head = NEEDS.get(command, ["x.safetensors", "--out", str(tmp_path / "y.safetensors")] if command in (
        "prune", "quantize", "cluster", "pack", "unpack") else ["x.safetensors"])
    if command in ("compress",):
        head = ["r.yaml"]
    res = runner.invoke(app, [command, *head, flag, value])  # no file exists: the value fails first
    one_line(res, f"invalid {flag}")


@pytest.mark.parametrize("args, needle", [
    (["prune", "x", "--out", "y", "--agp-end", "0.5"], "--agp-end applies to the agp --schedule only"),
    (["prune", "x", "--out", "y", "--round-to", "8"], "--round-to applies to --structured pruning only"),
    (["prune", "x", "--out", "y", "--seed", "3"], "--seed applies to --method random only"),
    (["prune", "x", "--out", "y", "--finetune-iterations", "5", "--finetune-epochs", "3"],
     "--finetune-epochs has no effect while --finetune-iterations is set"),
    (["quantize", "x", "--out", "y", "--finetune-epochs", "2"], "--finetune-* applies to --mode qat only"),
    (["quantize", "x", "--out", "y", "--qat-delay", "5"], "--qat-delay applies to --mode qat only"),
    (["quantize", "x", "--out", "y", "--mode", "dynamic", "--calibration", "99"], "--calibration has no effect"),
    (["quantize", "x", "--out", "y", "--low-bits", "2"], "--low-bits applies to the mixed-precision search only"),
    (["cluster", "x", "--out", "y", "--seed", "2"], "--seed applies to --init random only"),
    (["distill", "--teacher", "t", "--out", "y", "--hint-weight", "2"], "--hint-weight applies only with --hint"),
    (["train", "--model", "lenet300", "--out", "y", "--optimizer", "adam", "--momentum", "0.5"],
     "--momentum applies to the sgd --optimizer only"),
    (["lottery", "--train-epochs", "3", "--out", "y"], "--train-epochs has no effect while --train-iterations is set"),
])
def test_settings_that_cannot_take_effect_are_refused(args, needle):
    one_line(runner.invoke(app, args), needle)


def test_the_same_rules_hold_in_python_and_recipes():
    from karuku.pipeline import parse_recipe
    from karuku.pruning import PruneConfig

    with pytest.raises(KarukuError, match="`agp_end` applies to the agp `schedule` only"):
        PruneConfig(agp_end=0.5)
    PruneConfig(agp_end=0.75)  # the default value given again is not an effect lost
    doc = {"version": 1, "model": {"name": "lenet300"}, "stages": [{"prune": {"round_to": 8}}]}
    _, problems = parse_recipe(doc)
    assert any("stages[0].prune" in p and "round_to" in p for p in problems), problems


def test_cluster_finetune_iterations_alone_do_train(tmp_path, idx_dir):
    """The defect: --tune-iterations without --tune-epochs left the weights untouched."""
    import torch

    from karuku.io.checkpoint import load_checkpoint

    ckpt = tmp_path / "m.safetensors"
    assert runner.invoke(app, ["train", "--model", "lenet300", "--data", "idx", "--data-path", str(idx_dir),
                               "--data-val-size", "100", "--epochs", "1", "--quiet", "--out", str(ckpt)]).exit_code == 0
    plain, tuned = tmp_path / "c0.safetensors", tmp_path / "c1.safetensors"
    assert runner.invoke(app, ["cluster", str(ckpt), "--bits", "3", "--out", str(plain), "--quiet"]).exit_code == 0
    res = runner.invoke(app, ["cluster", str(ckpt), "--bits", "3", "--finetune-iterations", "20", "--out", str(tuned),
                              "--quiet"])
    assert res.exit_code == 0, res.output
    a, b = load_checkpoint(plain).state, load_checkpoint(tuned).state
    assert not torch.equal(a["fc1.weight"], b["fc1.weight"])


def test_recipe_validate_reports_every_fault_and_missing_files_at_once(tmp_path):
    doc = {"version": 1, "nmae": "x", "modle": {"name": "lenet300"},
           "model": {"checkpoint": str(tmp_path / "missing.safetensors")},
           "data": {"name": "idx", "path": str(tmp_path / "no-folder"), "val_sise": 100},
           "stages": [{"prune": {"sparsty": 0.9}}, {"quantise": {}}]}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc))
    res = runner.invoke(app, ["recipe", "validate", str(path)])
    one_line(res, "7 problem(s)")
    for needle in ("nmae: Extra inputs are not permitted; did you mean 'name'?",
                   "modle: Extra inputs are not permitted; did you mean 'model'?",
                   "data.val_sise: Extra inputs are not permitted; did you mean 'val_size'?",
                   "stages[0].prune.sparsty: Extra inputs are not permitted; did you mean 'sparsity'?",
                   "stages[1].quantise: unknown stage 'quantise'; did you mean 'quantize'?",
                   f"model.checkpoint: no file {tmp_path / 'missing.safetensors'}",
                   f"data.path: no folder {tmp_path / 'no-folder'}"):
        assert needle in res.output, needle


def test_a_model_of_another_shape_says_so_before_the_data_settings(tmp_path, idx_dir):
    """The defect: `quantize --data mnist1d` on an MNIST model failed on mnist1d's validation size."""
    ckpt = tmp_path / "m.safetensors"
    assert runner.invoke(app, ["train", "--model", "lenet300", "--data", "idx", "--data-path", str(idx_dir),
                               "--data-val-size", "100", "--epochs", "1", "--quiet", "--out", str(ckpt)]).exit_code == 0
    res = runner.invoke(app, ["quantize", str(ckpt), "--data", "mnist1d", "--out", str(tmp_path / "q.safetensors")])
    one_line(res, "input shapes differ: dataset 'mnist1d' has inputs (1, 40)")
    assert "expects (1, 28, 28)" in res.output


def test_evaluate_of_a_quantized_checkpoint_labels_what_it_measured(tmp_path, idx_dir, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # one table row per line
    ckpt, q = tmp_path / "m.safetensors", tmp_path / "q.safetensors"
    assert runner.invoke(app, ["train", "--model", "lenet300", "--data", "idx", "--data-path", str(idx_dir),
                               "--data-val-size", "100", "--epochs", "1", "--quiet", "--out", str(ckpt)]).exit_code == 0
    assert runner.invoke(app, ["quantize", str(ckpt), "--calibration", "64", "--out", str(q), "--quiet"]).exit_code == 0
    res = runner.invoke(app, ["evaluate", str(q), "--runs", "2"], terminal_width=250)
    assert res.exit_code == 0, res.output
    for label in ("test accuracy (int8 model)", "float view test accuracy (BN folded, biases corrected)",
                  "int8 test accuracy (integer engine)", "torch latency b1 (float computation)",
                  "onnxruntime latency b1 (int8)"):
        assert label in res.output, label
    assert "fp32 test accuracy" not in res.output  # nothing here is the fp32 model's accuracy


def test_quantize_onnx_out_is_the_checked_int8_export(tmp_path, idx_dir):
    ckpt, q = tmp_path / "m.safetensors", tmp_path / "q.safetensors"
    assert runner.invoke(app, ["train", "--model", "lenet300", "--data", "idx", "--data-path", str(idx_dir),
                               "--data-val-size", "100", "--epochs", "1", "--quiet", "--out", str(ckpt)]).exit_code == 0
    res = runner.invoke(app, ["quantize", str(ckpt), "--calibration", "64", "--out", str(q), "--quiet",
                              "--onnx-out", str(tmp_path / "a.onnx")])
    assert res.exit_code == 0 and "top-1 agreement with the integer engine" in res.output, res.output
    assert runner.invoke(app, ["export", str(q), "--int8", "--out", str(tmp_path / "b.onnx")]).exit_code == 0
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


def test_a_run_that_will_take_hours_says_so_as_it_starts(tmp_path, monkeypatch):
    from karuku.data import DataConfig, load_splits
    from karuku.models import ModelSpec
    from karuku.progress import Progress
    from karuku.training import TrainConfig, loop

    monkeypatch.setattr(loop, "LONG_AFTER", 0.0)  # judge after the first step (a real run: after 2 s)
    monkeypatch.setattr(Progress, "estimate", lambda self: 2 * 3600.0 + 60)
    res = runner.invoke(app, ["train", "--model", "lenet300", "--data", "digits", "--data-val-size", "100",
                              "--epochs", "1", "--out", str(tmp_path / "m.safetensors")])
    assert res.exit_code == 0, res.output
    assert res.output.count("this will take about 2 h 01 min") == 1 and "same command resumes" in res.output
    # a job of many trainings (prune rounds) says it once; without a resume state it does not promise one
    lines = []
    splits = load_splits(DataConfig(name="digits", val_size=100, train_limit=200))
    with Progress(100, "prune", echo=lines.append) as job:
        for _ in range(3):
            loop.train(ModelSpec(name="lenet300", input_shape=(1, 8, 8), num_classes=10).build(), splits,
                       TrainConfig(iterations=2, batch_size=32))
    said = [line for line in lines if "this will take about" in line]
    assert len(said) == 1 and "starts over" in said[0] and job.long_said, lines
