"""Where an engine value's integers lie in an NHWC back-end's tensor: layouts as permutations, pure functions.

The integer engine is NCHW, batch first; TFLite (and CMSIS-NN) want [C, H, W] values as [N, H, W, C]. A value's
*layout* L says which engine dimension each tensor axis holds: tensor axis i is engine dimension L[i] (batched
dimensions, L[0] = 0: nothing moves the batch). A transpose of the engine value is then only a new layout for the
same tensor; a reshape needs no data movement when each group of dimensions it merges or splits lies in the
tensor in order (dimensions of size 1 can lie anywhere); otherwise one transpose puts them in order first.
"""

from __future__ import annotations

import math

Layout = tuple[int, ...]


def identity(rank: int) -> Layout:
    """The engine's own order."""
    return tuple(range(rank))


def canonical(rank: int) -> Layout:
    """The layout a value takes at the model's edges and for spatial ops: NHWC for [N, C, H, W], else the engine's."""
    return (0, 2, 3, 1) if rank == 4 else identity(rank)


def transpose_perm(src: Layout, dst: Layout) -> tuple[int, ...]:
    """The TRANSPOSE permutation turning a tensor in layout `src` into one in layout `dst`."""
    return tuple(src.index(d) for d in dst)


def after_transpose(layout: Layout, perm: tuple[int, ...]) -> Layout:
    """The layout in which the same tensor holds the engine value permuted by `perm` (batched, perm[0] = 0)."""
    inverse = [0] * len(perm)
    for j, p in enumerate(perm):
        inverse[p] = j
    return tuple(inverse[d] for d in layout)


def shape_in(layout: Layout, shape: list[int]) -> list[int]:
    """The tensor's shape: the engine's batched `shape` in `layout` order."""
    return [shape[d] for d in layout]


def segments(src: list[int], dst: list[int]) -> list[tuple[list[int], list[int]]]:
    """A reshape from batched shape `src` to `dst` as groups (source dims, destination dims) of equal products,
    the batch alone first; every dimension in exactly one group, each group as small as possible."""
    if math.prod(src[1:]) != math.prod(dst[1:]):
        raise ValueError(f"cannot reshape {src[1:]} into {dst[1:]}")
    groups, i, j = [([0], [0])], 1, 1
    while i < len(src) or j < len(dst):
        a, b, pa, pb = [], [], 1, 1
        if i < len(src):
            a, pa, i = [i], src[i], i + 1
        if j < len(dst):
            b, pb, j = [j], dst[j], j + 1
        while pa != pb:  # equal totals: the smaller side has dimensions left
            if pa < pb:
                a, pa, i = a + [i], pa * src[i], i + 1
            else:
                b, pb, j = b + [j], pb * dst[j], j + 1
        groups.append((a, b))
    return groups


def reshape_plan(layout: Layout, src: list[int], dst: list[int]) -> tuple[Layout, Layout]:
    """(the layout the input must be in for a plain RESHAPE, the output's layout after it).

    The first is `layout` itself when each group's dimensions larger than 1 lie in the tensor next to each other
    and in order; otherwise each group gathered, in order, where its first dimension lies."""
    groups = segments(src, dst)
    owner = {d: g for g, (a, _) in enumerate(groups) for d in a}
    big = [d for d in layout[1:] if src[d] != 1]
    runs = [owner[d] for k, d in enumerate(big) if k == 0 or owner[big[k - 1]] != owner[d]]
    ordered = all(big[k] < big[k + 1] for k in range(len(big) - 1) if owner[big[k]] == owner[big[k + 1]])
    if len(runs) == len(set(runs)) and ordered:
        need = tuple(layout)
    else:
        emitted, order = set(), [0]
        for d in layout[1:]:
            if owner[d] not in emitted:
                emitted.add(owner[d])
                order += groups[owner[d]][0]
        need = tuple(order)
    # each group's destination dims where its first source dim larger than 1 lies; groups holding only unit
    # dimensions (no data) right after the batch
    out, placed = [0], {0}
    for g, (a, b) in enumerate(groups):
        if g and all(src[d] == 1 for d in a):
            out += b
            placed.add(g)
    for d in need[1:]:
        if src[d] != 1 and owner[d] not in placed:
            placed.add(owner[d])
            out += groups[owner[d]][1]
    return need, tuple(out)
