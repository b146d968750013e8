"""`check_forward`: a model meets the data before training, so a user's model that cannot take the data's inputs
or does not return class scores is one line naming what it got, not a raw exception from inside the loop."""

from __future__ import annotations

import torch
from torch import nn

from karuku.errors import KarukuError

HINT = "forward must take a (batch, *input_shape) tensor and return (batch, num_classes) class scores"


def check_forward(model: nn.Module, x: torch.Tensor, num_classes: int | None) -> None:
    """Run `model` once on the examples `x` (eval mode, no gradients, the RNG state kept), or raise KarukuError.
    `num_classes`: the class scores it must return per example (None: other targets, only a tensor is checked)."""
    was_training = model.training
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            model.eval()
            out = model(x)
    except KarukuError:
        raise
    except Exception as exc:  # the user's forward: anything can come out of it
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise KarukuError(f"the model does not run on this data's inputs {tuple(x.shape[1:])}: "
                          f"{type(exc).__name__}: {first}", HINT) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor):
        raise KarukuError(f"the model returns a {type(out).__name__}, not a tensor of class scores",
                          "return only the scores from forward (other outputs in attributes or a wrapper)")
    if num_classes is None:
        return
    want = (x.shape[0], num_classes)
    if tuple(out.shape) != want or not out.is_floating_point():
        raise KarukuError(f"the model returns {out.dtype} scores of shape {tuple(out.shape)} for {x.shape[0]} inputs, "
                          f"not {want} for this data's {num_classes} classes", HINT)
