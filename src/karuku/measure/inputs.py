"""Example inputs for measuring a model: the one place that knows what a model takes.

A `Signature` lists a model's inputs (`Input`: name, shape of one example, dtype and, for integers, the values
it may take — token ids in [0, vocabulary), a mask in [0, 2)). Counting, activation memory, ONNX export, timing
and calibration all make their inputs and call the model through one, so a model with several inputs or integer
token ids needs nothing special anywhere else. `signature(model, what)` builds it from an input shape (one float
input, as every image or table model takes), example tensors (a tensor, a tuple or a dict of them, as a batch
comes), a Signature, or what the model's class registered (`register_inputs`, e.g. karuku.text's encoder).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from karuku.data.batches import feed
from karuku.errors import KarukuError

# The largest batch of inputs karuku makes to time a model (a batch of 64 of the largest input a model spec may
# declare, karuku.models.spec.MAX_INPUT_VALUES float32 values each): a file claiming more is refused, not run.
MAX_INPUT_BYTES = 256 << 20

_FIXED_SEED = 0  # integer inputs of `fixed` examples: in range, the same every call


@dataclass(frozen=True)
class Input:
    """One input: its name, the shape of one example (no batch axis), its dtype and, for an integer input, the
    values it may take, `low` ≤ v < `high` (token ids: 0 and the vocabulary size; an attention mask: 0 and 2)."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    low: int | None = None
    high: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if any(d < 1 for d in self.shape):
            raise KarukuError(f"input '{self.name}' has an empty dimension in {self.shape}",
                              "give every dimension of one example as a positive size")
        if self.dtype.is_floating_point:
            if self.low is not None or self.high is not None:
                raise KarukuError(f"input '{self.name}' is {self.dtype}: a value range applies to integer inputs only",
                                  "drop low / high, or give an integer dtype")
        elif self.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool):
            raise KarukuError(f"input '{self.name}' has dtype {self.dtype}, not a float or integer type",
                              "give float32 (features) or int64 (token ids, masks)")
        elif self.low is None or self.high is None or not self.low < self.high:
            raise KarukuError(f"integer input '{self.name}' needs the values it may take (low < high, high "
                              f"exclusive), got low={self.low} high={self.high}",
                              "e.g. Input('input_ids', (128,), torch.int64, 0, vocab_size)")

    @property
    def integer(self) -> bool:
        return not self.dtype.is_floating_point

    def random(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard-normal floats, or integers drawn evenly from [low, high)."""
        if not self.integer:
            return torch.randn(batch, *self.shape, generator=generator)
        return torch.randint(self.low, self.high, (batch, *self.shape), generator=generator).to(self.dtype)

    def fixed(self, batch: int) -> torch.Tensor:
        """Zeros for a float input; for an integer one, values in its range (the same every call): zero may not
        be a value it takes."""
        if not self.integer:
            return torch.zeros(batch, *self.shape)
        return self.random(batch, torch.Generator().manual_seed(_FIXED_SEED))

    def as_dict(self) -> dict:
        """As a checkpoint records it (JSON); `Input.from_dict` reads it back."""
        return {"name": self.name, "shape": list(self.shape), "dtype": str(self.dtype).removeprefix("torch."),
                "low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, d: dict) -> Input:
        dtype = getattr(torch, str(d.get("dtype", "float32")), None)
        if not isinstance(dtype, torch.dtype):
            raise KarukuError(f"input '{d.get('name')}' has an unknown dtype {d.get('dtype')!r}",
                              "the file is damaged or from a newer karuku: re-save it")
        return cls(str(d["name"]), tuple(d["shape"]), dtype, d.get("low"), d.get("high"))

    def describe(self) -> str:
        rng = f" in [{self.low}, {self.high})" if self.integer else ""
        return f"{self.name} {self.shape} {str(self.dtype).removeprefix('torch.')}{rng}"


@dataclass(frozen=True)
class Signature:
    """What a model takes: its inputs in call order; `keywords`: called as model(**{name: tensor}) (dict batches)."""

    inputs: tuple[Input, ...]
    keywords: bool = False

    def __post_init__(self):
        if not self.inputs:
            raise KarukuError("a model signature with no inputs", "give at least one input")
        names = [i.name for i in self.inputs]
        if len(set(names)) != len(names):
            raise KarukuError(f"input names repeat: {names}", "give every input its own name")

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """The one float input's shape (what single-input code paths take), else None."""
        one = self.inputs[0]
        return one.shape if len(self.inputs) == 1 and not one.integer else None

    @property
    def integer(self) -> bool:
        """Any input is integer (token ids, masks)."""
        return any(i.integer for i in self.inputs)

    def fixed(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """Inputs whose values do not matter (counting, tracing, memory): zeros, integers in range."""
        return tuple(i.fixed(batch) for i in self.inputs)

    def random(self, batch: int = 1, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """Varied inputs (timing, parity checks)."""
        return tuple(i.random(batch, generator) for i in self.inputs)

    def call(self, model: nn.Module, xs: tuple[torch.Tensor, ...]):
        """`model` on one batch of these inputs, positionally or by name; a model that cannot take them is one
        line naming the inputs it was given (a float tensor fed to an embedding, a missing attention mask)."""
        try:
            return feed(model, dict(zip(self.names, xs)) if self.keywords else tuple(xs))
        except KarukuError:
            raise
        except Exception as exc:  # the user's forward: anything can come out of it
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise KarukuError(f"{type(model).__name__} does not run on the inputs {self.describe()}: "
                              f"{type(exc).__name__}: {first}",
                              "give what it takes as inputs=... (example tensors: a tuple or dict of token ids "
                              "and attention mask, or a karuku.measure.inputs.Signature)") from None

    def check(self, model: nn.Module, xs: tuple[torch.Tensor, ...] | None = None) -> None:
        """Run `model` once on `xs` (default: fixed inputs of batch 1) in eval mode without gradients, its mode
        restored: a model that cannot take these inputs is `call`'s one-line error before any work starts."""
        was_training = model.training
        try:
            with torch.no_grad():
                self.call(model.eval(), self.fixed(1) if xs is None else xs)
        finally:
            model.train(was_training)

    def batch_bytes(self, batch: int) -> int:
        """Bytes one batch of these inputs takes."""
        return sum(batch * math.prod(i.shape) * torch.empty((), dtype=i.dtype).element_size() for i in self.inputs)

    def describe(self) -> str:
        return ", ".join(i.describe() for i in self.inputs)

    @classmethod
    def of(cls, example, model: nn.Module | None = None) -> Signature:
        """The signature of an example batch: a tensor, a tuple / list of tensors, or a dict name → tensor. Integer
        inputs take the values seen in it ([min, max + 1)): measurement never feeds a value the model did not get.
        Positional inputs are named after `model.forward`'s parameters."""
        if isinstance(example, dict):
            items, keywords = list(example.items()), True
        elif isinstance(example, (tuple, list)):
            names = _parameter_names(model, len(example))
            items, keywords = list(zip(names, example)), False
        else:
            items, keywords = [("input", example)], False
        out = []
        for name, t in items:
            if not isinstance(t, torch.Tensor):
                raise KarukuError(f"example input '{name}' is a {type(t).__name__}, not a tensor",
                                  "give example inputs as tensors (a tensor, a tuple or a dict of them)")
            if t.dim() < 2 or len(t) == 0:
                raise KarukuError(f"example input '{name}' has shape {tuple(t.shape)}: no batch of examples",
                                  "give a batch (first dimension: examples), e.g. x[None] for one")
            lo, hi = (None, None) if t.is_floating_point() else (int(t.min()), int(t.max()) + 1)
            out.append(Input(str(name), tuple(t.shape[1:]), t.dtype, lo, hi))
        lengths = {len(t) for _, t in items}
        if len(lengths) > 1:
            raise KarukuError(f"example inputs of different batch sizes {sorted(lengths)}",
                              "give every input the same number of examples")
        return cls(tuple(out), keywords)


def float_input(input_shape: tuple[int, ...]) -> Signature:
    """One float input of this shape (named `input`, as the ONNX files karuku writes call it)."""
    return Signature((Input("input", tuple(input_shape)),))


# model class -> fn(model, input_shape or None) -> Signature: what models of that class take
_REGISTERED: dict[type, Callable[[nn.Module, tuple[int, ...] | None], Signature]] = {}


def register_inputs(cls: type) -> Callable:
    """Decorator: `fn(model, input_shape)` gives the Signature models of class `cls` (and subclasses) take, so
    measuring one from its checkpoint (which stores only an input shape) feeds it the right inputs."""

    def deco(fn):
        _REGISTERED[cls] = fn
        return fn

    return deco


def signature(model: nn.Module | None, what=None) -> Signature:
    """What `model` takes: `what` is a Signature (used as is), an input shape (one float input, unless the
    model's class registered its own inputs), or example inputs (a tensor, a tuple or dict of tensors)."""
    if isinstance(what, Signature):
        return what
    if isinstance(what, Input):
        return Signature((what,))
    shape = _as_shape(what)
    if shape is not None or what is None:
        own = next((fn for cls, fn in _REGISTERED.items() if model is not None and isinstance(model, cls)), None)
        if own is not None:
            return own(model, shape)
        if shape is None:
            raise KarukuError(f"what {type(model).__name__} takes is unknown",
                              "give inputs=... (example tensors or a karuku.measure.inputs.Signature) or input_shape")
        return float_input(shape)
    if isinstance(what, (tuple, list)) and all(isinstance(w, Input) for w in what):
        return Signature(tuple(what))
    return Signature.of(what, model)


def _as_shape(what) -> tuple[int, ...] | None:
    if isinstance(what, torch.Size) or (isinstance(what, (tuple, list)) and what
                                        and all(isinstance(d, int) and not isinstance(d, bool) for d in what)):
        return tuple(int(d) for d in what)
    return None


def required_inputs(model: nn.Module) -> list[str]:
    """The positional inputs `model.forward` cannot do without (what a batch must carry), in order."""
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]


def forward_order(model: nn.Module, names: list[str]) -> list[str]:
    """`names` in the order of `model.forward`'s parameters (keyword inputs reach an exported file in that order)."""
    order = _parameter_names(model, None)
    return sorted(names, key=lambda n: order.index(n) if n in order else len(order))


def _parameter_names(model: nn.Module | None, n: int | None) -> list[str]:
    """forward's first `n` (None: all) parameter names (input_ids, attention_mask); input0, input1, ... when
    unknown."""
    try:
        params = [p for p in inspect.signature(model.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)] if model is not None else []
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params[:n]]
    if not names and isinstance(getattr(model, "input_names", None), list):  # forward(*xs) of a wrapper that
        names = list(model.input_names)[:n]  # knows its inputs (a quantized model: its traced model's)
    if n is None:
        return names
    return names if len(names) == n else [f"input{i}" for i in range(n)]

