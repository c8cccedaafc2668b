"""Compiled exact k nearest neighbours: one k-d tree per graph, built and queried in numba.

Part of the ``numba`` backend of :func:`gnnu.graph.knn.knn` (driven by
:func:`gnnu.graph.cellgrid.knn_compiled`): points of 1 or ≥ 3 coordinates, and 2-D graphs too
crowded for a cell grid. For every point of every graph it finds the
``count`` nearest other points (or points, with ``include_self``) in the order the other backends
use: ascending (distance, index), ties at equal distance to the lower index, including at the
count-th place. Distances are ``sqrt(Σ_c (p_c − q_c)²)`` summed over the coordinates in order, in
float64, as in the cell grid (:mod:`gnnu.graph.cellgrid`), so both choose the same neighbours.
scipy's cKDTree computes its distances its own way and can differ from these in the last bit,
which changes the choice only between points whose distances differ by that bit (the knn module's
note on rounding; ``tests/test_knn.py`` has such a case).

Tree: the points of a graph are split at the median of their widest coordinate until a node holds
at most :data:`LEAF` points (or only coincident ones). Query: depth first, nearer child first; a
subtree is skipped when the distance to its splitting plane exceeds the current count-th distance
(never when equal, so tied points with a lower index are still found). Cost: O(n log n) per
graph to build, about O(log n + count) per query for the hit clouds of a detector view.
"""

from __future__ import annotations

import numpy as np

from .._jit import jit

#: Largest number of points in a leaf of the tree.
LEAF = 8


@jit(inline="always")
def widest_axis(p, order, a, b):
    """(axis, extent) of the coordinate with the largest extent over points order[a:b] of p."""
    widest, spread = 0, 0.0
    for c in range(p.shape[1]):
        lo, hi = np.inf, -np.inf
        for t in range(a, b):
            v = p[order[t], c]
            lo = min(lo, v)
            hi = max(hi, v)
        if hi - lo > spread:
            widest, spread = c, hi - lo
    return widest, spread


@jit
def _build(p):
    """k-d tree of the points ``p`` [n, D]: (order, node start, node stop, split coordinate
    (−1: leaf), split value, left child); the right child of node m is ``left[m] + 1``."""
    n, dim = p.shape
    order = np.arange(n)
    size = 2 * n + 2
    start = np.empty(size, np.int64)
    stop = np.empty(size, np.int64)
    axis = np.full(size, -1, np.int64)
    value = np.zeros(size)
    left = np.zeros(size, np.int64)
    stack = np.empty(size, np.int64)
    start[0], stop[0] = 0, n
    n_nodes, top = 1, 1
    stack[0] = 0
    while top:
        top -= 1
        node = stack[top]
        a, b = start[node], stop[node]
        if b - a <= LEAF:
            continue
        widest, spread = widest_axis(p, order, a, b)
        if spread <= 0.0:                     # coincident points: one leaf
            continue
        seg = order[a:b].copy()
        keys = np.empty(b - a)
        for t in range(b - a):
            keys[t] = p[seg[t], widest]
        seg = seg[np.argsort(keys, kind="mergesort")]
        order[a:b] = seg
        m = (a + b) // 2
        axis[node] = widest
        value[node] = p[order[m], widest]
        left[node] = n_nodes
        start[n_nodes], stop[n_nodes] = a, m
        start[n_nodes + 1], stop[n_nodes + 1] = m, b
        stack[top], stack[top + 1] = n_nodes, n_nodes + 1
        top += 2
        n_nodes += 2
    return order, start, stop, axis, value, left


@jit(inline="always")
def insert(best_d, best_j, filled, last, d, j):
    """Put (distance ``d``, index ``j``) into the ascending (distance, index) list
    ``best_*[:last + 1]`` whose first ``filled`` entries are taken (when full, the last drops
    out; the caller has checked that (d, j) beats it). Returns the new ``filled``."""
    r = min(filled, last)
    while r > 0 and (d < best_d[r - 1] or (d == best_d[r - 1] and j < best_j[r - 1])):
        best_d[r] = best_d[r - 1]
        best_j[r] = best_j[r - 1]
        r -= 1
    best_d[r] = d
    best_j[r] = j
    return filled + 1


@jit
def _query(q, ids, i, count, include_self, start, stop, axis, value, left,
           best_d, best_j, stack_node, stack_bound):
    """The ``count`` nearest points of point ``q[i]`` into ``best_j[:count]`` (ascending
    (distance, index)). ``q``: the points in tree order, ``ids`` their indices; ``best_d``,
    ``stack_*`` are work arrays."""
    dim = q.shape[1]
    me = ids[i]
    for r in range(count):
        best_d[r] = np.inf
        best_j[r] = len(ids)
    last = count - 1
    filled = 0                                    # entries of best_* that hold a point
    # squared distances above this cannot enter (sqrt only for those that might: the order is
    # by sqrt(d²), and sqrt can map two nearby d² to one distance)
    reject2 = np.inf
    stack_node[0] = 0
    stack_bound[0] = 0.0
    top = 1
    while top:
        top -= 1
        node = stack_node[top]
        if stack_bound[top] > best_d[last]:
            continue
        c = axis[node]
        if c < 0:                                 # leaf: every point against the current best
            for t in range(start[node], stop[node]):
                d2 = 0.0
                for cc in range(dim):
                    diff = q[t, cc] - q[i, cc]
                    d2 += diff * diff
                if d2 > reject2:
                    continue
                j = ids[t]
                if j == me and not include_self:
                    continue
                d = np.sqrt(d2)
                if d > best_d[last] or (d == best_d[last] and j >= best_j[last]):
                    continue
                filled = insert(best_d, best_j, filled, last, d, j)
                if best_d[last] < np.inf:
                    reject2 = best_d[last] * best_d[last] * (1.0 + 1e-12) + 1e-300
            continue
        diff = q[i, c] - value[node]
        near = left[node] + (1 if diff >= 0.0 else 0)
        far = left[node] + (0 if diff >= 0.0 else 1)
        base = stack_bound[top]
        stack_node[top] = far                     # far pushed first: the near side is searched first
        stack_bound[top] = max(base, abs(diff))
        stack_node[top + 1] = near
        stack_bound[top + 1] = base
        top += 2


@jit
def tree_group(p, count, include_self, src, first, base):
    """The ``count`` nearest points of each point of one graph ``p`` [n, D] float64: point i's
    go to ``src[first + i·count …]`` as ``base + index``."""
    n = len(p)
    order, start, stop, axis, value, left = _build(p)
    q = p[order]                                  # points in tree order: leaves are contiguous
    best_d = np.empty(count)
    best_j = np.empty(count, np.int64)
    stack_node = np.empty(2 * n + 2, np.int64)
    stack_bound = np.empty(2 * n + 2)
    for t in range(n):                            # queries in tree order (warm caches)
        _query(q, order, t, count, include_self, start, stop, axis, value, left,
               best_d, best_j, stack_node, stack_bound)
        out = first + order[t] * count
        for r in range(count):
            src[out + r] = base + best_j[r]
