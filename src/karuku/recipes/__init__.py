"""Shipped recipes (YAML), also reachable as recipes/ at the repository root."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def shipped() -> dict[str, Path]:
    """Name → path of every shipped recipe."""
    root = Path(str(resources.files("karuku.recipes")))
    return {p.stem: p for p in sorted(root.glob("*.yaml"))}


DEFAULT = "mnist-lenet300-int8"
