"""Score channel groups, choose the channels to keep, and turn the choice into edits.

Layer scope removes the same fraction of every group; global scope ranks all channels
by their score divided by their group's mean (so wide and narrow layers compare) and
removes the lowest overall. Every group keeps at least one channel. With target="macs"
the fraction is found by bisection until the removed MACs reach the requested share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from karuku.errors import KarukuError
from karuku.measure.counts import layer_counts
from karuku.pruning.structured.graph import ChannelGraph, Seg
from karuku.pruning.structured.rewrite import Edits
from karuku.pruning.targets import check_patterns, matches

METHODS = ("l1", "l2", "bn", "random")


@dataclass
class Plan:
    """What structured pruning will do: the edits, and the channels and MACs before and after."""

    edits: Edits
    channels_before: int
    channels_after: int
    macs_before: int
    macs_after: int
    skipped: list[str] = field(default_factory=list)

    @property
    def macs_removed(self) -> float:
        return 1 - self.macs_after / self.macs_before if self.macs_before else 0.0


def groups(graph: ChannelGraph, exclude: list[str]) -> dict[int, list[str]]:
    """Prunable groups: root space -> member module names (frozen and excluded groups left out)."""
    members: dict[int, list[str]] = {}
    for name, space in graph.producers.items():
        members.setdefault(graph.find(space), []).append(name)
    for name, segs in [*graph.norms.items(), *graph.depthwise.items()]:
        for s in segs:
            members.setdefault(graph.find(s.space), []).append(name)
    producing = {graph.find(s) for s in graph.producers.values()}
    all_names = sorted({n for ms in members.values() for n in ms} | set(graph.consumers))
    check_patterns(list(exclude), all_names, "exclude")
    out = {}
    for root, names in members.items():
        if root not in producing or graph.is_frozen(root) or graph.size[root] < 2:
            continue
        if any(matches(n, p) for n in names for p in exclude):
            continue
        out[root] = names
    return out


def _norm(w: torch.Tensor, p: int) -> torch.Tensor:
    w = w.detach().flatten(1).double()
    return w.abs().sum(1) if p == 1 else w.pow(2).sum(1).sqrt()


def _segment_sum(graph: ChannelGraph, layouts: dict[str, list[Seg]], root: int, n: int, values) -> torch.Tensor:
    """Sum, over modules with a per-channel layout, of their values on the channels of group `root`."""
    s = torch.zeros(n, dtype=torch.double)
    for name, segs in layouts.items():
        start = 0
        for seg in segs:
            if graph.find(seg.space) == root:
                s += values(name)[start:start + seg.length]
            start += seg.length
    return s


def score(model: nn.Module, graph: ChannelGraph, prunable: dict[int, list[str]], method: str,
          seed: int = 0) -> dict[int, torch.Tensor]:
    """Per-channel importance of each group: summed norms of its filters, or |γ| of its BatchNorms."""
    if method not in METHODS:
        raise KarukuError(f"unknown structured method '{method}'", f"structured methods: {', '.join(METHODS)}")
    gen = torch.Generator().manual_seed(seed)
    mods = dict(model.named_modules())
    out: dict[int, torch.Tensor] = {}
    for root in prunable:
        n = graph.size[root]
        if method == "random":
            out[root] = torch.rand(n, generator=gen, dtype=torch.double)
            continue
        s = torch.zeros(n, dtype=torch.double)
        if method == "bn":
            s += _segment_sum(graph, graph.norms, root, n, lambda name: mods[name].weight.detach().double().abs())
        if method != "bn" or not s.any():  # a group without BatchNorm falls back to L1
            p = 2 if method == "l2" else 1
            for name, space in graph.producers.items():
                if graph.find(space) == root:
                    s += _norm(mods[name].weight, p)
            s += _segment_sum(graph, graph.depthwise, root, n, lambda name, p=p: _norm(mods[name].weight, p))
        out[root] = s
    return out


def _top(s: torch.Tensor, k: int, round_to: int) -> torch.Tensor:
    k = min(len(s), -(-max(1, k) // round_to) * round_to)  # round the kept count up to a multiple
    return torch.sort(torch.sort(-s, stable=True).indices[:k]).values


def choose(scores: dict[int, torch.Tensor], ratio: float, scope: str, round_to: int = 1) -> dict[int, torch.Tensor]:
    """Kept channel indices (sorted) per group, removing `ratio` of the channels.

    `round_to` keeps a multiple of that many channels per group: CPU kernels work in blocks
    of 8 or 16 channels, and an odd count can run slower than the wider layer.
    """
    if scope == "layer":
        return {root: _top(s, len(s) - int(round(ratio * len(s))), round_to) for root, s in scores.items()}
    roots = list(scores)
    flat = torch.cat([s / s.mean().clamp_min(1e-12) for s in scores.values()])
    owner = torch.cat([torch.full((len(scores[r]),), i) for i, r in enumerate(roots)])
    local = torch.cat([torch.arange(len(scores[r])) for r in roots])
    budget = int(round(ratio * len(flat)))
    left = [len(scores[r]) for r in roots]
    dropped: set[tuple[int, int]] = set()
    for idx in torch.sort(flat, stable=True).indices.tolist():
        if len(dropped) >= budget:
            break
        g = int(owner[idx])
        if left[g] > 1:
            left[g] -= 1
            dropped.add((g, int(local[idx])))
    return {r: _top(scores[r], left[i], round_to) for i, r in enumerate(roots)}


def _assemble(graph: ChannelGraph, segs: list[Seg], keep: dict[int, torch.Tensor]) -> list[int] | None:
    idx, start, changed = [], 0, False
    for s in segs:
        kept = keep.get(graph.find(s.space))
        channels = kept.tolist() if kept is not None else range(s.length)
        changed |= kept is not None and len(kept) < s.length
        for c in channels:
            idx.extend(range(start + c * s.rep, start + (c + 1) * s.rep))
        start += s.length * s.rep
    return idx if changed else None


def edits(graph: ChannelGraph, keep: dict[int, torch.Tensor]) -> Edits:
    """Module edits that realise `keep` (only modules that change)."""
    out: Edits = {}
    for name, space in graph.producers.items():
        kept = keep.get(graph.find(space))
        if kept is not None and len(kept) < graph.size[graph.find(space)]:
            out.setdefault(name, {})["out"] = kept.tolist()
    for name, segs in [*graph.norms.items(), *graph.depthwise.items()]:
        idx = _assemble(graph, segs, keep)
        if idx is not None:
            out.setdefault(name, {})["out"] = idx
    for name, segs in graph.consumers.items():
        idx = _assemble(graph, segs, keep)
        if idx is not None:
            out.setdefault(name, {})["in"] = idx
    return out


def macs_after(rows, e: Edits, model: nn.Module) -> int:
    """MACs of the model once `e` is applied: each layer's MACs scale with its kept outputs × inputs."""
    mods = dict(model.named_modules())
    total = 0
    for r in rows:
        f = 1.0
        edit = e.get(r.name, {})
        mod = mods[r.name]
        if "out" in edit and isinstance(mod, (nn.Linear, nn.modules.conv._ConvNd)):
            f *= len(edit["out"]) / mod.weight.shape[0]
        if "in" in edit:
            f *= len(edit["in"]) / mod.weight.shape[1]
        total += round(r.macs * f)
    return total


def make_plan(model: nn.Module, graph: ChannelGraph, input_shape: tuple[int, ...], amount: float, scope: str,
              method: str, target: str, exclude: list[str], seed: int = 0, round_to: int = 1) -> Plan:
    """Choose the channels to remove so that `amount` of the channels (or of the MACs) goes."""
    prunable = groups(graph, exclude)
    if not prunable:
        raise KarukuError(f"{type(model).__name__} has no channels that structured pruning can remove",
                          "its layers all feed the output or are excluded; try unstructured pruning")
    scores = score(model, graph, prunable, method, seed)
    rows = layer_counts(model, input_shape)
    before = sum(r.macs for r in rows)
    total = sum(len(s) for s in scores.values())

    def attempt(ratio: float) -> tuple[Edits, int, int]:
        keep = choose(scores, ratio, scope, round_to)
        e = edits(graph, keep)
        return e, macs_after(rows, e, model), sum(len(k) for k in keep.values())

    if target == "channels":
        e, macs, kept = attempt(amount)
    else:
        lo, hi = 0.0, 1.0
        goal = before * (1 - amount)
        for _ in range(30):  # bisection on the channel ratio; MACs fall monotonically with it
            mid = (lo + hi) / 2
            if attempt(mid)[1] > goal:
                lo = mid
            else:
                hi = mid
        e, macs, kept = attempt(hi)
    return Plan(e, total, kept, before, macs, list(graph.skipped))
