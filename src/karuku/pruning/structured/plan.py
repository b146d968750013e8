"""Score channel groups, choose the channels to keep, and turn the choice into edits.

Layer scope removes the same fraction of every group; global scope ranks all channels
by their score divided by their group's mean (so wide and narrow layers compare) and
removes the lowest overall. Every group keeps at least one channel. With target="macs"
the fraction is found by bisection until the removed MACs reach the requested share.

allocation="budget" (target="macs") chooses each group's width on its own, in blocks of
`round_to` channels: from the uniform allocation just short of the target, it removes the
block that loses the least normalised importance per MAC saved until the target is reached,
puts back blocks the target can spare, then moves blocks between groups while that brings
the MACs closer to the target. With coarse blocks (round_to=16) it lands within a point or
two of the target where one uniform ratio overshoots by ten.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from karuku.errors import KarukuError
from karuku.measure.counts import layer_counts
from karuku.pruning.structured.criteria import CRITERIA, Group
from karuku.pruning.structured.graph import ChannelGraph, Seg
from karuku.pruning.structured.rewrite import Edits
from karuku.pruning.targets import check_patterns, matches


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


def score(model: nn.Module, graph: ChannelGraph, prunable: dict[int, list[str]], method: str,
          seed: int = 0) -> dict[int, torch.Tensor]:
    """Per-channel importance of each group, by the registered criterion `method` (see `criteria`)."""
    criterion = CRITERIA.find(method)
    gen = torch.Generator().manual_seed(seed)
    return {root: criterion(Group(model, graph, root, gen)) for root in prunable}


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


def _allocate(scores: dict[int, torch.Tensor], start: dict[int, int], macs_of, goal: float,
              round_to: int) -> dict[int, int]:
    """Kept channels per group, in blocks of `round_to`, so that the MACs fall to `goal` or just below.

    Greedy on normalised importance lost per MAC saved, from `start`; then blocks the goal can
    spare are put back (most importance per MAC first); then single moves of one block from one
    group to another are taken while they bring the MACs closer to the goal from below.
    """
    ranked = {r: torch.sort(s / s.mean().clamp_min(1e-12)).values for r, s in scores.items()}
    lost_prefix = {r: torch.cat([torch.zeros(1, dtype=torch.double), v.cumsum(0)]) for r, v in ranked.items()}
    size = {r: len(s) for r, s in scores.items()}

    def lost(r: int, k: int) -> float:
        return float(lost_prefix[r][size[r] - k])

    def down(r: int, k: int) -> int | None:
        nk = (k - 1) // round_to * round_to
        return nk if nk >= max(1, min(round_to, size[r])) else None

    def up(r: int, k: int) -> int | None:
        return None if k >= size[r] else min(size[r], (k // round_to + 1) * round_to)

    def moves(step, lo: float, hi: float):
        """(importance changed per MAC changed, group, new width, MACs) of each one-block `step` whose MACs
        fall in (lo, hi]."""
        for r, k in kept.items():
            k2 = step(r, k)
            if k2 is not None:
                m = macs_of({**kept, r: k2})
                if lo < m <= hi:
                    yield abs(lost(r, k2) - lost(r, k)) / abs(m - cur), r, k2, m

    def rate(move) -> float:
        return move[0]  # min / max keep the first of equal rates

    kept = dict(start)
    cur = macs_of(kept)
    while cur > goal:  # remove the cheapest block (importance lost per MAC saved), MACs below cur
        best = min(moves(down, -math.inf, math.nextafter(cur, -math.inf)), key=rate, default=None)
        if best is None:
            break  # every group is at its minimum
        _, r, kept[r], cur = best
    while True:  # put back what the goal can spare, most importance regained per MAC first
        best = max(moves(up, cur, goal), key=rate, default=None)
        if best is None:
            break
        _, r, kept[r], cur = best
    for _ in range(4 * len(kept)):  # move one block between groups while it lands closer to the goal
        best = None
        for a, ka in kept.items():
            ka2 = up(a, ka)
            if ka2 is None:
                continue
            for b, kb in kept.items():
                kb2 = down(b, kb) if b != a else None
                if kb2 is None:
                    continue
                m = macs_of({**kept, a: ka2, b: kb2})
                if cur < m <= goal:
                    loss = lost(a, ka2) + lost(b, kb2) - lost(a, ka) - lost(b, kb)
                    if best is None or (m, -loss) > (best[0], -best[1]):
                        best = (m, loss, a, ka2, b, kb2)
        if best is None:
            break
        cur, _, a, kept[a], b, kept[b] = best
    return kept


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


def make_plan(model: nn.Module, graph: ChannelGraph, inputs, amount: float, scope: str,
              method: str, target: str, exclude: list[str], seed: int = 0, round_to: int = 1,
              allocation: str = "uniform") -> Plan:
    """Choose the channels to remove so that `amount` of the channels (or of the MACs) goes; `inputs`: what the
    model takes (`karuku.measure.inputs.signature` reads it), for counting MACs."""
    if allocation not in ("uniform", "budget"):
        raise KarukuError(f"unknown allocation '{allocation}'", "use uniform or budget")
    if allocation == "budget" and target != "macs":
        raise KarukuError("allocation=budget needs target=macs", "pass target='macs' (CLI: --target macs)")
    prunable = groups(graph, exclude)
    if not prunable:
        raise KarukuError(f"{type(model).__name__} has no channels that structured pruning can remove",
                          "its layers all feed the output or are excluded; try unstructured pruning")
    scores = score(model, graph, prunable, method, seed)
    rows = layer_counts(model, inputs)
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
        if allocation == "budget":
            start = {r: len(k) for r, k in choose(scores, lo, scope, round_to).items()}
            counts = _allocate(scores, start, lambda c: macs_after(rows, edits(graph, {
                r: torch.arange(k) for r, k in c.items()}), model), goal, round_to)
            keep = {r: _top(scores[r], counts[r], round_to) for r in scores}
            e, kept = edits(graph, keep), sum(counts.values())
            macs = macs_after(rows, e, model)
    return Plan(e, total, kept, before, macs, list(graph.skipped))
