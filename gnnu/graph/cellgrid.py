"""Compiled exact k nearest neighbours in the plane: one uniform cell grid per graph.

The ``numba`` backend of :func:`gnnu.graph.knn.knn` for 2-D points (a detector view's
(wire, drift) plane). Same result as the k-d tree of :mod:`gnnu.graph.kdtree` and the scipy
backend: for every point of every graph the ``count`` nearest other points (or points, with
``include_self``) in ascending (distance, index) order, ties at equal distance to the lower index,
including at the count-th place; distance ``sqrt(dx² + dy²)`` in float64.

Grid: the graph's bounding box is cut into square cells, halving the cell side while a point
shares its cell with more than :data:`OCCUPANCY` others on average, as long as the grid stays
within :data:`CELLS_PER_POINT` cells per point; points are counting-sorted by cell, so each row
of cells is one contiguous run. A graph whose points stay crowded into few cells at that size
(coincident points, or a tight core inside a far halo) goes to the k-d tree instead: no grid of
bounded size separates them, and gathering whole crowded cells would approach a brute force.

Query, for the points in cell order (neighbouring queries see similar densities): take every
point in the square of cells covering the query ± R, where R is :data:`GROW` times the previous
query's count-th distance. Points outside that square are at least ``g`` away (the distance to
the square's edge, less a rounding margin), so only candidates inside the certified disc
``d² < g²`` count (a square reaching every border of the grid certifies every point). While
gathered, their squared distances are counted in :data:`RINGS` equal-area rings of the disc; the
rings up to the one holding the count-th candidate give a short list (the count-th candidate's
ring holds only a few more), ranked exactly by (d², index) with branch-free comparisons. Too few candidates in
the disc: R grows and the square is gathered again.

Ranking by d² equals ranking by sqrt(d²) except where two different d² round to one distance;
such cases (a tie in sqrt among the chosen, or an unchosen candidate with the count-th distance)
are detected and those queries are redone by a plain (distance, index) insertion over all their
candidates. Cost: O(n + cells) per graph to build, about O(candidates + count²) per query, with
few unpredictable branches (the k-d tree's descent and insertion sort are branch-bound).
"""

from __future__ import annotations

import numpy as np

from .._jit import jit
from .kdtree import insert, tree_group

#: A point shares its cell with at most about this many others on average (finest grid allowed).
OCCUPANCY = 1.0
#: At most this many cells per point (bounds memory and the per-graph build cost).
CELLS_PER_POINT = 32
#: Beyond this mean occupancy at the finest grid, a graph goes to the k-d tree.
CROWDED = 64.0
#: Equal-area rings of the certified disc in which candidates are counted.
RINGS = 32
#: Search radius of a query: this factor times the previous query's count-th distance.
GROW = 1.3
_BIG = 1e308


@jit
def _layout(px, py):
    """(x0, y0, cell side, cells in x, cells in y, mean own-cell occupancy, points per cell
    [≥ cells in x × y; the first that many entries count]) of the grid."""
    n = len(px)
    x0, x1, y0, y1 = px.min(), px.max(), py.min(), py.max()
    wx, wy = x1 - x0, y1 - y0
    w = max(wx, wy)
    occ = np.empty(CELLS_PER_POINT * n + 2, np.int64)
    if not w > 0.0:
        occ[0] = n
        return x0, y0, 1.0, 1, 1, float(n), occ
    h = max(np.sqrt(wx * wy / n), w / n)
    gx, gy, mean = 1, 1, float(n)
    occ[0] = n
    for _ in range(64):
        nx, ny = int(wx / h) + 1, int(wy / h) + 1
        if nx * ny > CELLS_PER_POINT * n + 1:
            break
        gx, gy = nx, ny
        occ[:gx * gy] = 0
        for i in range(n):
            occ[_cell(px[i], py[i], x0, y0, h, gx, gy)] += 1
        s2 = 0
        for c in range(gx * gy):
            s2 += occ[c] * occ[c]
        mean = s2 / n
        if mean <= OCCUPANCY + 1.0:
            return x0, y0, h, gx, gy, mean, occ
        h *= 0.5
    return x0, y0, h * 2.0, gx, gy, mean, occ


@jit(inline="always")
def _cell(x, y, x0, y0, h, gx, gy):
    """Cell of (x, y); points beyond the grid go to its border cells."""
    return (min(max(int((y - y0) / h), 0), gy - 1) * gx) + min(max(int((x - x0) / h), 0), gx - 1)


@jit
def _exact(cd, cj, c, count, within, bd, bj):
    """Slow exact path: the ``count`` smallest (sqrt(d²), index) among candidates ``cd``/``cj``
    [:c] with distance ≤ ``within``, by insertion, into ``bj`` (``bd`` holds distances)."""
    last = count - 1
    for r in range(count):
        bd[r] = np.inf
        bj[r] = 1 << 62
    filled = 0
    for u in range(c):
        d = np.sqrt(cd[u])
        j = cj[u]
        if d > within or d > bd[last] or (d == bd[last] and j >= bj[last]):
            continue
        filled = insert(bd, bj, filled, last, d, j)


@jit
def _grid_group(px, py, count, include_self, x0, y0, h, gx, gy, occ, src, first, base):
    """Neighbours of the points ``px, py`` of one graph on the grid (x0, y0, h, gx, gy; ``occ``
    its points per cell): point i's ``count`` neighbours go to ``src[first + i·count …]`` as
    ``base + index``."""
    n = len(px)
    start = np.zeros(gx * gy + 1, np.int64)
    cell = np.empty(n, np.int64)
    for i in range(n):
        cell[i] = _cell(px[i], py[i], x0, y0, h, gx, gy)
    for c in range(gx * gy):
        start[c + 1] = start[c] + occ[c]
    order = np.empty(n, np.int64)
    fill = start[:-1].copy()
    for i in range(n):
        order[fill[cell[i]]] = i
        fill[cell[i]] += 1
    xs, ys = px[order], py[order]
    cd, cj, cb = np.empty(n), np.empty(n, np.int64), np.empty(n, np.int64)
    sd, sj = np.empty(n), np.empty(n, np.int64)
    bd, bj = np.empty(count), np.empty(count, np.int64)
    ring = np.zeros(RINGS + 1, np.int64)
    last = count - 1
    margin = 1e-9 * (abs(x0) + abs(y0) + (gx + gy) * h)
    radius = 2.0 * h
    for t in range(n):
        xi, yi, me = xs[t], ys[t], order[t]
        while True:
            # the square of cells covering the query ± radius, and its certified distance g
            ax0 = int(min(max((xi - radius - x0) / h, 0.0), gx - 1.0))
            ax1 = int(min(max((xi + radius - x0) / h, 0.0), gx - 1.0))
            by0 = int(min(max((yi - radius - y0) / h, 0.0), gy - 1.0))
            by1 = int(min(max((yi + radius - y0) / h, 0.0), gy - 1.0))
            g = _BIG
            if ax0 > 0:
                g = min(g, xi - (x0 + ax0 * h))
            if ax1 < gx - 1:
                g = min(g, x0 + (ax1 + 1) * h - xi)
            if by0 > 0:
                g = min(g, yi - (y0 + by0 * h))
            if by1 < gy - 1:
                g = min(g, y0 + (by1 + 1) * h - yi)
            # candidates inside the certified disc (the whole grid: every point), counted in
            # equal-area rings of it while gathered
            if g == _BIG:
                disc = (gx * gx + gy * gy) * h * h * (1.0 + 1e-9) + 1e-300
            else:
                disc = (g - margin) * (g - margin) * (1.0 - 1e-12) if g > margin else 0.0
            if not disc > 0.0:                    # the query sits on the square's edge
                radius *= 1.6
                continue
            scale = RINGS / disc
            ring[:] = 0
            c = 0
            mine = 0
            for cy in range(by0, by1 + 1):
                a, b = start[cy * gx + ax0], start[cy * gx + ax1 + 1]
                if a <= t < b:
                    mine = c + t - a
                for u in range(a, b):
                    dx, dy = xs[u] - xi, ys[u] - yi
                    d2 = dx * dx + dy * dy
                    ring_u = np.int64(min(d2 * scale, RINGS))    # d² ≥ disc → RINGS
                    cd[c + u - a] = d2
                    cj[c + u - a] = order[u]
                    cb[c + u - a] = ring_u
                    ring[ring_u] += 1
                c += b - a
            if not include_self:
                ring[cb[mine]] -= 1
                cd[mine] = np.inf
                cb[mine] = RINGS
            total, edge = 0, RINGS
            for b in range(RINGS):
                total += ring[b]
                if total >= count:
                    edge = b
                    break
            if edge == RINGS:                     # too few certain candidates: larger square
                radius *= 1.6
                continue
            s = 0
            for u in range(c):
                sd[s] = cd[u]
                sj[s] = cj[u]
                s += cb[u] <= edge
            for u in range(s):                    # exact rank by (d², index), branch-free
                du, ju = sd[u], sj[u]
                r = 0
                for v in range(s):
                    r += np.int64(sd[v] < du) + np.int64((sd[v] == du) & (sj[v] < ju))
                if r < count:
                    bd[r] = du
                    bj[r] = ju
            k2 = bd[last]
            near = k2 * (1.0 + 1e-15)             # d² that may round to the count-th distance
            unsure = 0
            for r in range(last):
                unsure += (bd[r + 1] != bd[r]) & (bd[r + 1] <= bd[r] * (1.0 + 1e-15))
            # d² ≤ near lie in the short list unless near reaches the next ring: then check all
            vd, nv = (cd, c) if near * scale >= edge + 1 else (sd, s)
            for u in range(nv):
                unsure += (vd[u] > k2) & (vd[u] <= near)
            if unsure:
                _exact(cd, cj, c, count, np.sqrt(k2), sd, bj)
            break
        out = first + me * count
        for r in range(count):
            src[out + r] = base + bj[r]
        radius = max(np.sqrt(k2) * GROW, 1e-300)


@jit
def knn_compiled(pos, ptr, k, include_self, edges, grid):
    """Neighbours of every point of ``pos`` [N, D] float64 within its graph (graphs are the runs
    ``ptr`` [G + 1]), ``min(k, n − 1)`` (``n`` with ``include_self``) per point of an n-point
    graph, centre by centre, written into ``edges`` [2, E] (row 0 neighbour, row 1 centre;
    global indices). ``grid`` (2-D points only): on the cell grid, except crowded graphs;
    otherwise every graph on the k-d tree. Returns the number of graphs searched with the tree."""
    src, dst = edges[0], edges[1]
    out = 0
    extra = 0 if include_self else 1
    on_tree = 0
    for g in range(len(ptr) - 1):
        s, e = ptr[g], ptr[g + 1]
        n = e - s
        count = min(k, n - extra)
        if count <= 0:
            continue
        crowded = True
        if grid:
            px, py = pos[s:e, 0].copy(), pos[s:e, 1].copy()
            x0, y0, h, gx, gy, mean, occ = _layout(px, py)
            crowded = mean > CROWDED
            if not crowded:
                _grid_group(px, py, count, include_self, x0, y0, h, gx, gy, occ, src, out, s)
        if crowded:
            tree_group(pos[s:e], count, include_self, src, out, s)
            on_tree += 1
        for i in range(n):
            dst[out + i * count:out + (i + 1) * count] = s + i
        out += n * count
    return on_tree
