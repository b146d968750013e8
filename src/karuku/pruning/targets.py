"""Which parameters can be pruned, and matching layer names against patterns."""

from __future__ import annotations

import fnmatch

from torch import nn

from karuku.errors import KarukuError

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def matches(name: str, pattern: str) -> bool:
    """A layer `fc3` (or its parameter `fc3.weight`) matches `fc3`, `fc*`, `fc3.weight`."""
    module = name.rsplit(".", 1)[0] if name.endswith((".weight", ".bias")) else name
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(module, pattern)


def check_patterns(patterns: list[str], names: list[str], what: str) -> None:
    """Every pattern must match at least one name: a typo otherwise silently prunes everything."""
    for p in patterns:
        if not any(matches(n, p) for n in names):
            shown = ", ".join(n.rsplit(".", 1)[0] for n in names[:8])
            raise KarukuError(f"{what} pattern '{p}' matches no layer", f"layers are: {shown}")


def prunable(model: nn.Module, exclude: list[str] = ()) -> list[str]:
    """Weight names of the Linear and Conv layers, minus excluded patterns; at least one."""
    names = [f"{m}.weight" if m else "weight" for m, mod in model.named_modules() if isinstance(mod, PRUNABLE)]
    if not names:
        raise KarukuError(f"{type(model).__name__} has nothing to prune",
                          "pruning works on nn.Linear and nn.Conv1d/2d/3d weights")
    check_patterns(list(exclude), names, "exclude")
    kept = [n for n in names if not any(matches(n, p) for p in exclude)]
    if not kept:
        raise KarukuError("every prunable layer is excluded", "exclude fewer layers")
    return kept
