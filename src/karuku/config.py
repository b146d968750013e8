"""`Config`: the base of every typed settings class (the single source for Python, the CLI and recipes).

Unknown keys are errors; a bad value is one `ConfigError` line naming the field, which the CLI turns into
the flag's name and recipe validation into the YAML path; `digest()` is the one settings hash (run
folders, resume files and experiment folders are keyed by it).

>>> class PackConfig(Config):
...     huffman: bool = Field(True, description="Huffman-code the streams where that is smaller")
"""

from __future__ import annotations

import hashlib
import json
import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from karuku.errors import KarukuError


def digest(obj: Any, length: int = 16) -> str:
    """A short sha256 of a JSON-able object (dict keys sorted): equal settings give equal digests."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def problems(exc: ValidationError) -> list[tuple[tuple, str]]:
    """(location, message) of every error in a pydantic report, messages without pydantic's prefixes."""
    return [(tuple(e["loc"]), e["msg"].removeprefix("Value error, ")) for e in exc.errors()]


def config_class(annotation: Any) -> type[BaseModel] | None:
    """The settings class an annotation holds (`TrainConfig`, `TrainConfig | None`), or None."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    for a in (annotation, *(typing.get_args(annotation) if union else ())):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return None


def fields_at(cls: type[BaseModel] | None, loc: tuple) -> dict[str, Any] | None:
    """The fields of the (nested) settings class at `loc`, or None when `loc` leaves the typed part."""
    for part in loc:
        fields = getattr(cls, "model_fields", None)
        if not isinstance(fields, dict) or str(part) not in fields:
            return None
        cls = config_class(fields[str(part)].annotation)
    return getattr(cls, "model_fields", None)


def field_at(cls: type[BaseModel], loc: tuple):
    """The FieldInfo at `loc` inside (nested) settings classes, or None."""
    return (fields_at(cls, loc[:-1]) or {}).get(str(loc[-1])) if loc else None


MAX_SEED = 2**32 - 1  # what numpy's and most generators' seeds take


def seed_field(description: str):
    """A seed: an integer from 0 to 2^32 − 1."""
    return Field(0, ge=0, le=MAX_SEED, description=description)


def renamed(v: Any, old: str, new: str) -> Any:
    """A settings mapping with the old name of a key read as its new name (a `mode="before"` validator's
    body); giving both with different values is an error, since one of them would be silently ignored."""
    if not isinstance(v, dict) or old not in v:
        return v
    v = dict(v)
    was = v.pop(old)
    if v.get(new) is not None and was is not None and v[new] != was:
        raise ValueError(f"give {new} only ({old} is its old name)")
    if v.get(new) is None:
        v[new] = was
    return v


class ConfigError(KarukuError, ValueError):
    """Bad settings: `.problems` lists (location, message) pairs; the message is the first, on one line."""

    def __init__(self, cls: type, found: list[tuple[tuple, str]]):
        self.cls, self.problems = cls, found
        loc, reason = found[0]
        self.field = ".".join(map(str, loc))
        self.reason = reason
        info = field_at(cls, loc)
        hint = f"{self.field}: {info.description.split(';')[0]}" if info is not None and info.description else (
            f"known fields: {', '.join(cls.model_fields)}" if reason.startswith("Extra inputs") else None)
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        super().__init__(f"invalid {cls.__name__} {self.field or 'settings'}: {reason}{more}", hint)


class Config(BaseModel):
    """Typed settings: extra keys forbidden; constructing with a bad value raises one `ConfigError` line."""

    model_config = ConfigDict(extra="forbid")

    def __init__(self, **data: Any):
        try:
            super().__init__(**data)
        except ValidationError as exc:  # pydantic's report spans lines; users get one
            raise ConfigError(type(self), problems(exc)) from None

    # Marks this __init__ as pydantic's own, so validation (model_validate, a config nested in another) does not
    # call it: nested errors keep their full location (recipe paths, flags) instead of one wrapped ValueError.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    def digest(self) -> str:
        """A short hash of the settings."""
        return digest(self.model_dump(mode="json"))

    def given(self, *names: str) -> list[str]:
        """Which of `names` were set explicitly to something other than their defaults: for settings that take
        effect only with others, which validators refuse rather than ignore."""
        fields = type(self).model_fields
        return [n for n in names if n in self.model_fields_set
                and getattr(self, n) != fields[n].get_default(call_default_factory=True)]


STORED = {"stored": True}  # validation context of settings read back from a file: rules for new input skipped


def stored(info) -> bool:
    """Whether a validator runs on settings read back from a file (`model_validate(..., context=STORED)`)."""
    return bool((getattr(info, "context", None) or {}).get("stored"))
