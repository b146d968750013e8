"""Structured pruning: remove whole channels / neurons and physically shrink the model.

>>> plan = prune_channels(model, (1, 28, 28), 0.5, target="macs")
>>> plan.macs_after / plan.macs_before
"""

from __future__ import annotations

from torch import nn

from karuku.measure.inputs import signature
from karuku.pruning.structured.criteria import CRITERIA, Group, register_criterion
from karuku.pruning.structured.graph import ChannelGraph, trace
from karuku.pruning.structured.plan import Plan, make_plan
from karuku.pruning.structured.rewrite import TRANSFORM, apply_edits, zero_channels


def plan_channels(model: nn.Module, inputs, amount: float, scope: str = "layer",
                  method: str = "l1", target: str = "channels", exclude: list[str] = (),
                  on_unsupported: str = "error", seed: int = 0, round_to: int = 1,
                  allocation: str = "uniform") -> Plan:
    """Decide which channels to remove (the model is not changed). `inputs`: what the model takes at batch 1 — an
    input shape, or for a model of several or integer inputs (token ids, a mask) example inputs or a
    `karuku.measure.inputs.Signature`."""
    sig = signature(model, inputs)
    xs = sig.fixed(2)
    sig.check(model, xs)  # a model that cannot take these inputs (floats for token ids) is one line naming them
    graph = trace(model, dict(zip(sig.names, xs)) if sig.keywords else xs, on_unsupported)
    return make_plan(model, graph, sig, amount, scope, method, target, list(exclude), seed, round_to, allocation)


def prune_channels(model: nn.Module, inputs, amount: float, **options) -> Plan:
    """Plan, then shrink `model` in place; the plan's `edits` are what a checkpoint records."""
    plan = plan_channels(model, inputs, amount, **options)
    apply_edits(model, plan.edits)
    return plan


__all__ = ["CRITERIA", "TRANSFORM", "ChannelGraph", "Group", "Plan", "apply_edits", "plan_channels", "prune_channels",
           "register_criterion",
           "trace", "zero_channels"]
