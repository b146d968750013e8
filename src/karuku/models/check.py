"""`check_forward`: a model meets the data before training, so a user's model that cannot take the data's inputs
or does not return class scores is one line naming what it got, not a raw exception from inside the loop."""

from __future__ import annotations

import inspect

import torch
from torch import nn

from karuku.data.batches import Inputs, count, describe, feed
from karuku.errors import KarukuError
from karuku.measure.inputs import required_inputs

HINT = "forward must take a (batch, *input_shape) tensor and return (batch, num_classes) class scores"


def check_forward(model: nn.Module, x: Inputs, num_classes: int | None) -> None:
    """Run `model` once on the examples `x` (a tensor, or a tuple or dict of its inputs; eval mode, no gradients,
    the RNG state kept), or raise KarukuError. `num_classes`: the class scores it must return per example (None:
    other targets, only a tensor is checked)."""
    check_inputs(model, x)
    was_training = model.training
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            model.eval()
            out = feed(model, x)
    except KarukuError:
        raise
    except Exception as exc:  # the user's forward: anything can come out of it
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise KarukuError(f"the model does not run on this data's inputs {describe(x)}: "
                          f"{type(exc).__name__}: {first}", HINT) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor):
        raise KarukuError(f"the model returns a {type(out).__name__}, not a tensor of class scores",
                          "return only the scores from forward (other outputs in attributes or a wrapper)")
    if num_classes is None:
        return
    want = (count(x), num_classes)
    if tuple(out.shape) != want or not out.is_floating_point():
        raise KarukuError(f"the model returns {out.dtype} scores of shape {tuple(out.shape)} for {want[0]} inputs, "
                          f"not {want} for this data's {num_classes} classes", HINT)


def check_inputs(model: nn.Module, x: Inputs, role: str = "the model") -> None:
    """The parts of a batch are what `model.forward` takes: every input it needs, none it has no parameter for;
    else one line naming both and the fix (nothing is run)."""
    needs = required_inputs(model)
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return
    named = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    takes = f"{role} ({type(model).__name__}) takes {len(needs)} inputs ({', '.join(needs)})"
    if isinstance(x, dict):
        missing = [n for n in needs if n not in x]
        extra = [k for k in x if k not in named] if not any(p.kind == p.VAR_KEYWORD for p in params) else []
        if missing or extra:
            what = "; ".join(s for s in (f"no {', '.join(missing)}" if missing else "",
                                         f"{', '.join(extra)} it has no parameter for" if extra else "") if s)
            raise KarukuError(f"{takes}; the data's examples carry {', '.join(x)}: {what}",
                              f"name the inputs as forward does ({', '.join(named)})")
        return
    given = len(x) if isinstance(x, tuple) else 1
    positional = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
    if given < len(needs) or (given > positional and not any(p.kind == p.VAR_POSITIONAL for p in params)):
        carry = "one tensor" if given == 1 and not isinstance(x, tuple) else f"{given} inputs"
        raise KarukuError(f"{takes}; the data's examples carry {carry}",
                          f"give examples (({', '.join(needs)}), y): the inputs as a tuple in forward's order, or a "
                          "dict by name" if len(needs) > 1 else "give examples (x, y), x one tensor")
