"""`karuku lottery ...` runs (or resumes) an experiment; `karuku lottery report DIR` draws it."""

from __future__ import annotations

from pathlib import Path

import typer
from typer._click import exceptions as click_errors

from karuku.cli.app import app, guard, sub_app
from karuku.cli.commands.common import console
from karuku.cli.options import Section, configs
from karuku.lottery.config import LotteryConfig

lottery_app = sub_app("lottery tickets: iterative magnitude pruning with rewinding, and controls")
app.add_typer(lottery_app, name="lottery", invoke_without_command=True)


@lottery_app.callback()
@guard
@configs(cfg=Section(LotteryConfig))
def lottery_cmd(
    ctx: typer.Context,
    out: Path = typer.Option(None, help="parent folder of the experiment (a folder named by a settings hash)"),
    *,
    cfg: LotteryConfig,
) -> None:
    """Run (or resume) a lottery-ticket experiment: ticket, random re-init and random mask at every level."""
    if ctx.invoked_subcommand is not None:
        return
    if out is None:
        raise click_errors.UsageError("Missing option '--out'.", ctx=ctx)
    from karuku.io.atomic import ensure_writable_dir
    from karuku.lottery.job import lottery_experiment

    ensure_writable_dir(out / "settings.json")  # an unwritable --out fails before any training
    folder = lottery_experiment(cfg, out, log=lambda s: console.print(s, soft_wrap=True))
    console.print(f"experiment {folder}: table.csv, table.json, lottery.png, report.md", soft_wrap=True)


@lottery_app.command("report")
@guard
def report_cmd(folder: Path = typer.Argument(..., help="an experiment folder, or the --out folder above it")) -> None:
    """Tables (CSV, JSON, Markdown) and the paper's figures from finished levels."""
    from karuku.lottery import write_report

    for f in write_report(folder):
        console.print(f"{f}: table.csv, table.json, lottery.png, report.md", soft_wrap=True)
