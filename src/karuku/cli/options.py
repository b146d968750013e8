"""The one option parser: typed configs → command-line options, so a config class is the single source.

Every field of a config becomes one option named by its YAML path: `PruneConfig.sparsity` is `--sparsity`,
`PruneConfig.finetune.epochs` is `--finetune-epochs`, `DataConfig.path` under `data` is `--data-path`, and a
field called `name` is its section's own flag (`--data mnist`). A field may spell its flag differently with
`json_schema_extra={"cli": ...}` (`kwargs` is `--model-arg`), the same in every command. Dicts are repeatable
`KEY=VALUE` options (values read as JSON when they can be), lists repeatable or comma-separated.

Options carry no defaults of their own: an option not given leaves the config's default, which `--help`
shows with the field's bounds. Every value is validated by the config before the command runs, and a bad
one is one line naming the flag (`invalid --epochs: Input should be greater than 0`).
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import typer
from pydantic import BaseModel, ValidationError

from karuku.config import config_class
from karuku.errors import KarukuError


@dataclass(frozen=True)
class Section:
    """How one config class appears on a command line.

    `prefix`: its YAML key ("data" → --data-path); `skip`: fields left out; `lift`: nested configs whose options
    go without their prefix (distill's `train`); `partial`: the command gets a dict of only the options given
    (settings that override stored ones); `defaults`: this command's own defaults.
    """

    cls: type[BaseModel]
    prefix: str = ""
    skip: tuple[str, ...] = ()
    lift: tuple[str, ...] = ()
    partial: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Opt:
    section: str  # the command's keyword that receives the config
    path: tuple[str, ...]  # field path inside the config
    flag: str
    kind: str  # "scalar", "bool", "dict", "list"
    info: Any  # the pydantic FieldInfo

    @property
    def param(self) -> str:
        return "__".join((self.section, *self.path))


def _kind(annotation) -> tuple[str, Any]:
    """(kind, python type typer parses) of a field; kind None when the field has no command-line form."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _kind(inner[0]) if len(inner) == 1 else (("scalar", str) if all(
            a in (int, float, str) or typing.get_origin(a) is typing.Literal for a in inner) else (None, None))
    if origin is typing.Literal:
        return "scalar", str
    if origin is dict:
        return "dict", list[str]
    if origin is list:
        return "list", list[str]
    if annotation is bool:
        return "bool", bool
    if annotation in (int, float, str):
        return "scalar", annotation
    return None, None


def _flag(parts: list[str]) -> str:
    return "--" + "-".join(parts).replace("_", "-")


def _walk(section: str, cls: type[BaseModel], spec: Section, path: tuple[str, ...], words: list[str]) -> list[_Opt]:
    out = []
    for name, info in cls.model_fields.items():
        if not path and name in spec.skip:
            continue
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        nested = config_class(info.annotation)
        if nested is not None:
            sub = [] if (not path and name in spec.lift) else [*words, str(extra.get("cli", name))]
            out += _walk(section, nested, spec, (*path, name), sub)
            continue
        kind, _ = _kind(info.annotation)
        if kind is None:
            continue  # not expressible as one option (tuples, nested dicts): left to YAML and Python
        if "cli" in extra:
            parts = [*words, str(extra["cli"])]
        elif name == "name" and words:
            parts = list(words)
        else:
            parts = [*words, name]
        out.append(_Opt(section, (*path, name), _flag(parts), kind, info))
    return out


def _bounds(info) -> str:
    signs = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
    found = [f"{signs[k]} {getattr(m, k)}" for m in info.metadata for k in signs if hasattr(m, k)]
    return ", ".join(found)


def _help(opt: _Opt, default: Any) -> str:
    info = opt.info
    text = info.description or ""
    ann = info.annotation
    literal = next((a for a in (ann, *typing.get_args(ann)) if typing.get_origin(a) is typing.Literal), None)
    if literal is not None:
        text += f" (one of: {', '.join(map(str, typing.get_args(literal)))})"
    bounds = _bounds(info)
    if bounds:
        text += f" ({bounds})"
    if opt.kind == "dict":
        example = (info.examples or ["KEY=VALUE"])[0]
        text += f"; repeatable, e.g. {opt.flag} {example}"
    elif opt.kind == "list":
        text += "; repeatable or comma-separated"
    if default not in (None, {}, []) and opt.kind != "bool":
        text += f" (default: {default})"
    elif opt.kind == "bool":
        text += f" (default: {'yes' if default else 'no'})"
    return text


def _metavar(opt: _Opt) -> str | None:
    """What `--help` shows after the flag: N, X, TEXT, the choices, KEY=VALUE; nothing for a yes/no flag."""
    if opt.kind == "bool":
        return None
    if opt.kind == "dict":
        return "KEY=VALUE"
    if opt.kind == "list":
        return "A,B,..."
    ann = opt.info.annotation
    literal = next((a for a in (ann, *typing.get_args(ann)) if typing.get_origin(a) is typing.Literal), None)
    if literal is not None:
        return "|".join(map(str, typing.get_args(literal)))
    _, py = _kind(ann)
    return {int: "N", float: "X"}.get(py, "TEXT")


def _default(cls: type[BaseModel], path: tuple[str, ...], spec: Section) -> Any:
    if len(path) == 1 and path[0] in spec.defaults:
        return spec.defaults[path[0]]
    info = None
    for name in path:
        info = cls.model_fields[name]
        cls = config_class(info.annotation) or cls
    if info is None or info.is_required():
        return None
    return info.get_default(call_default_factory=True)


def parse_pairs(items: list[str] | None, flag: str, example: str = "KEY=VALUE") -> dict[str, Any]:
    """`KEY=VALUE` items into a dict; values read as JSON when they can be (numbers, lists), else strings."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise KarukuError(f"bad {flag} '{item}'", f"use KEY=VALUE, e.g. {flag} {example}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
        except RecursionError:
            raise KarukuError(f"bad {flag} '{key}': its value nests deeper than JSON readers go",
                              f"give a flat value, e.g. {flag} {example}") from None
    return out


def _value(opt: _Opt, raw: Any) -> Any:
    if opt.kind == "dict":
        return parse_pairs(raw, opt.flag, (opt.info.examples or ["KEY=VALUE"])[0])
    if opt.kind == "list":
        return [part.strip() for item in raw for part in item.split(",") if part.strip()]
    return raw


def _set(tree: dict, path: tuple[str, ...], value: Any, cls: type[BaseModel]) -> None:
    """Put `value` at `path`; a nested config starts from its field's default (LotteryConfig.train: the paper's)."""
    for name in path[:-1]:
        info = cls.model_fields[name]
        if name not in tree:
            default = None if info.is_required() else info.get_default(call_default_factory=True)
            # only what the default set: a field it left alone stays "not given" for the rules that refuse
            # settings which cannot take effect (LotteryConfig.train sets iterations, not epochs)
            tree[name] = default.model_dump(exclude_unset=True) if isinstance(default, BaseModel) else {}
        tree, cls = tree[name], config_class(info.annotation)
    tree[path[-1]] = value


def build(spec: Section, opts: list[_Opt], given: dict[str, Any]) -> Any:
    """The config (or, for a partial section, the dict of given settings) from parsed option values."""
    data: dict[str, Any] = {}
    for name, value in spec.defaults.items():
        _set(data, (name,), value, spec.cls)
    flags = {}
    for opt in opts:
        flags[opt.path] = opt.flag
        raw = given.get(opt.param)
        if raw is not None and raw != []:
            _set(data, opt.path, _value(opt, raw), spec.cls)
    try:
        cfg = spec.cls.model_validate(data)
    except ValidationError as exc:
        shown = []
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if loc in flags or not any(path[: len(loc)] == loc for path in flags):
                flag = next((flags[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in flags),
                            _flag([spec.prefix, *loc]) if loc else "options")
            else:  # a rule across the fields of one (nested) config: name the flags it is about
                inner = {path[len(loc)]: (f if len(path) == len(loc) + 1 else _flag([p for p in (
                         spec.prefix, *path[: len(loc) + 1]) if p]) + "-*") for path, f in flags.items()
                         if len(path) > len(loc) and path[: len(loc)] == loc}
                # validators quote the fields they are about (`epochs`): on the command line, their flags
                msg = re.sub(r"`([a-z][a-z0-9_]*)`", lambda m, inner=inner: inner.get(m.group(1), m.group(1)), msg)
                flag = f"{_flag([p for p in (spec.prefix, *loc) if p])}-* settings" if loc else "settings"
            shown.append(f"invalid {flag}: {msg}")
        raise KarukuError("; ".join(shown[:3]) + (f" (and {len(shown) - 3} more)" if len(shown) > 3 else "")) from None
    except KarukuError as exc:  # a validator that reports its own one-line error
        raise KarukuError(str(exc)) from None
    if spec.partial:
        return {k: getattr(cfg, k) for k in data}
    return cfg


THREADS_PARAM = "threads__"
THREADS_HELP = ("threads this command computes and times with (default: every core this process may use, 1 when "
                "the machine is already busy; at most the usable cores)")


def configs(**sections: Section) -> Callable:
    """Give a command the options of each config `Section`; it receives the built configs as keywords.

    Every command also gets `--threads N`, checked against the cores this process may use and applied before
    the command runs (`karuku.threads`); a command with its own `threads` parameter receives the checked
    value (None: not given) and applies it itself (`compress`: the recipe may name threads too).

    >>> @app.command("prune")
    ... @guard
    ... @configs(cfg=Section(PruneConfig), measure=Section(MeasureConfig))
    ... def prune_cmd(checkpoint: Path = typer.Argument(...), *, cfg: PruneConfig, measure: MeasureConfig): ...
    """

    def deco(fn):
        sig = inspect.signature(fn)
        own = [p for name, p in sig.parameters.items() if name not in sections]
        opts = {key: _walk(key, spec.cls, spec, (), [spec.prefix] if spec.prefix else [])
                for key, spec in sections.items()}
        params = []
        for key, spec in sections.items():
            for opt in opts[key]:
                default = _default(spec.cls, opt.path, spec)
                _, py = _kind(opt.info.annotation)
                decl = f"{opt.flag}/--no-{opt.flag[2:]}" if opt.kind == "bool" else opt.flag
                params.append(inspect.Parameter(opt.param, inspect.Parameter.KEYWORD_ONLY,
                                                annotation=typing.Optional[py],  # noqa: UP045
                                                default=typer.Option(None, decl, help=_help(opt, default),
                                                                     metavar=_metavar(opt), show_default=False)))

        takes_threads = "threads" in sig.parameters
        if not takes_threads:
            params.append(inspect.Parameter(THREADS_PARAM, inspect.Parameter.KEYWORD_ONLY,
                                            annotation=typing.Optional[int],  # noqa: UP045
                                            default=typer.Option(None, "--threads", metavar="N", help=THREADS_HELP,
                                                                 show_default=False)))

        @functools.wraps(fn)
        def wrapper(**kwargs):
            from karuku.threads import check_threads, use_threads

            built = {key: build(spec, opts[key], kwargs) for key, spec in sections.items()}
            rest = {k: v for k, v in kwargs.items() if k in sig.parameters and k not in sections}
            if takes_threads:
                rest["threads"] = check_threads(rest.get("threads"))
            else:
                use_threads(check_threads(kwargs.get(THREADS_PARAM)))
            return fn(**rest, **built)

        wrapper.__signature__ = sig.replace(parameters=own + params)
        return wrapper

    return deco
