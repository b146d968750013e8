"""`karuku prune` and `karuku sensitivity`: prune a checkpoint and report what it bought."""

from __future__ import annotations

from pathlib import Path

import typer

from karuku.cli.app import app, guard
from karuku.cli.commands.common import console, print_table, write_json
from karuku.cli.options import Section, configs
from karuku.data.config import DataConfig
from karuku.measure.config import MeasureConfig
from karuku.pruning.config import PruneConfig, SensitivityConfig


def _fmt_lat(s: dict) -> str:
    lat = s.get("latency") or {}
    return "; ".join(f"{e} {f['b1_median_ms']:.3f} ms b1, {f['b64_per_s']:,.0f}/s b64" for e, f in lat.items()) or "-"


@app.command("prune")
@guard
@configs(cfg=Section(PruneConfig), data=Section(DataConfig, "data", partial=True),
         measure=Section(MeasureConfig))
def prune_cmd(
    checkpoint: Path = typer.Argument(..., help="a karuku checkpoint (.safetensors)"),
    out: Path = typer.Option(..., help="pruned checkpoint to write"),
    json_out: Path = typer.Option(None, "--json", help="also write every figure to this JSON file"),
    quiet: bool = typer.Option(False, help="no training progress output"),
    *,
    cfg: PruneConfig,
    data: dict,
    measure: MeasureConfig,
) -> None:
    """Prune a checkpoint (unstructured masks or structured channel removal), optionally fine-tune."""
    from karuku.io.atomic import ensure_writable_dir
    from karuku.pruning.job import prune_checkpoint

    if json_out:
        ensure_writable_dir(json_out)  # before the pruning, not after it
    figures = prune_checkpoint(checkpoint, cfg, out, data, measure=measure, verbose=not quiet)
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
@configs(cfg=Section(SensitivityConfig), data=Section(DataConfig, "data", partial=True))
def sensitivity_cmd(
    checkpoint: Path = typer.Argument(..., help="a karuku checkpoint (.safetensors)"),
    out: Path = typer.Option(Path("sensitivity"), help="folder for sensitivity.md / .json / .png"),
    *,
    cfg: SensitivityConfig,
    data: dict,
) -> None:
    """Prune one layer at a time over a sweep of rates and tabulate the accuracy drop."""
    from karuku.data.batches import head
    from karuku.data.checkpoint import for_checkpoint
    from karuku.io.atomic import ensure_writable_dir
    from karuku.io.checkpoint import load_model
    from karuku.pruning.sensitivity import sweep

    ensure_writable_dir(out / "sensitivity.md")
    model, ckpt = load_model(checkpoint)
    splits = for_checkpoint(ckpt, data)
    split = splits.val if splits.val is not None else splits.test
    subset = head(split, cfg.limit)
    result = sweep(model, subset, cfg.rates, cfg.method)
    paths = result.write(out)
    console.print(result.markdown())
    if cfg.target is not None:
        target = cfg.target
        chosen = result.choose_rates(target)
        console.print(f"per-layer rates for {100 * target:g} % overall: " + "  ".join(
            f"--override {n.removesuffix('.weight')}={r:.4f}" for n, r in chosen.items()), soft_wrap=True)
    console.print(f"wrote {paths['table']}, {paths['json']}, {paths['plot']}")
