"""`karuku data list | fetch`."""

from __future__ import annotations

import typer

from karuku.cli.app import app, guard, sub_app
from karuku.cli.commands.common import console

data_app = sub_app("datasets: list them, fetch them into the cache", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("list")
@guard
def list_cmd() -> None:
    """The registered datasets and sources (input shape and classes inferred from the files where blank)."""
    from rich.table import Table

    from karuku.data import DATASETS, REMOTES, cache_dir
    from karuku.data.fetch import missing

    table = Table("name", "input", "classes", "description")
    for d in DATASETS.values():
        table.add_row(d.name, "×".join(map(str, d.input_shape)) if d.input_shape else "inferred",
                      str(d.num_classes) if d.num_classes else "inferred", d.description)
    console.print(table)
    have = [f"{r.title} {'present' if not missing(r, cache_dir() / r.name) else 'not fetched yet'}"
            for r in REMOTES.values()]
    console.print(f"cache: {cache_dir()} ({', '.join(have)}); your own: --data package.module:factory")


@data_app.command("fetch")
@guard
def fetch_cmd(name: str = typer.Argument("mnist", help="dataset to fetch (mnist, fashion-mnist)")) -> None:
    """Download and verify a dataset into the cache ($KARUKU_DATA)."""
    from karuku.data import REMOTES, fetch_dataset, get_dataset

    get_dataset(name)
    if name not in REMOTES:
        console.print(f"{name} needs no download (it ships with its package, is generated offline or is your own)")
        return
    folder = fetch_dataset(name, log=console.print)
    console.print(f"{REMOTES[name].title} ready in {folder} (sha256 verified)")
