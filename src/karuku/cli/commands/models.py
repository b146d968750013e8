"""`karuku models`: the zoo with parameter counts."""

from __future__ import annotations

from karuku.cli.app import app, guard
from karuku.cli.commands.common import console


@app.command("models")
@guard
def models_cmd() -> None:
    """List the model zoo (parameters on MNIST-shaped input; MNIST-1D models on length 40; MLPerf Tiny's models
    on their reference inputs)."""
    from rich.table import Table

    from karuku.models import MODELS, build
    from karuku.models.mlperf_tiny import REFERENCE_SHAPES

    table = Table("name", "parameters", "description")
    for name, factory in MODELS.items():
        shape = REFERENCE_SHAPES.get(name, (1, 40) if name.startswith("mnist1d") else (1, 28, 28))
        params = sum(p.numel() for p in build(name, shape, 10).parameters())
        doc = next(iter((factory.__doc__ or "").strip().splitlines()), "")
        table.add_row(name, f"{params:,}", doc)
    console.print(table)
