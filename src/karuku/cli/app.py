"""The `karuku` command line: a thin layer over the Python API.

Every command runs inside `guard`, which turns a KarukuError (or any unexpected error)
into one line on stderr and a non-zero exit; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import functools
import sys

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="karuku (軽く): compress trained PyTorch models for edge devices.")
_state = {"debug": False}


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="show tracebacks")) -> None:
    _state["debug"] = debug


def guard(fn):
    """Run a command; errors become one line and exit code 1 (interrupt: 130)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from karuku.errors import KarukuError

        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            print("interrupted: rerun the same command to resume", file=sys.stderr)
            raise typer.Exit(130) from None
        except KarukuError as exc:
            if _state["debug"]:
                raise
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(1) from None
        except Exception as exc:  # noqa: BLE001 — the last line of defence for users
            if _state["debug"]:
                raise
            first = str(exc).splitlines()[0] if str(exc) else ""
            print(f"error: {type(exc).__name__}: {first} (rerun with --debug for the traceback)", file=sys.stderr)
            raise typer.Exit(1) from None

    return wrapper


def main() -> None:
    """The `karuku` command: load $KARUKU_PLUGINS, register every command, then run the one asked for."""
    from karuku.cli import commands  # noqa: F401  (registers the commands)
    from karuku.errors import KarukuError
    from karuku.registry import load_plugins

    try:
        load_plugins()
    except KarukuError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    app()
