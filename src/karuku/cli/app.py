"""The `karuku` command line: a thin layer over the Python API.

Every command runs inside `guard`, which turns a KarukuError (or any unexpected error) into one line on stderr
and exit status 1; `--debug` shows the traceback instead. Usage errors (an unknown command or option, a missing
`--out`) are one line and status 1 too (`_Group`), and `--help` is plain text: the help strings show bounds
such as `[min, max]` as written, never as markup.
"""

from __future__ import annotations

import functools
import sys

import typer
from typer._click import exceptions as click_errors
from typer.core import TyperGroup


class _Group(TyperGroup):
    """The root command: usage errors become `error: ...` on one line and exit status 1, as README promises."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError as exc:  # `karuku` alone, `karuku recipe`: the help, not an error
            print(exc.format_message())
            sys.exit(0)
        except click_errors.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "karuku"
            print(f"error: {_one_line(exc.format_message())} (see '{where} --help')", file=sys.stderr)
            sys.exit(1)
        except click_errors.ClickException as exc:
            print(f"error: {_one_line(exc.format_message())}", file=sys.stderr)
            sys.exit(1)
        except typer.Abort:
            print("aborted", file=sys.stderr)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _one_line(text: str) -> str:
    return " ".join(text.split())


app = typer.Typer(cls=_Group, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None, help="karuku (軽く): compress trained PyTorch models for edge devices.")
_state = {"debug": False}


def sub_app(help: str, **kwargs) -> typer.Typer:
    """A command group (`karuku recipe ...`) with the root's plain help and error handling."""
    return typer.Typer(help=help, rich_markup_mode=None, add_completion=False, **kwargs)


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
        except (typer.Exit, click_errors.ClickException):
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
