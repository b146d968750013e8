"""`karuku demo`: the main job — the default recipe on real MNIST, end to end."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from karuku.cli.app import app, guard
from karuku.cli.commands.common import console, print_outcome
from karuku.cli.options import THREADS_HELP, configs


@app.command("demo")
@guard
@configs()
def demo_cmd(
    recipe: str = typer.Option(None, help="a shipped recipe name (default: mnist-lenet300-int8)"),
    out: Path = typer.Option(None, help="run folder (default runs/<recipe>-<hash>)"),
    lang: str = typer.Option("en", metavar="en|ja", help="report language"),
    threads: int = typer.Option(None, metavar="N", help=THREADS_HELP + "; overrides the recipe's threads"),
) -> None:
    """Compress LeNet-300-100 on real MNIST (fetched when needed): train, prune, int8, ONNX and C; print the summary."""
    from karuku.errors import KarukuError, closest
    from karuku.pipeline import compress, load_recipe
    from karuku.recipes import DEFAULT, shipped
    from karuku.report.i18n import text

    text(lang)  # an unknown language fails before any work
    recipes = shipped()
    name = recipe or DEFAULT
    if name not in recipes:
        raise KarukuError(f"no shipped recipe '{name}'{closest(name, list(recipes))}", f"known: {', '.join(recipes)}")
    console.print(f"[bold]karuku demo[/bold]: recipe {name} ({recipes[name]})", soft_wrap=True)
    start = time.perf_counter()
    outcome = compress(load_recipe(recipes[name]), out, lang=lang, threads=threads)
    print_outcome(outcome)
    console.print(f"done in {(time.perf_counter() - start) / 60:.1f} min")
