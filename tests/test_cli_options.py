"""The one option parser: flags named by the config's YAML path, bounds checked before any work, one name per
concept in every command."""

import pytest
import typer
from typer.testing import CliRunner

import karuku.cli.commands  # noqa: F401  (registers the commands)
from karuku.cli.app import app
from karuku.cli.options import Section, build, configs, parse_pairs
from karuku.errors import KarukuError
from karuku.lottery.config import LotteryConfig
from karuku.pruning.config import PruneConfig

runner = CliRunner()


def flags(*path: str) -> set[str]:
    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return {opt for p in cmd.params for opt in p.opts}


def test_one_name_per_concept_in_every_command():
    finetuning = {"prune": ("prune",), "quantize": ("quantize",), "cluster": ("cluster",)}
    for name, path in finetuning.items():
        f = flags(*path)
        assert {"--finetune-epochs", "--finetune-lr", "--finetune-iterations"} <= f, name
        assert not any(x.startswith(("--ft-", "--tune-", "--train-")) for x in f), name
    for name in ("train", "evaluate", "prune", "quantize", "cluster", "distill", "sensitivity"):
        assert {"--data", "--data-path", "--data-test-limit"} <= flags(name), name
    for name in ("quantize", "cluster"):
        assert "--layer-bits" in flags(name)
    assert {"--threads", "--runs"} <= flags("evaluate") & flags("prune") & flags("bench")
    assert {"--epochs", "--lr", "--student", "--student-arg", "--hint"} <= flags("distill")
    assert {"--model", "--model-arg", "--data", "--data-val-size", "--train-iterations"} <= flags("lottery")


@pytest.mark.parametrize("args, needle", [
    (["evaluate", "x.safetensors", "--runs", "0"], "invalid --runs: Input should be greater than or equal to 1"),
    (["bench", "x.onnx", "--threads", "0"], "invalid --threads 0: this process may use"),
    (["evaluate", "x.safetensors", "--data-test-limit", "0"], "invalid --data-test-limit: Input should be greater"),
    (["prune", "x.safetensors", "--out", "y", "--finetune-epochs", "-1"], "invalid --finetune-epochs: Input should"),
    (["cluster", "x.safetensors", "--out", "y", "--bits", "9"], "invalid --bits: Input should be less than or"),
    (["quantize", "x.safetensors", "--out", "y", "--layer-bits", "fc1"], "bad --layer-bits 'fc1'"),
    (["lottery", "--rate", "1.5", "--out", "y"], "invalid --rate"),
])
def test_bad_numbers_are_one_line_naming_the_flag_before_any_work(args, needle):
    res = runner.invoke(app, args)  # the checkpoints do not exist: the options fail first
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1 and needle in lines[0], res.output


def test_help_shows_the_configs_defaults_and_bounds():
    cmd = typer.main.get_command(app).commands["prune"]
    text = next(p.help for p in cmd.params if "--sparsity" in p.opts)
    assert "(≥ 0, < 1)" in text and "(default: 0.9)" in text
    assert runner.invoke(app, ["prune", "--help"]).exit_code == 0


def test_nested_settings_from_flags_and_their_defaults():
    app2 = typer.Typer()

    @app2.command()
    @configs(cfg=Section(PruneConfig), lot=Section(LotteryConfig, "lot"))
    def cmd(*, cfg: PruneConfig, lot: LotteryConfig) -> None:
        print(cfg.finetune, "|", lot.train.optimizer, lot.train.lr, lot.train.iterations, "|", lot.controls)

    out = runner.invoke(app2, []).output
    assert out.startswith("None |") and "adam 0.0012 50000 | ['reinit', 'random-mask']" in out
    out = runner.invoke(app2, ["--finetune-lr", "0.2", "--lot-train-lr", "0.1", "--lot-controls", ""]).output
    # a nested config built from one flag keeps the other defaults of its own default (the paper's training)
    assert "lr=0.2" in out and "adam 0.1 50000 | []" in out


def test_partial_sections_keep_only_what_was_given():
    from karuku.cli.options import _walk
    from karuku.data.config import DataConfig

    spec = Section(DataConfig, "data", partial=True)
    opts = _walk("data", DataConfig, spec, (), ["data"])
    assert {o.flag for o in opts} >= {"--data", "--data-path", "--data-val-size"}
    assert build(spec, opts, {"data__name": "digits", "data__test_limit": 5}) == {"name": "digits", "test_limit": 5}
    with pytest.raises(KarukuError, match="invalid --data-val-size"):
        build(spec, opts, {"data__val_size": -1})


def test_pairs_parse_json_values():
    assert parse_pairs(["a=1", "b=[1,2]", "c=x"], "--model-arg") == {"a": 1, "b": [1, 2], "c": "x"}
    with pytest.raises(KarukuError, match="bad --model-arg 'a'"):
        parse_pairs(["a"], "--model-arg")
