"""`karuku lottery ...` runs (or resumes) an experiment; `karuku lottery report DIR` draws it."""

from __future__ import annotations

from pathlib import Path

import typer

from karuku.cli.app import app, guard
from karuku.cli.commands.common import console, parse_kv

lottery_app = typer.Typer(help="lottery tickets: iterative magnitude pruning with rewinding, and controls")
app.add_typer(lottery_app, name="lottery", invoke_without_command=True)


@lottery_app.callback()
@guard
def lottery_cmd(
    ctx: typer.Context,
    model: str = typer.Option("lenet300", help="zoo name or package.module:factory"),
    model_arg: list[str] = typer.Option(None, help="factory argument key=value (repeatable)"),
    data: str = typer.Option("mnist", help="dataset"),
    data_val_size: int = typer.Option(5000, help="held-out validation examples (early stopping)"),
    levels: int = typer.Option(20, help="pruning rounds after the dense run"),
    rate: float = typer.Option(0.2, help="fraction of surviving weights pruned per round, in (0, 1)"),
    output_rate: float = typer.Option(0.1, help="rate of the output layer"),
    scope: str = typer.Option("layer", help="layer or global"),
    rewind: int = typer.Option(0, help="rewind survivors to their values at this iteration (0: init)"),
    controls: str = typer.Option("reinit,random-mask", help="comma-separated: reinit, random-mask ('' for none)"),
    trials: int = typer.Option(1, help="independent seeds"),
    seed: int = typer.Option(0, help="seed of the first trial"),
    iterations: int = typer.Option(50_000, help="training iterations per run (paper: 50,000)"),
    lr: float = typer.Option(1.2e-3, help="Adam learning rate (paper: 1.2e-3)"),
    batch_size: int = typer.Option(60, help="batch size (paper: 60)"),
    eval_every: int = typer.Option(100, help="validation every N iterations (early-stopping resolution)"),
    out: Path = typer.Option(None, help="parent folder of the experiment (a folder named by a settings hash)"),
) -> None:
    """Run (or resume) a lottery-ticket experiment: ticket, random re-init and random mask at every level."""
    if ctx.invoked_subcommand is not None:
        return
    if out is None:
        raise typer.BadParameter("--out is required", param_hint="--out")
    from pydantic import ValidationError

    from karuku.data import DataConfig
    from karuku.errors import KarukuError
    from karuku.lottery import LotteryConfig, run, write_report
    from karuku.training import TrainConfig

    try:
        cfg = LotteryConfig(
            model=model, model_kwargs=parse_kv(model_arg), data=DataConfig(name=data, val_size=data_val_size),
            levels=levels, rate=rate, output_rate=output_rate, scope=scope, rewind=rewind, trials=trials, seed=seed,
            controls=[c for c in controls.split(",") if c],
            train=TrainConfig(optimizer="adam", lr=lr, batch_size=batch_size, iterations=iterations,
                              eval_every=eval_every, schedule="constant", momentum=0.0))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise KarukuError(f"invalid --{where.replace('_', '-')}: {err['msg'].removeprefix('Value error, ')}") from None
    folder = run(cfg, out, log=lambda s: console.print(s, soft_wrap=True))
    write_report(folder)
    console.print(f"experiment {folder}: table.csv, table.json, lottery.png, report.md", soft_wrap=True)


@lottery_app.command("report")
@guard
def report_cmd(folder: Path = typer.Argument(..., help="an experiment folder, or the --out folder above it")) -> None:
    """Tables (CSV, JSON, Markdown) and the paper's figures from finished levels."""
    from karuku.lottery import write_report

    for f in write_report(folder):
        console.print(f"{f}: table.csv, table.json, lottery.png, report.md", soft_wrap=True)
