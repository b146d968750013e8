"""The one registry pattern for every extension point (models, datasets, pruning scores, structured
criteria, observers, loop stages, device profiles, checkpoint transforms, deployed forms).

A registry is a flat dict with a name for what it holds. Adding an entry is one function and one
registration line; looking one up by a name that is not there is one `KarukuError` that says what
exists and which name was probably meant; config validators call `check` so a typo fails when a
recipe or a command line is validated, not when the job reaches it.

>>> SCORES = Registry("pruning score", hint="unstructured methods")
>>> @SCORES.register("magnitude")
... def magnitude(weight, generator=None): return weight.abs()
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from karuku.errors import KarukuError, closest

T = TypeVar("T")


class Registry(dict, Generic[T]):
    """Name → entry. `register` adds, `find` looks up with "did you mean", `check` validates a name."""

    def __init__(self, what: str, hint: str = "known"):
        super().__init__()
        self.what, self.hint = what, hint

    def register(self, name: Any, value: T | None = None) -> Any:
        """`REG.register("name", value)`, or `@REG.register("name")` on a function or class."""
        if value is not None:
            self[name] = value
            return value

        def deco(obj: T) -> T:
            self[name] = obj
            return obj

        return deco

    def problem(self, name: Any) -> str | None:
        """None when `name` is registered, else the one-line complaint (with a suggestion when one is close)."""
        if name in self:
            return None
        known = sorted(str(k) for k in self)
        return f"unknown {self.what} '{name}'{closest(str(name), known)} ({self.hint}: {', '.join(known)})"

    def find(self, name: Any) -> T:
        """The entry called `name`; otherwise a KarukuError naming what exists."""
        if name in self:
            return self[name]
        known = sorted(str(k) for k in self)
        raise KarukuError(f"unknown {self.what} '{name}'{closest(str(name), known)}",
                          f"{self.hint}: {', '.join(known)}")

    def get_or_none(self, name: Any) -> T | None:
        return dict.get(self, name)

    def check(self, name: Any) -> Any:
        """For config validators: `name` itself, or a ValueError whose message pydantic shows with the field."""
        msg = self.problem(name)
        if msg is not None:
            raise ValueError(msg)
        return name


def load_plugins(names: str | None = None) -> list[str]:
    """Import the modules named in `names` (default: $KARUKU_PLUGINS, comma-separated): your own criteria,
    observers, stages, datasets, models and profiles register themselves when their module is imported."""
    import importlib
    import os

    loaded = []
    for name in (names if names is not None else os.environ.get("KARUKU_PLUGINS", "")).split(","):
        if name.strip():
            try:
                importlib.import_module(name.strip())
            except ImportError as exc:
                raise KarukuError(f"cannot import plugin '{name.strip()}': {exc}",
                                  "check $KARUKU_PLUGINS and that the module is on PYTHONPATH") from None
            loaded.append(name.strip())
    return loaded
