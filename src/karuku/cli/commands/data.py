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
    """The registered datasets."""
    from rich.table import Table

    from karuku.data import DATASETS, cache_dir
    from karuku.data.fetch import MNIST_FILES

    table = Table("name", "input", "classes", "description")
    for d in DATASETS.values():
        table.add_row(d.name, "×".join(map(str, d.input_shape)), str(d.num_classes), d.description)
    console.print(table)
    mnist = cache_dir() / "mnist"
    have = all((mnist / n).is_file() for n in MNIST_FILES)
    console.print(f"cache: {cache_dir()} (MNIST {'present' if have else 'not fetched yet'})")


@data_app.command("fetch")
@guard
def fetch_cmd(name: str = typer.Argument("mnist", help="dataset to fetch")) -> None:
    """Download and verify a dataset into the cache ($KARUKU_DATA)."""
    from karuku.data import fetch_mnist, get_dataset

    get_dataset(name)
    if name != "mnist":
        console.print(f"{name} needs no download (it ships with its package or is generated offline)")
        return
    folder = fetch_mnist(log=console.print)
    console.print(f"MNIST ready in {folder} (sha256 verified)")
