"""Deployed forms: what a model becomes on a device, and how big it is there.

Every model has its fp32 form. A technique that changes the representation (quantization's int8) registers
a function for its model class that describes the form it deploys; measurement asks `forms_of(model)` and
never names a technique. Forms that live outside the model object (a packed `.krk` file) come in as sizes.

>>> @register_form(QuantModel)
... def int8(qm): return Form("int8", weight_bytes(qm), integer=True, onnx=lambda: export_qdq(qm))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from safetensors.torch import save as st_save
from torch import nn

from karuku.registry import Registry


@dataclass
class Form:
    """One stored representation of a model.

    `integer`: it computes on 8-bit integers (activations take one byte, integer MACs in the energy model).
    `onnx`: makes the ONNX file this form deploys as (None: the model's fp32 export).
    `float_model`: the float computation of the model (torch timing of a fake-quantized model uses it).
    `details`: technique figures for a full evaluation, given the test data (or None).
    """

    kind: str
    bytes: int
    integer: bool = False
    onnx: Callable[[], bytes] | None = None
    float_model: nn.Module | None = None
    details: Callable[[Any], dict[str, Any]] | None = field(default=None, repr=False)


FORMS: Registry[Callable[[nn.Module], Form | None]] = Registry("deployed form")


def register_form(model_class: type):
    """Register `fn(model) -> Form | None` describing the deployed form of `model_class` instances."""
    return FORMS.register(model_class)


def fp32_size(model: nn.Module) -> int:
    """Bytes of the model's state dict as a safetensors file."""
    return len(st_save({k: v.contiguous() for k, v in model.state_dict().items()}))


def forms_of(model: nn.Module, sizes: dict[str, int] | None = None) -> list[Form]:
    """The fp32 form, the forms registered for the model's class, and `sizes` of forms stored elsewhere. A form
    with a float view sizes the fp32 form by it (a model holding int8 weights in its state is not its fp32 form)."""
    own = None
    for cls in type(model).__mro__:
        fn = FORMS.get_or_none(cls)
        own = fn(model) if fn is not None else None
        if own is not None:
            break
    out = [Form("fp32", fp32_size(own.float_model if own is not None and own.float_model is not None else model))]
    if own is not None:
        out.append(own)
    known = {f.kind for f in out}
    out += [Form(kind, n) for kind, n in (sizes or {}).items() if kind not in known]
    return out


def deployed(forms: list[Form]) -> Form:
    """The smallest form: what a device would store."""
    return min(forms, key=lambda f: f.bytes)
