"""Helpers shared by commands: tables, JSON output, the compression loop's summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from karuku.io.atomic import write_text

console = Console(highlight=False)


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    """A two-column (label, value) table on the console."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)


def write_json(path: Path, obj: Any) -> None:
    """`obj` as indented JSON, written atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def print_outcome(outcome) -> None:
    """The budget table and the result line of a finished compression run (`compress`, `demo`)."""
    table = Table("limit", "allowed", "measured", "verdict", title=f"run {outcome.run_dir}", title_justify="left")
    for c in outcome.checks:
        table.add_row(c["limit"], f"{c['allowed']} {c['unit']}".strip(), f"{c['value']} {c['unit']}".strip(),
                      "pass" if c["ok"] else "[bold red]FAIL[/]")
    console.print(table)
    from karuku.measure.units import size

    m = outcome.final["measure"]
    timed = f"{m['latency_ms']:.3f} ms batch-1 latency" if m["latency_ms"] is not None else "not timed (see the report)"
    console.print(f"result: {100 * m['accuracy']:.2f} % test accuracy, {size(m['deploy_bytes'])} "
                  f"({m['deploy_kind']}), {timed}", soft_wrap=True)
    console.print(f"report: {outcome.report}", soft_wrap=True)
    from karuku.io.checkpoint import load_checkpoint, trust_note

    note = trust_note(load_checkpoint(outcome.run_dir / "final.safetensors").spec.name)
    if note:
        console.print(f"note: final.safetensors: {note}", soft_wrap=True, markup=False)
    if not outcome.ok:
        console.print("[bold red]budget not met[/] (the best candidate was still written: final.safetensors)")
