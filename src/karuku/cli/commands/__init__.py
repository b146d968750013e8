"""Command modules; importing them registers their commands on the app."""

from karuku.cli.commands import data, demo, evaluate, models, train  # noqa: F401
