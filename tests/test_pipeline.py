"""The compression loop: recipe validation with YAML paths, a real run, resume after kill -9, the report."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from typer.testing import CliRunner

from karuku.cli import commands  # noqa: F401  (registers the commands)
from karuku.cli.app import app
from karuku.errors import KarukuError
from karuku.io.checkpoint import load_checkpoint
from karuku.pipeline import compress, load_recipe, parse_recipe

runner = CliRunner()

RECIPE = {
    "version": 1, "name": "digits-test", "seed": 1,
    "threads": 1,  # results compared across runs: the automatic count follows the machine's load
    "data": {"name": "digits", "val_size": 200},
    "model": {"name": "lenet300", "train": {"epochs": 2, "lr": 0.05, "batch_size": 32}},
    "budget": {"max_drop": 5.0, "max_size_kb": 1000, "profile": "mcu-m4"},
    "recovery": {"epochs": 1, "max_rounds": 1},
    "stages": [{"finetune": {"epochs": 1, "lr": 0.01}}, {"export": {"format": "onnx"}}],
}


def write(tmp_path, doc, name="r.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc) if isinstance(doc, dict) else doc)
    return path


@pytest.mark.parametrize("change, needles", [
    (lambda d: d.update(colour="red"), ["colour: Extra inputs are not permitted"]),
    (lambda d: d.update(version=2), ["version: Input should be 1"]),
    (lambda d: d["model"]["train"].update(epochs="ten"), ["model.train.epochs: Input should be a valid integer"]),
    (lambda d: d["budget"].update(profile="arduino"),
     ["budget.profile: unknown device profile 'arduino'", "(known: mcu-m4"]),
    (lambda d: d["stages"].append({"shrink": {}}), ["stages[2].shrink: unknown stage 'shrink'", "allowed:"]),
    (lambda d: d["stages"][0]["finetune"].update(epochz=3), ["stages[0].finetune.epochz: Extra inputs"]),
    (lambda d: d["stages"][1]["export"].update(format="coreml"), ["stages[1].export.format: Input should be 'onnx'"]),
    (lambda d: d["model"].pop("name"), ["model: give a model name"]),
])
def test_every_problem_has_its_yaml_path(change, needles):
    doc = json.loads(json.dumps(RECIPE))
    change(doc)
    recipe, problems = parse_recipe(doc)
    assert recipe is None
    text = "; ".join(problems)
    for needle in needles:
        assert needle in text, text


def test_several_problems_are_reported_together(tmp_path):
    doc = json.loads(json.dumps(RECIPE))
    doc["colour"] = 1
    doc["budget"]["max_drop"] = -1
    res = runner.invoke(app, ["recipe", "validate", str(write(tmp_path, doc))])
    assert res.exit_code == 1
    assert "2 problem(s)" in res.output and "colour" in res.output and "budget.max_drop" in res.output


def test_broken_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "version: 1\nmodel: {name: lenet300\nstages: []\n")
    with pytest.raises(KarukuError, match="broken YAML at line"):
        load_recipe(path)


def test_valid_recipe(tmp_path):
    res = runner.invoke(app, ["recipe", "validate", str(write(tmp_path, RECIPE))])
    assert res.exit_code == 0 and "valid" in res.output and "finetune, export" in res.output


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    recipe = load_recipe(write(tmp, RECIPE))
    outcome = compress(recipe, tmp / "run", verbose=False)
    return recipe, outcome


def test_a_run_writes_everything(finished_run):
    _, outcome = finished_run
    root = outcome.run_dir
    for name in ("final.safetensors", "summary.json", "report.html", "report.md", "run.log", "pareto.svg"):
        assert (root / name).is_file(), name
    summary = json.loads((root / "summary.json").read_text())
    assert [a["kind"] for a in summary["attempts"]] == ["baseline", "finetune", "export"]
    assert summary["baseline"]["measure"]["accuracy"] > 0.8
    assert {c["limit"] for c in summary["checks"]} == {"max_drop", "max_size_kb", "profile"}
    assert summary["ok"] == all(c["ok"] for c in summary["checks"])
    html = (root / "report.html").read_text()
    assert '<figure id="pareto"' in html and "<svg" in html  # plots inline: the page is one file
    assert "src=" not in html.replace('src:url(data:', "")  # nothing loaded from elsewhere
    assert "1. Background" in html and "4. Edge" in html
    # the baseline-vs-result speed figures come from one side-by-side timing at the end, and say so
    assert summary["side_by_side"] is True and "timed side by side" in html
    for step in (summary["baseline"], summary["final"]):
        assert step["measure"]["latency_ms"] > 0 and step["measure"]["throughput_b64"] > 0
    export = summary["attempts"][-1]
    assert os.path.isfile(export["artifacts"]["onnx"])


def test_rerun_skips_every_finished_step(finished_run):
    recipe, outcome = finished_run
    again = compress(recipe, outcome.run_dir, verbose=False)
    log = (outcome.run_dir / "run.log").read_text()
    assert log.count("done before, skipped") == 3
    assert again.final["measure"]["accuracy"] == outcome.final["measure"]["accuracy"]


def test_japanese_report(finished_run):
    recipe, outcome = finished_run
    compress(recipe, outcome.run_dir, verbose=False, lang="ja")
    text = (outcome.run_dir / "report.ja.html").read_text()
    assert 'lang="ja"' in text and "背景" in text and "エッジ" in text


def test_strict_fails_when_the_budget_is_not_met(tmp_path, finished_run):
    _, outcome = finished_run
    doc = json.loads(json.dumps(RECIPE))
    doc["budget"]["max_size_kb"] = 1  # impossible; every step is reused from the finished run
    res = runner.invoke(app, ["compress", str(write(tmp_path, doc)), "--out", str(outcome.run_dir), "--strict",
                              "--quiet"])
    assert res.exit_code == 2, res.output
    assert "budget not met" in res.output and "FAIL" in res.output


def _run_cli(recipe_path, run_dir):
    return subprocess.Popen([sys.executable, "-m", "karuku", "compress", str(recipe_path), "--out", str(run_dir),
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=dict(os.environ, OMP_NUM_THREADS="1"))


@pytest.mark.slow
def test_kill_9_then_rerun_reaches_the_same_result(tmp_path, finished_run):
    _, reference = finished_run
    path = write(tmp_path, RECIPE)
    run_dir = tmp_path / "killed"
    proc = _run_cli(path, run_dir)
    log = run_dir / "run.log"
    deadline = time.time() + 240
    while time.time() < deadline and not (log.is_file() and "stage 1/2 finetune: running" in log.read_text()):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert "stage 1/2 finetune: running" in log.read_text() and not (run_dir / "summary.json").exists()
    proc = _run_cli(path, run_dir)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    a = load_checkpoint(run_dir / "final.safetensors")
    b = load_checkpoint(reference.run_dir / "final.safetensors")
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    assert "baseline: done before, skipped" in log.read_text()


def _run_recipe(tmp_path, doc):
    return compress(load_recipe(write(tmp_path, doc)), tmp_path / "run", verbose=False)


def test_prune_quantize_export_chain(tmp_path):
    doc = json.loads(json.dumps(RECIPE))
    doc["budget"] = {"max_drop": 10.0, "profile": "mcu-m4"}
    doc["stages"] = [{"prune": {"sparsity": 0.5}}, {"quantize": {"mode": "ptq", "calibration": 128}},
                     {"export": {"format": "c", "profile": "mcu-m4"}}]
    outcome = _run_recipe(tmp_path, doc)
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    stages = [a for a in summary["attempts"] if a["kind"] != "baseline"]
    assert [a["kind"] for a in stages] == ["prune", "quantize", "export"]
    final = summary["final"]["measure"]
    assert final["deploy_kind"] == "int8" and final["sizes"]["int8"] < final["sizes"]["fp32"] / 3
    assert final["nonzeros"] <= 0.6 * final["params"]  # the mask survived quantization
    c_dir = stages[-1]["artifacts"]["c"]
    assert os.path.isfile(os.path.join(c_dir, "lenet300.c")) and os.path.isfile(stages[1]["artifacts"]["onnx_int8"])
    ckpt = load_checkpoint(outcome.run_dir / "final.safetensors")
    assert [t["name"] for t in ckpt.meta["transforms"]] == ["quantize"] and "mask" in ckpt.sections


def test_the_export_stage_writes_a_checked_tflite(tmp_path):
    doc = json.loads(json.dumps(RECIPE))
    doc["budget"] = {"max_drop": 10.0}
    doc["stages"] = [{"quantize": {"mode": "ptq", "calibration": 128}}, {"export": {"format": "tflite"}}]
    outcome = _run_recipe(tmp_path, doc)
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    export = summary["attempts"][-1]
    assert export["kind"] == "export" and set(export["artifacts"]) == {"tflite"}  # not an ONNX file by that name
    with open(export["artifacts"]["tflite"], "rb") as f:
        assert f.read(8)[4:8] == b"TFL3"  # the flatbuffer's file identifier
    assert export["stage_meta"]["tflite"].startswith("wrote ")
    assert ".tflite: wrote" in (outcome.run_dir / "report.md").read_text()


def test_deep_compression_chain_and_backoff(tmp_path):
    doc = json.loads(json.dumps(RECIPE))
    doc["budget"] = {"max_drop": 0.0}  # nothing lossy can pass: every back-off round is tried
    doc["recovery"] = {"epochs": 0, "max_rounds": 1}
    doc["stages"] = [{"prune": {"sparsity": 0.9}}, {"cluster": {"bits": 4}}, {"pack": {}}]
    outcome = _run_recipe(tmp_path, doc)
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    prunes = [a for a in summary["attempts"] if a["kind"] == "prune"]
    assert [a["settings"]["sparsity"] for a in prunes] == [0.9, 0.85] or prunes[0]["within_budget"]
    final = summary["final"]["measure"]
    assert final["deploy_kind"] == "packed" and final["sizes"]["packed"] < final["sizes"]["fp32"] / 5
    assert os.path.isfile(summary["final"]["artifacts"]["krk"])


def test_prune_backoff_eases_every_layer_rate():
    from karuku.pipeline.stages import get_stage
    from karuku.pruning import PruneConfig

    stage = get_stage("prune")
    eased = stage.backoff(PruneConfig(sparsity=0.92, overrides={"conv1": 0.34, "fc1": 0.92}), 1)
    assert eased.sparsity == 0.88 and eased.overrides == {"conv1": 0.01, "fc1": 0.88}
    assert stage.backoff(eased, 2).overrides["conv1"] == 0.0  # never below zero


def test_every_shipped_recipe_is_valid_and_headed_by_its_command():
    from karuku.recipes import DEFAULT, shipped

    recipes = shipped()
    assert DEFAULT in recipes and len(recipes) >= 5
    from karuku.text.recipe import is_text_recipe
    from karuku.text.recipe import load_recipe as load_text_recipe

    for name, path in recipes.items():
        recipe = load_text_recipe(path) if is_text_recipe(path) else load_recipe(path)
        assert recipe.name == name
        head = path.read_text().splitlines()
        assert head[0] == f"# karuku compress recipes/{path.name}" or head[0].startswith(
            f"# karuku compress recipes/{path.name} "), head[0]
        assert head[1].startswith("# Result")


def test_int8_export_miss_falls_back_to_u8u8_and_says_so(tmp_path, monkeypatch):
    """A parity miss inside `compress` (as on a CPU whose kernels saturate where detection said they don't)
    re-exports in the representation exact everywhere instead of failing the run."""
    import onnx

    from karuku.deploy import parity

    real, calls = parity.check, []

    def first_misses(im, representation, inputs, threads=2, explain_misses=True):
        p, raw = real(im, representation, inputs, threads, explain_misses)
        calls.append(representation)
        if len(calls) == 1:  # what an AVX2 CPU reported as VNNI gives: 99.5 % with saturated fc1 values
            p.agreement, p.departure = 0.995, parity.Departure("fc1", "linear", 13, 0.04, 1.0)
            p.cause = "ONNX Runtime's u8 x s8 kernels on this CPU add pairs of products in saturating int16"
        return p, raw

    monkeypatch.setattr(parity, "check", first_misses)
    doc = json.loads(json.dumps(RECIPE))
    doc["budget"] = {"max_drop": 10.0}
    doc["stages"] = [{"quantize": {"calibration": 128, "target_isa": "avx512-vnni"}}, {"export": {"format": "onnx"}}]
    outcome = _run_recipe(tmp_path, doc)
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    export = summary["attempts"][-1]
    assert calls == ["u8s8", "u8u8"]
    info = export["stage_meta"]["int8_onnx"]
    assert "first departs at 'fc1'" in info["fallback"] and "u8u8" in info["result"]
    model = onnx.load(export["artifacts"]["onnx_int8"])
    assert {p.key: p.value for p in model.metadata_props}["karuku.representation"] == "u8u8"
    html = (outcome.run_dir / "report.html").read_text()
    assert "Fallback" in html and "saturating int16" in html and summary["cpu"]["target"] in html


def test_a_recipe_with_five_faults_reports_all_five_with_paths_and_suggestions():
    doc = json.loads(json.dumps(RECIPE))
    doc["budjet"] = {"max_size_kb": 10}  # a top-level typo
    doc["model"]["train"]["epochs"] = "ten"
    doc["recovery"] = {"finetune_epochs": 1}  # a key that was renamed
    doc["stages"] = [{"prune": {"sparsity": None}}, {"prunne": {}}, {"quantize": {"observer": "mse2"}},
                     {"distill": {"temperature": 2}}]
    recipe, problems = parse_recipe(doc)
    assert recipe is None
    text = "\n".join(problems)
    for needle in ("budjet: Extra inputs are not permitted; did you mean 'budget'?",
                   "model.train.epochs: Input should be a valid integer",
                   "recovery.finetune_epochs: Extra inputs are not permitted: renamed, use epochs",
                   "stages[0].prune.sparsity: Input should be a valid number",
                   "stages[1].prunne: unknown stage 'prunne'; did you mean 'prune'? (allowed: cluster,",
                   "stages[2].quantize.observer: ",
                   "stages[3].distill.student: Field required (the student:"):
        assert needle in text, text
    assert len(problems) == 7, text


def test_old_stage_keys_say_what_replaced_them():
    doc = json.loads(json.dumps(RECIPE))
    doc["stages"] = [{"prune": {"finetune_epochs": 2}}, {"cluster": {"tune_epochs": 1}}]
    _, problems = parse_recipe(doc)
    assert problems == ["stages[0].prune.finetune_epochs: Extra inputs are not permitted: renamed, use finetune: "
                        "{epochs: N}", "stages[1].cluster.tune_epochs: Extra inputs are not permitted: renamed, use "
                        "finetune: {epochs: N}"]


def test_the_loop_core_names_no_technique():
    """Techniques join through the stage registry; the core modules never name one."""
    import re
    from pathlib import Path

    import karuku.pipeline.loop as loop

    core = ("loop.py", "steps.py", "run.py", "attempt.py", "stage.py", "budget.py", "runfolder.py")
    names = re.compile(r"\b(prune\w*|pruning|quant\w*|distil\w*|cluster\w*|codec|pack\w*|export\w*|QuantModel|"
                       r"Mask\w*)\b", re.IGNORECASE)
    for name in core:
        source = (Path(loop.__file__).parent / name).read_text()
        code = re.sub(r'"""[\s\S]*?"""', "", "\n".join(line.split("#")[0] for line in source.splitlines()))
        assert not names.search(code), (name, names.search(code))
    body = Path(loop.__file__).read_text().split("def compress(")[1].split("\ndef ")[0]
    assert len([x for x in body.splitlines() if x.strip() and not x.strip().startswith('"""')]) <= 14
