"""The one exception type users see.

A `KarukuError` carries a single line that names the problem and, where there is one,
the fix. The CLI prints it without a traceback (unless `--debug`) and exits non-zero.
"""

from __future__ import annotations


class KarukuError(Exception):
    """A user-facing error: one line, naming the problem and the fix."""

    def __init__(self, message: str, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(f"{message} ({hint})" if hint else message)


def closest(name: str, known: list[str]) -> str:
    """A 'did you mean' suffix for registries, or '' when nothing is close."""
    import difflib

    match = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean '{match[0]}'?" if match else ""
