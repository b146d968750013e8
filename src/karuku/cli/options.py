"""Typed configs → command-line options, so a config class is the single source of truth.

Each pydantic field becomes `--prefix-field-name` with the field's default and description;
values are validated by the config itself, and a bad one is reported as one line naming
the option and what it allows.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable

import typer
from pydantic import BaseModel, ValidationError

from karuku.errors import KarukuError


def _cli_type(annotation):
    """Map a field annotation to something typer parses; Literal becomes str (the config validates it)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return str, [str(a) for a in typing.get_args(annotation)]
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            inner, choices = _cli_type(args[0])
            return (typing.Optional[inner] if inner is not None else None), choices  # noqa: UP045
    if annotation in (int, float, str, bool):
        return annotation, None
    return None, None  # not expressible as one option (tuples, dicts): left to YAML / Python


def config_params(cls: type[BaseModel], prefix: str = "", skip: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    params = []
    for name, f in cls.model_fields.items():
        if name in skip:
            continue
        ann, choices = _cli_type(f.annotation)
        if ann is None:
            continue
        flag = "--" + (prefix + name).replace("_", "-")
        help_text = (f.description or "") + (f" (one of: {', '.join(choices)})" if choices else "")
        default = f.default if f.default is not None or not f.is_required() else ...
        if ann is bool:
            flag = f"{flag}/--no-{(prefix + name).replace('_', '-')}"
        params.append(inspect.Parameter(prefix + name, inspect.Parameter.KEYWORD_ONLY, annotation=ann,
                                        default=typer.Option(default, flag, help=help_text)))
    return params


def build_config(cls: type[BaseModel], values: dict, prefix: str = "", **fixed) -> BaseModel:
    """Validate the options that belong to `cls`; a failure is one KarukuError naming the option."""
    data = {name: values[prefix + name] for name in cls.model_fields if prefix + name in values}
    data.update(fixed)
    try:
        return cls(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        flag = "--" + (prefix + field).replace("_", "-") if field else cls.__name__
        raise KarukuError(f"invalid {flag}: {err['msg']}") from None


def with_configs(configs: dict[str, tuple[type[BaseModel], tuple[str, ...]]]) -> Callable:
    """Decorate a command: add the options of each config class (by prefix, minus skipped fields)."""

    def deco(fn):
        sig = inspect.signature(fn)
        own = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
        extra = [p for prefix, (cls, skip) in configs.items() for p in config_params(cls, prefix, skip)]

        @functools.wraps(fn)
        def wrapper(**kwargs):
            return fn(**kwargs)

        wrapper.__signature__ = sig.replace(parameters=own + extra)
        return wrapper

    return deco
