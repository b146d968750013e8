"""The flat model zoo, and users' own factories by import path (`package.module:factory`)."""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path

from torch import nn

from karuku.errors import KarukuError, closest
from karuku.io.allocation import machine_budget
from karuku.models import convnets, lenet, mlp, mlperf_tiny, mobilenet, resnet
from karuku.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def register_model(name: str):
    """Add a model factory `(input_shape=..., num_classes=..., **kwargs) -> nn.Module` to the zoo."""
    return MODELS.register(name)


for _name, _factory in (
    ("lenet300", mlp.lenet300), ("lenet5", lenet.LeNet5), ("lenet5-lecun", lenet.LeNet5LeCun),
    ("conv2", convnets.conv2), ("conv4", convnets.conv4), ("conv6", convnets.conv6), ("resnet-s", resnet.ResNetS),
    ("mobilenetv2-s", mobilenet.MobileNetV2S), ("mlp-teacher", mlp.mlp_teacher), ("mlp-student", mlp.mlp_student),
    ("mnist1d-mlp", mlp.mnist1d_mlp), ("mnist1d-cnn", convnets.CNN1D), ("cnn-s", convnets.SmallCNN),
    # MLPerf Tiny's reference models (docs/EDGE.md); their input shapes are the references'
    ("ds-cnn", mlperf_tiny.DSCNN), ("resnet8", mlperf_tiny.ResNet8), ("fc-autoencoder", mlperf_tiny.fc_autoencoder),
    ("mobilenetv1-025", mlperf_tiny.MobileNetV1),
):
    MODELS.register(_name, _factory)


@register_model("bert")
def bert(**kwargs) -> nn.Module:
    """A BERT sentence encoder (mean pooling, unit length) of any shape; karuku.text."""
    from karuku.text.encoder import bert as make  # imported on use: keeps `import karuku` light

    return make(**kwargs)


@register_model("minilm-l6")
def minilm_l6(**kwargs) -> nn.Module:
    """all-MiniLM-L6-v2's shape (22.7 M parameters); real weights: karuku text fetch."""
    from karuku.text.encoder import minilm_l6 as make

    return make(**kwargs)


def check_name(name: str) -> str:
    """For config validators: a zoo name or a `package.module:factory` path (imported only when used)."""
    return name if ":" in name else MODELS.check(name)


def resolve_factory(name: str, what: str = "model") -> Callable[..., nn.Module]:
    """A zoo name, or `package.module:factory` for a user's own model (or data factory, metric: `what`)."""
    if what == "model" and (name in MODELS or ":" not in name):
        if name not in MODELS:
            known = sorted(MODELS)
            raise KarukuError(f"unknown model '{name}'{closest(name, known)}",
                              f"known: {', '.join(known)}; or give package.module:factory")
        return MODELS[name]
    module_name, _, attr = name.partition(":")
    try:
        module = _import(module_name)
    except ImportError as exc:
        top = module_name.split(".")[0]
        raise KarukuError(f"cannot import '{module_name}' for {what} '{name}': {exc}",
                          f"run karuku from the folder that holds {top}.py (or the package {top}/), or add that "
                          "folder to PYTHONPATH") from None
    except Exception as exc:  # the module's own code failed as it was imported (SyntaxError, NameError, ...)
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise KarukuError(f"importing '{module_name}' for model '{name}' failed: {type(exc).__name__}: {first}",
                          f"run python -c 'import {module_name}' to see why") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise KarukuError(f"'{module_name}' has no callable '{attr}' ({what} '{name}')",
                          "give package.module:function")
    return factory


def _import(module_name: str):
    """Import a user's module as `python -m` would: the current folder is searched too (last, so it never hides
    an installed package), and only for the module the user named. `karuku` is a console script, whose
    sys.path holds its own folder, not the one it was started from."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = module_name.split(".")[0]
        here = Path.cwd()
        if exc.name != top or not ((here / f"{top}.py").is_file() or (here / top).is_dir()):
            raise
        if str(here) not in sys.path:
            sys.path.append(str(here))
        importlib.invalidate_caches()
        return importlib.import_module(module_name)


def build(name: str, input_shape: tuple[int, ...], num_classes: int, **kwargs) -> nn.Module:
    """Build a model; `input_shape` and `num_classes` are passed when the factory takes them."""
    factory = resolve_factory(name)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    args = dict(kwargs)
    for key, value in (("input_shape", tuple(input_shape)), ("num_classes", num_classes)):
        if key in params or takes_any:
            args.setdefault(key, value)
    try:
        with machine_budget(name):
            model = factory(**args)
    except TypeError as exc:
        raise KarukuError(f"cannot build model '{name}' with {sorted(args)}: {exc}") from None
    except (KarukuError, MemoryError, RecursionError):
        raise  # an allocation budget's refusal; a file's damage that readers name themselves
    except Exception as exc:
        if ":" not in name:
            raise  # the zoo's own factories: their errors are the arguments' (readers name them)
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise KarukuError(f"model factory '{name}' failed: {type(exc).__name__}: {first}",
                          "call the factory yourself to see why (karuku --debug shows the traceback)") from None
    if not isinstance(model, nn.Module):
        raise KarukuError(f"factory '{name}' returned {type(model).__name__}, not a torch.nn.Module")
    return model
