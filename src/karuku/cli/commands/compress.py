"""`karuku compress RECIPE` and `karuku recipe validate FILE`."""

from __future__ import annotations

from pathlib import Path

import typer

from karuku.cli.app import app, guard, sub_app
from karuku.cli.commands.common import console, print_outcome
from karuku.cli.options import THREADS_HELP, configs

recipe_app = sub_app("recipes: check them before running", no_args_is_help=True)
app.add_typer(recipe_app, name="recipe")


@app.command("compress")
@guard
@configs()
def compress_cmd(
    recipe: Path = typer.Argument(..., help="recipe YAML (see recipes/)"),
    out: Path = typer.Option(None, help="run folder (default runs/<name>-<hash of the recipe>)"),
    strict: bool = typer.Option(False, help="exit non-zero when the budget is not met"),
    lang: str = typer.Option("en", metavar="en|ja", help="report language"),
    quiet: bool = typer.Option(False, help="no progress output (stage announcements, training progress)"),
    threads: int = typer.Option(None, metavar="N", help=THREADS_HELP + "; overrides the recipe's threads"),
) -> None:
    """Run a recipe: baseline → compress → evaluate → recover → report. Re-running resumes."""
    from karuku.text.recipe import is_text_recipe

    if is_text_recipe(recipe):  # `task: sentence-embedding`: karuku.text's own stages and measures
        from karuku.cli.commands.text import compress_cmd as text_compress

        return text_compress(recipe, out, None, None, strict, threads)
    from karuku.pipeline import compress, load_recipe
    from karuku.report.i18n import text

    text(lang)  # an unknown language fails before any work
    outcome = compress(load_recipe(recipe), out, verbose=not quiet, lang=lang, threads=threads)
    print_outcome(outcome)
    if strict and not outcome.ok:
        raise typer.Exit(2)


@recipe_app.command("validate")
@guard
def validate_cmd(path: Path = typer.Argument(..., help="recipe YAML")) -> None:
    """Report every problem of a recipe with its YAML path and the allowed values."""
    from karuku.text.recipe import is_text_recipe

    if is_text_recipe(path):
        from karuku.cli.commands.text import validate_cmd as text_validate

        return text_validate(path)
    from karuku.pipeline import load_recipe

    recipe = load_recipe(path)
    console.print(f"{path}: valid (version {recipe.version}, {len(recipe.stages)} stage(s): "
                  f"{', '.join(s.kind for s in recipe.stages) or 'none'})")
