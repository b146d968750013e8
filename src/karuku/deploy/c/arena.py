"""Static activation arena: every value gets an offset, chosen so values alive at the same time never overlap.

Lifetimes run from the op that writes a value to the last op that reads it (the input lives from
the start, the output to the end). Values are placed greedily, largest first, at the lowest offset
that does not collide with an overlapping lifetime — sized once, at generation time, no malloc.
"""

from __future__ import annotations

import math


def plan(order: list[str], sizes: dict[str, int], reads: dict[str, list[int]],
         align: int = 4) -> tuple[dict[str, int], int]:
    """`order`: values in the order they are produced (index = producing op, input first at −1).

    Returns (offset per value, arena bytes).
    """
    first = {v: i - 1 for i, v in enumerate(order)}
    last = {v: max(reads.get(v, [first[v]])) for v in order}
    last[order[-1]] = len(order)  # the output is read after the last op
    placed: list[tuple[int, int, str]] = []  # (offset, end, value)
    offsets: dict[str, int] = {}
    for v in sorted(order, key=lambda v: (-sizes[v], first[v])):
        size = math.ceil(sizes[v] / align) * align
        clashes = sorted((o, e) for o, e, w in placed if not (last[w] < first[v] or last[v] < first[w]))
        offset = 0
        for o, e in clashes:
            if offset + size <= o:
                break
            offset = max(offset, e)
        offsets[v] = offset
        placed.append((offset, offset + size, v))
    return offsets, max((e for _, e, _ in placed), default=0)
