"""`karuku prune` and `karuku sensitivity`: prune a checkpoint and report what it bought."""

from __future__ import annotations

from pathlib import Path

import typer

from karuku.cli.app import app, guard
from karuku.cli.commands.common import console, print_table, write_json
from karuku.cli.options import build_config, with_configs
from karuku.pruning.config import PruneConfig
from karuku.training.config import TrainConfig


def _splits(ckpt, data: str | None, data_path: str | None, val_size: int | None = None):
    from karuku.data import DataConfig, load_splits
    from karuku.errors import KarukuError

    stored = dict(ckpt.meta.get("data") or {})
    if data and data != stored.get("name"):
        stored = {"name": data}
    if not stored.get("name"):
        raise KarukuError(f"{ckpt.path} does not say which data it was trained on", "pass --data")
    if data_path:
        stored["path"] = data_path
    if val_size is not None:
        stored["val_size"] = val_size
    splits = load_splits(DataConfig(**stored))
    if tuple(splits.input_shape) != tuple(ckpt.spec.input_shape):
        raise KarukuError(f"dataset '{stored['name']}' has inputs {splits.input_shape} but {ckpt.path} expects "
                          f"{tuple(ckpt.spec.input_shape)}", "pass the dataset the model was trained on")
    return splits


def _parse_overrides(items: list[str] | None) -> dict[str, float]:
    from karuku.errors import KarukuError

    out = {}
    for item in items or []:
        pattern, sep, rate = item.partition("=")
        try:
            out[pattern] = float(rate)
        except ValueError:
            sep = ""
        if not sep or not pattern:
            raise KarukuError(f"bad --override '{item}'", "use pattern=rate, e.g. --override fc3=0.45")
    return out


def _fmt_lat(s: dict) -> str:
    lat = s.get("latency") or {}
    return "; ".join(f"{e} {f['b1_median_ms']:.3f} ms b1, {f['b64_per_s']:,.0f}/s b64" for e, f in lat.items()) or "-"


@app.command("prune")
@guard
@with_configs({"": (PruneConfig, ("overrides", "exclude")), "ft_": (TrainConfig, ("epochs",))})
def prune_cmd(
    checkpoint: Path = typer.Argument(..., help="a karuku checkpoint (.safetensors)"),
    out: Path = typer.Option(..., help="pruned checkpoint to write"),
    finetune: int = typer.Option(0, help="fine-tuning epochs after pruning (per round for iterative)"),
    exclude: list[str] = typer.Option(None, help="layer-name pattern never pruned (repeatable)"),
    override: list[str] = typer.Option(None, help="layer scope: pattern=rate, e.g. fc3=0.45 (repeatable)"),
    data: str = typer.Option(None, help="dataset (default: the one the checkpoint was trained on)"),
    data_path: str = typer.Option(None, help="folder of the raw data files"),
    threads: int = typer.Option(2, help="threads for latency measurements"),
    runs: int = typer.Option(20, help="timed runs per latency figure (median reported)"),
    latency: bool = typer.Option(True, "--latency/--no-latency", help="measure torch and ONNX Runtime speed"),
    json_out: Path = typer.Option(None, "--json", help="also write every figure to this JSON file"),
    quiet: bool = typer.Option(False, help="no training progress output"),
    **options,
) -> None:
    """Prune a checkpoint (unstructured masks or structured channel removal), optionally fine-tune."""
    import copy

    from karuku.errors import KarukuError
    from karuku.io.atomic import ensure_writable_dir
    from karuku.io.checkpoint import load_model
    from karuku.measure.evaluation import evaluate
    from karuku.pruning import load_mask, prune, save_pruned
    from karuku.pruning.config import PruneConfigError
    from karuku.pruning.report import layer_rows, verdict

    try:
        cfg = build_config(PruneConfig, options, overrides=_parse_overrides(override), exclude=list(exclude or []))
    except PruneConfigError as exc:
        flag = "--" + exc.field.split(".")[0].replace("_", "-")
        raise KarukuError(f"invalid {flag}: {exc.reason}") from None
    if finetune < 0:
        raise KarukuError(f"invalid --finetune {finetune}", "give a number of epochs ≥ 0")
    if cfg.kind != "oneshot" and not finetune:
        raise KarukuError(f"schedule '{cfg.schedule}' fine-tunes between steps", "add --finetune EPOCHS")
    ft = build_config(TrainConfig, options, "ft_", epochs=finetune) if finetune else None
    ensure_writable_dir(out)
    model, ckpt = load_model(checkpoint)
    mask = load_mask(ckpt, model)
    shape = tuple(ckpt.spec.input_shape)
    splits = _splits(ckpt, data, data_path) if (ft or data or ckpt.meta.get("data")) else None
    before = copy.deepcopy(model)
    result = prune(model, cfg, splits, ft, mask=mask, input_shape=shape, verbose=not quiet)
    model.eval()
    engines = ("torch", "onnxruntime") if latency else ()
    ev = {k: evaluate(net, splits, shape, threads=threads, engines=engines, runs=runs)
          for k, net in (("before", before), ("after", model))}
    figures = {k: e.as_dict() for k, e in ev.items()}
    figures["layers"] = layer_rows(before, model, shape)
    figures["rounds"] = result.rounds
    figures["verdict"] = verdict(ev["before"], ev["after"], cfg.structured)
    meta = {"pruning": {"config": cfg.model_dump(mode="json"), "rounds": result.rounds,
                        "finetune": ft.model_dump(mode="json") if ft else None},
            "metrics": {"test": ev["after"].test_score()} if splits is not None else {}}
    save_pruned(out, model, ckpt.spec, result.mask, result.transforms, meta, base=ckpt)
    if result.mask is not None:
        result.mask.write_summary(out.with_suffix(".mask.json"))
    _print(figures, checkpoint, out)
    if json_out:
        write_json(json_out, figures)


def _print(fig: dict, src: Path, out: Path) -> None:
    from rich.table import Table

    table = Table("layer", "params", "nonzeros", "sparsity", "MACs dense", "MACs effective",
                  title="per layer (before → after)", title_justify="left")
    for r in fig["layers"]:
        params = f"{r['params_before']:,}" + (f" → {r['params']:,}" if r["params"] != r["params_before"] else "")
        macs = f"{r['macs_before']:,}" + (f" → {r['macs']:,}" if r["macs"] != r["macs_before"] else "")
        table.add_row(r["layer"], params, f"{r['nonzeros']:,}", f"{100 * r['sparsity']:.1f} %", macs,
                      f"{r['effective_macs']:,}")
    console.print(table)
    b, a = fig["before"], fig["after"]
    rows = []
    if b["accuracy"] is not None:
        rows.append(("test accuracy", f"{100 * b['accuracy']:.2f} % → {100 * a['accuracy']:.2f} %"))
    rows += [("parameters", f"{b['params']:,} → {a['params']:,}"),
             ("nonzeros", f"{b['nonzeros']:,} → {a['nonzeros']:,} ({100 * (1 - a['nonzeros'] / b['params']):.1f} %"
                          " of the original removed)"),
             ("MACs dense", f"{b['macs']:,} → {a['macs']:,}"),
             ("MACs effective", f"{b['effective_macs']:,} → {a['effective_macs']:,}"),
             ("size fp32", f"{b['sizes']['fp32']:,} B → {a['sizes']['fp32']:,} B"),
             ("latency before", _fmt_lat(b)), ("latency after", _fmt_lat(a)),
             ("what it buys", fig["verdict"])]
    print_table(f"karuku prune {src} → {out}", rows)


@app.command("sensitivity")
@guard
def sensitivity_cmd(
    checkpoint: Path = typer.Argument(..., help="a karuku checkpoint (.safetensors)"),
    data: str = typer.Option(None, help="dataset (default: the one the checkpoint was trained on)"),
    data_path: str = typer.Option(None, help="folder of the raw data files"),
    rates: str = typer.Option("0.3,0.5,0.7,0.8,0.9,0.95,0.98", help="comma-separated sparsities to sweep"),
    method: str = typer.Option("magnitude", help="scoring: magnitude or random"),
    target: float = typer.Option(None, help="choose per-layer rates reaching this overall sparsity"),
    limit: int = typer.Option(5000, help="score on the first N validation (else test) examples"),
    out: Path = typer.Option(Path("sensitivity"), help="folder for sensitivity.md / .json / .png"),
) -> None:
    """Prune one layer at a time over a sweep of rates and tabulate the accuracy drop."""
    from torch.utils.data import TensorDataset

    from karuku.errors import KarukuError
    from karuku.io.atomic import ensure_writable_dir
    from karuku.io.checkpoint import load_model
    from karuku.pruning.sensitivity import sweep

    try:
        sweep_rates = [float(r) for r in rates.split(",") if r.strip()]
    except ValueError:
        raise KarukuError(f"bad --rates '{rates}'", "give comma-separated numbers, e.g. 0.5,0.7,0.9") from None
    if target is not None and not 0 <= target < 1:
        raise KarukuError(f"invalid --target {target}", "give a sparsity in [0, 1), e.g. 0.9")
    ensure_writable_dir(out / "sensitivity.md")
    model, ckpt = load_model(checkpoint)
    splits = _splits(ckpt, data, data_path)
    split = splits.val if splits.val is not None else splits.test
    subset = TensorDataset(*(t[:limit] for t in split.tensors))
    result = sweep(model, subset, sweep_rates, method)
    paths = result.write(out)
    console.print(result.markdown())
    if target is not None:
        chosen = result.choose_rates(target)
        console.print(f"per-layer rates for {100 * target:g} % overall: " + "  ".join(
            f"--override {n.removesuffix('.weight')}={r:.4f}" for n, r in chosen.items()), soft_wrap=True)
    console.print(f"wrote {paths['table']}, {paths['json']}, {paths['plot']}")
