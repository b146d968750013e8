"""`karuku distill` end to end on tiny data, under torchrun too; bad input is one line and exit code 1."""


import pytest
import torch
from typer.testing import CliRunner

from helpers.procs import karuku_cli
from karuku.cli.app import app
from karuku.cli.commands import distill  # noqa: F401  (registers the command)
from karuku.io.checkpoint import load_checkpoint, load_model

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _data(idx_dir):
    return ["--data", "idx", "--data-path", idx_dir, "--data-val-size", 100]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, idx_dir):
    out = tmp_path_factory.mktemp("kd") / "teacher.safetensors"
    res = run("train", "--model", "lenet300", *_data(idx_dir), "--epochs", 2, "--lr", 0.05, "--batch-size", 32,
              "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    return out


def test_distill_writes_a_student_checkpoint(teacher, idx_dir, tmp_path):
    out = tmp_path / "student.safetensors"
    res = run("distill", "--teacher", teacher, "--student", "lenet300", *_data(idx_dir), "--temperature", 20,
              "--alpha", 0.9, "--epochs", 2, "--lr", 0.05, "--batch-size", 32, "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    assert "student test accuracy" in res.output and "teacher" in res.output
    model, ckpt = load_model(out)
    kd = ckpt.meta["distillation"]
    assert kd["temperature"] == 20 and kd["alpha"] == 0.9 and kd["teacher"] == str(teacher)
    assert ckpt.meta["training"]["epochs"] == 2 and ckpt.meta["metrics"]["test"]["accuracy"] > 0.5
    assert not out.with_name(out.name + ".state").exists()


def test_student_from_a_checkpoint_with_a_hint(teacher, idx_dir, tmp_path):
    out = tmp_path / "self.safetensors"
    res = run("distill", "--teacher", teacher, "--student", teacher, *_data(idx_dir), "--hint", "fc2=fc2",
              "--epochs", 1, "--batch-size", 32, "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    assert load_checkpoint(out).meta["distillation"]["hints"] == {"fc2": "fc2"}


@pytest.mark.parametrize("args, needle", [
    (["--temperature", 0], "invalid --temperature: Input should be greater than 0"),
    (["--alpha", 1.5], "invalid --alpha: Input should be less than or equal to 1"),
    (["--hint", "fc2"], "bad --hint 'fc2'"),
    (["--hint", "fc7=fc2"], "the student has no layer 'fc7'"),
    (["--student", "lenet3000"], "unknown model 'lenet3000'"),
])
def test_bad_options_are_one_line(teacher, idx_dir, tmp_path, args, needle):
    base = {"--student": "lenet300"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    flat = [a for kv in base.items() for a in kv if kv[0] != "--hint"] + (["--hint", base["--hint"]]
                                                                           if "--hint" in base else [])
    res = run("distill", "--teacher", teacher, *flat, *_data(idx_dir), "--epochs", 1, "--out", tmp_path / "s.st")
    assert res.exit_code == 1
    assert needle in res.output and res.output.strip().count("\n") == 0, res.output


@pytest.mark.parametrize("content, needle", [
    (None, "cannot load the teacher: checkpoint"),
    (b"not a checkpoint at all", "cannot load the teacher:"),
])
def test_a_teacher_that_does_not_load_is_one_line(idx_dir, tmp_path, content, needle):
    bad = tmp_path / "teacher.safetensors"
    if content is not None:
        bad.write_bytes(content)
    res = run("distill", "--teacher", bad, "--student", "lenet300", *_data(idx_dir), "--out", tmp_path / "s.st")
    assert res.exit_code == 1 and needle in res.output and res.output.strip().count("\n") == 0, res.output


def test_teacher_for_other_inputs_is_one_line(teacher, tmp_path):
    res = run("distill", "--teacher", teacher, "--student", "lenet300", "--data", "digits",
              "--data-val-size", 100, "--out", tmp_path / "s")
    assert res.exit_code == 1 and "dataset 'digits' has inputs (1, 8, 8) but" in res.output
    assert "expects (1, 28, 28)" in res.output


def _torchrun(args, nproc=2):
    return karuku_cli(args, nproc).stdout


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["--hint", "fc2=fc2"]], ids=["cached-logits", "hint-adapter"])
def test_two_processes_match_one(teacher, idx_dir, tmp_path, extra):
    # cached logits: each rank must look up its own half of every batch; hints: the adapter's
    # gradients must be averaged across ranks. Either mistake makes the two runs drift apart.
    args = ["distill", "--teacher", teacher, "--student", "lenet300", *_data(idx_dir), "--iterations", 12,
            "--batch-size", 32, "--lr", 0.05, "--quiet", *extra]
    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    res = run(*args, "--out", one)  # the one-process reference runs in this process: one interpreter fewer
    assert res.exit_code == 0, res.output
    assert _torchrun([*args, "--out", two]).count("student test accuracy") == 1
    a, b = load_checkpoint(one).state, load_checkpoint(two).state
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
