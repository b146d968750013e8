"""Hostile and unlucky input: checksum-valid documents with wrong types, specs that would allocate without bound,
FIFOs, recipes that are binary, nested or alias bombs, odd ONNX files, unwritable outputs, killed writes, and
models whose ONNX export would silently freeze a branch. Each is one KarukuError line, quickly, or a load."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save
from torch import nn
from typer.testing import CliRunner

import karuku.cli.commands  # noqa: F401  (registers the commands)
from karuku.cli.app import app
from karuku.errors import KarukuError
from karuku.io import safefile
from karuku.io.atomic import write_bytes
from karuku.io.checkpoint import load_model, save_checkpoint
from karuku.models import ModelSpec
from karuku.pipeline import load_recipe

runner = CliRunner()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A valid lenet300 checkpoint on 8×8 inputs: its tensors and document, to re-save with damage."""
    spec = ModelSpec(name="lenet300", input_shape=(1, 8, 8), num_classes=10)
    path = save_checkpoint(tmp_path_factory.mktemp("ok") / "m.safetensors", spec.build(), spec,
                           {"data": {"name": "digits", "val_size": 100}, "transforms": []})
    return safefile.read(path)


def damaged(tmp_path, small, **changes) -> Path:
    tensors, doc = small
    doc = {k: v for k, v in doc.items() if k != "tensors_sha256"}
    for key, value in changes.items():
        if value is ...:
            doc.pop(key, None)
        else:
            doc[key] = value
    return safefile.write(tmp_path / "bad.safetensors", tensors, doc)  # checksum valid: the damage is the content


PRUNE = "karuku.pruning.structured.rewrite"


def spec(**changes):
    return dict({"name": "lenet300", "input_shape": [1, 8, 8], "num_classes": 10, "kwargs": {}}, **changes)


@pytest.mark.parametrize("changes, needle", [
    ({"transforms": "abc"}, "invalid checkpoint document at 'transforms'"),
    ({"transforms": [{"name": "prune_channels", "module": PRUNE, "params": {"edits": {"fc1": {"out": [10**6]}}}}]},
     "transform 0 ('prune_channels') does not fit the model (IndexError"),
    ({"transforms": [{"name": "prune_channels", "module": PRUNE, "params": {"edits": "fc1"}}]},
     "transform 0 ('prune_channels')"),
    ({"transforms": [{"name": "prune_channels", "module": PRUNE, "params": {}}]}, "transform 0 ('prune_channels')"),
    ({"format_version": "abc"}, "invalid checkpoint document at 'format_version'"),
    ({"format_version": 7}, "format version 7, newer than this karuku reads"),
    ({"data": "mnist"}, "invalid checkpoint document at 'data'"),
    ({"sizes": {"fp32": "big"}}, "invalid checkpoint document at 'sizes.fp32'"),
    ({"model": spec(input_shape=[1, -8, 8])}, "invalid checkpoint document at 'model.input_shape'"),
    ({"model": spec(input_shape=[1, 2048, 2048])}, "holds 4,194,304 values"),
    ({"model": spec(num_classes=2**40)}, "invalid checkpoint document at 'model.num_classes'"),
    ({"model": spec(name="mnist1d-mlp", kwargs={"hidden": [2**30, 100]})}, "allocates far more than the file holds"),
    ({"model": spec(name="mnist1d-mlp", kwargs={"hidden": [-5, 100]})}, "negative"),
    ({"model": spec(kwargs={"hidden": [5]})}, "cannot build model 'lenet300'"),
    ({"model": "lenet300"}, "invalid checkpoint document at 'model'"),
    ({"model": ...}, "invalid checkpoint document at 'model'"),
])
def test_checksum_valid_documents_with_wrong_content(tmp_path, small, changes, needle):
    path = damaged(tmp_path, small, **changes)
    start = time.perf_counter()
    with pytest.raises(KarukuError) as err:
        load_model(path)
    assert needle in str(err.value) and "\n" not in str(err.value)
    assert time.perf_counter() - start < 20


def raw_safetensors(tmp_path, metadata: str) -> Path:
    path = tmp_path / "raw.safetensors"
    path.write_bytes(st_save({"model.x": torch.zeros(2)}, metadata={"karuku": metadata}))
    return path


@pytest.mark.parametrize("metadata, needle", [
    ("[1, 2]", "a JSON list, not an object"),
    ("[" * 100_000 + "]" * 100_000, "nested deeper than JSON readers go"),
    ('"text"', "a JSON str, not an object"),
    ("{", "not JSON"),
])
def test_metadata_that_is_not_a_document(tmp_path, metadata, needle):
    res = runner.invoke(app, ["evaluate", str(raw_safetensors(tmp_path, metadata))])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1 and needle in lines[0], res.output


def test_a_fifo_as_a_checkpoint_does_not_hang(tmp_path):
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    code = ("import sys\nfrom karuku.cli.app import main\nsys.argv = ['karuku', 'evaluate', sys.argv[1]]\nmain()")
    proc = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.startswith("error: ") and "is not a regular file" in proc.stderr


@pytest.mark.parametrize("args", [["evaluate", "{}"], ["bench", "{}"], ["recipe", "validate", "{}"],
                                  ["train", "--model", "lenet300", "--init", "{}", "--out", "OUT"]])
def test_a_folder_or_device_is_named_as_such_not_as_missing(tmp_path, args):
    """train: the --init is checked before MNIST is fetched (the one line is the error, no fetching line)."""
    for path, needle in ((tmp_path, "is a folder"), ("/dev/null", "is not a regular file")):
        given = [str(tmp_path / "m.safetensors") if a == "OUT" else a.format(path) for a in args]
        res = runner.invoke(app, given)
        lines = res.output.strip().splitlines()
        assert res.exit_code == 1 and len(lines) == 1 and needle in lines[0] and "not found" not in lines[0], (
            args, res.output)


@pytest.mark.parametrize("text, needle", [
    (None, "is not UTF-8 text"),
    ("a: " + "[" * 5000 + "]" * 5000, "nests deeper than"),
    ("\n".join([f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9 if i else ['"x"'] * 9) + "]" for i in range(9)])
     + "\nversion: 1\nmodel: {name: lenet300, kwargs: {x: *l8}}\n", "expands to more than 100,000 values"),
    ("version: 1\nmodel: {name: lenet300}\nstages: !!python/object/apply:os.system ['true']\n", "broken YAML"),
])
def test_hostile_recipes(tmp_path, text, needle):
    path = tmp_path / "r.yaml"
    if text is None:
        path.write_bytes(bytes(range(256)) * 4)
    else:
        path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(KarukuError) as err:
        load_recipe(path)
    assert needle in str(err.value) and "\n" not in str(err.value)
    assert time.perf_counter() - start < 20


def _onnx(tmp_path, inputs: list[tuple[str, list]]) -> Path:
    import onnx
    from onnx import TensorProto, helper

    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs]
    const = helper.make_node("Constant", [], ["y"], value=helper.make_tensor("c", TensorProto.FLOAT, [1], [1.0]))
    graph = helper.make_graph([const], "g", ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("inputs, needle", [
    ([], "has 0 inputs"),
    ([("x", ["batch", 4096, 4096, 64])], "would take"),
    ([("x", ["batch", "h", 8])], "symbolic or empty dimensions"),
])
def test_bench_refuses_onnx_it_cannot_time(tmp_path, inputs, needle):
    res = runner.invoke(app, ["bench", str(_onnx(tmp_path, inputs)), "--runs", "1"])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1 and needle in lines[0], res.output


def test_an_unwritable_out_fails_before_training(tmp_path, idx_dir):
    res = runner.invoke(app, ["train", "--model", "lenet300", "--data", "idx", "--data-path", str(idx_dir),
                              "--data-val-size", "100", "--epochs", "1", "--out", "/proc/karuku.safetensors"])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1 and "output folder /proc is not writable" in lines[0], res.output
    recipe = tmp_path / "r.yaml"
    recipe.write_text("version: 1\nmodel: {name: lenet300}\ndata: {name: digits, val_size: 100}\n")
    res = runner.invoke(app, ["compress", str(recipe), "--out", "/proc/run"])
    assert res.exit_code == 1 and "cannot create folder /proc/run" in res.output
    for args in (["evaluate", "m.safetensors", "--json", "/proc/x.json"], ["lottery", "--out", "/proc/lottery"],
                 ["export", "m.safetensors", "--out", "/proc/m.onnx"],
                 ["prune", "m.safetensors", "--out", str(tmp_path / "p.safetensors"), "--json", "/proc/p.json"]):
        res = runner.invoke(app, args)  # the checkpoint does not exist either: the output is checked first
        assert res.exit_code == 1 and "/proc" in res.output and "not found" not in res.output, (args, res.output)


def test_temp_files_of_killed_writers_are_removed(tmp_path):
    target = tmp_path / "m.safetensors"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".m.safetensors.{int(dead.stdout)}.abc123.tmp"
    live = tmp_path / f".m.safetensors.{os.getpid()}.def456.tmp"  # a writer still running: left alone
    other = tmp_path / f".n.safetensors.{int(dead.stdout)}.x.tmp"  # another file's: left alone
    for f in (stale, live, other):
        f.write_bytes(b"half")
    write_bytes(target, b"whole")
    assert target.read_bytes() == b"whole" and not stale.exists() and live.exists() and other.exists()


def test_a_full_disk_leaves_no_file_under_the_real_name(tmp_path, monkeypatch):
    import shutil

    from karuku.io.atomic import atomic_path

    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 10_000)

    def copy_half(a, b):
        Path(b).write_bytes(Path(a).read_bytes()[:5000])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", copy_half)
    with pytest.raises(OSError), atomic_path(tmp_path / "final.safetensors") as tmp:
        shutil.copyfile(src, tmp)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.bin"]


def test_every_file_is_written_through_the_atomic_helpers():
    """No module writes a file under its real name directly (a crash would leave half of it there)."""
    import re

    import karuku

    src = Path(karuku.__file__).parent
    scratch = {"deploy/c/toolchain.py"}  # writes only into its own temporary build folder
    direct = re.compile(r"(?<!container)\.write_(text|bytes)\(|open\([^)]*[\"'][wa]b?[\"']|shutil\.copy|"
                        r"onnx\.save\(|torch\.save\(")
    found = [f"{f.relative_to(src)}:{i}" for f in src.rglob("*.py") if str(f.relative_to(src)) not in scratch
             and f.name != "atomic.py"
             for i, line in enumerate(f.read_text().splitlines(), 1) if direct.search(line)
             and "tmp" not in line and "run.log" not in line]
    assert len(list(src.rglob("*.py"))) > 100 and found == [], found


class Branchy(nn.Module):
    """Python control flow on tensor values: tracing keeps one branch."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(64, 10), nn.Linear(64, 10)

    def forward(self, x):
        x = x.flatten(1)
        return self.a(x) if x.mean() > 0 else self.b(x)


class Recurrent(nn.Module):
    """An LSTM: the tracer warns about its internal checks, yet its export is right for every input."""

    def __init__(self):
        super().__init__()
        self.lstm, self.fc = nn.LSTM(8, 16, batch_first=True), nn.Linear(16, 10)

    def forward(self, x):
        out, _ = self.lstm(x.flatten(1, 2))
        return self.fc(out[:, -1])


def test_onnx_of_a_model_that_branches_on_its_inputs_is_refused(tmp_path):
    from karuku.deploy.onnx_fp32 import export_fp32

    torch.manual_seed(0)
    with pytest.raises(KarukuError, match="control flow depends on its input values"):
        export_fp32(Branchy().eval(), (1, 8, 8), tmp_path / "b.onnx")
    assert not (tmp_path / "b.onnx").exists()
    rec = Recurrent().eval()
    res = export_fp32(rec, (1, 8, 8), tmp_path / "r.onnx")
    assert res.max_abs_diff <= 1e-4 and "control flow reads tensor values" in res.note and res.checked == 80
    import onnxruntime as ort

    sess = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((6, 1, 1, 8, 8)).astype(np.float32) * 4 - 2
    with torch.no_grad():
        for one in x:  # single inputs either side of zero: the right answer each time
            assert np.abs(sess.run(None, {"input": one})[0] - rec(torch.from_numpy(one)).numpy()).max() < 1e-4


def test_a_document_missing_what_karuku_reads(tmp_path):
    digest = safefile.tensor_digest({"model.x": torch.zeros(2)})
    doc = json.dumps({"format": "karuku.checkpoint", "tensors_sha256": digest})
    with pytest.raises(KarukuError, match="invalid checkpoint document at 'format_version'"):
        load_model(raw_safetensors(tmp_path, doc))


@pytest.mark.parametrize("factory", ["lstm", "attention"])
def test_quantizing_recurrent_and_attention_models_is_no_raw_exception(tmp_path, factory):
    """The defect: `nn.LSTM` and `nn.MultiheadAttention` reached the user as AttributeError / TypeError."""
    ckpt = tmp_path / "m.safetensors"
    res = runner.invoke(app, ["train", "--model", f"helpers.oddmodels:{factory}", "--data", "digits",
                              "--data-val-size", "100", "--epochs", "1", "--quiet", "--out", str(ckpt)])
    assert res.exit_code == 0, res.output
    for mode in ("ptq", "dynamic", "qat"):
        args = ["quantize", str(ckpt), "--mode", mode, "--calibration", "64", "--quiet",
                "--out", str(tmp_path / f"q-{mode}.safetensors")] + (["--finetune-iterations", "5"] if mode == "qat"
                                                                      else [])
        res = runner.invoke(app, args)
        lines = res.output.strip().splitlines()
        assert res.exit_code == 0 or (res.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: ")
                                      and "Error:" not in lines[0]), (mode, res.output)


ODD = "helpers.oddmodels"


@pytest.mark.parametrize("model, needle", [
    (f"{ODD}:pair", "the model returns a tuple, not a tensor of class scores"),
    (f"{ODD}:wrong_width", "the model does not run on this data's inputs (1, 8, 8): RuntimeError: mat1 and mat2"),
    (f"{ODD}:few_classes", "shape (2, 3) for 2 inputs, not (2, 10) for this data's 10 classes"),
    (f"{ODD}:fails", f"model factory '{ODD}:fails' failed: ValueError: the factory's own complaint"),
    ("helpers.brokenmodels:net", "importing 'helpers.brokenmodels' for model 'helpers.brokenmodels:net' failed: "
                                 "ValueError: invalid literal"),
])
def test_an_own_model_that_does_not_fit_the_data_is_one_line(tmp_path, model, needle):
    """The defect: TypeError / RuntimeError / ValueError from inside the training loop, the factory or the import."""
    res = runner.invoke(app, ["train", "--model", model, "--data", "digits", "--data-val-size", "100",
                              "--epochs", "1", "--out", str(tmp_path / "m.safetensors")])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1 and needle in lines[0], res.output


def test_a_key_value_option_nested_too_deep_is_one_line(tmp_path):
    """The defect: `--model-arg x=[[[[...` reached the user as RecursionError."""
    res = runner.invoke(app, ["train", "--model", "lenet300", "--model-arg", "x=" + "[" * 50_000,
                              "--out", str(tmp_path / "m.safetensors")])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1 and "bad --model-arg 'x': its value nests deeper" in lines[0], (
        res.output[:300])


def test_a_model_larger_than_free_memory_is_one_line_before_allocating(monkeypatch):
    """The defect: `--model-arg hidden=[100000000000,5]` reached the user as the allocator's RuntimeError (or, with
    overcommit, a kill mid-build)."""
    from karuku.io import allocation

    huge = ModelSpec(name="mnist1d-mlp", input_shape=(1, 40), num_classes=10, kwargs={"hidden": [2**40, 5]})
    with pytest.raises(KarukuError, match="'mnist1d-mlp': building it allocates more than this machine's free"):
        huge.build()
    monkeypatch.setattr(allocation, "free_memory_bytes", lambda: 1_000_000)  # lenet300: 266,610 values, 1.07 MB
    with pytest.raises(KarukuError, match="free memory"):
        ModelSpec(name="lenet300", input_shape=(1, 28, 28), num_classes=10).build()
    monkeypatch.setattr(allocation, "free_memory_bytes", lambda: 2_000_000)
    ModelSpec(name="lenet300", input_shape=(1, 28, 28), num_classes=10).build()
