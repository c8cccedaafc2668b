"""Compiled brute-force k nearest neighbours, for points in more dimensions than a tree serves
well: the learnt space of GravNet (S = 4) and the feature spaces of dynamic EdgeConv (64, 128).

Both functions give what :mod:`gnnu.graph.kdtree` gives, per graph of a batch: for every point its
``count`` nearest other points (or points, with ``include_self``) in ascending (distance, index)
order, ties at equal distance to the lower index, distance ``sqrt(Σ_c (p_j,c − p_i,c)²)`` in
float64.

- :func:`knn_exact` (up to :data:`EXACT_MAX_DIM` coordinates): distances in that float64
  arithmetic, so the result equals the tree's exactly. A graph's points are cut into spatially
  compact buckets of :data:`BLOCK` (a k-d tree's leaves, without the tree); a query scans its own
  bucket, then every bucket whose bounding box may still hold a point within its current count-th
  distance, the squared distances of a bucket computed together (vectorised). A box's distance
  is a lower bound of its points' in floating point too (rounding is monotone), so no neighbour is
  missed. In the learnt 4-D space of GravNet this beats the k-d tree, whose per-point descent and
  branches cost more than scanning a bucket (BENCHMARKS.md).
- :func:`knn_matmul` (more coordinates): squared distances of a graph's points, centred on their
  mean, from one matrix product, ``|p_i|² + |p_j|² − 2 p_i·p_j`` in the points' precision (what
  DGCNN does, there without centring); per query the ``count +`` :data:`MARGIN` smallest are kept
  and re-ranked by the exact float64 distance. The result equals the exact one unless more than
  MARGIN points lie within the product's rounding of a query's count-th squared distance — about
  1e-7 × (|p_i − m|² + |p_j − m|²) in float32, m the graph's mean: a near-tie, where the choice
  between points at equal distance up to that rounding may differ.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import jit
from .kdtree import insert as _insert

#: Candidates compared per vectorised block.
BLOCK = 64
#: :func:`knn` of :mod:`gnnu.graph.knn` uses :func:`knn_exact` up to this many coordinates.
EXACT_MAX_DIM = 8
#: Extra candidates :func:`knn_matmul` keeps from the product's distances before the exact re-rank.
MARGIN = 8


@jit(boundscheck=False)
def _buckets(p, size):
    """Order the points p [n, D] into buckets of at most ``size`` by splitting at the median of
    the widest coordinate (a k-d tree's leaves, without the tree): (order [n], bucket starts
    [B + 1]) with bucket b = ``order[starts[b]:starts[b+1]]``; coincident points stay together."""
    n, dim = p.shape
    order = np.arange(n)
    starts = np.empty(n + 1, np.int64)
    stack_a = np.empty(n + 1, np.int64)
    stack_b = np.empty(n + 1, np.int64)
    stack_a[0], stack_b[0] = 0, n
    top, nb = 1, 0
    while top:
        top -= 1
        a, b = stack_a[top], stack_b[top]
        spread, widest = 0.0, 0
        if b - a > size:
            for c in range(dim):
                lo, hi = np.inf, -np.inf
                for t in range(a, b):
                    v = p[order[t], c]
                    lo = min(lo, v)
                    hi = max(hi, v)
                if hi - lo > spread:
                    widest, spread = c, hi - lo
        if b - a <= size or spread <= 0.0:
            starts[nb] = a
            nb += 1
            continue
        seg = order[a:b].copy()
        keys = np.empty(b - a)
        for t in range(b - a):
            keys[t] = p[seg[t], widest]
        order[a:b] = seg[np.argsort(keys, kind="mergesort")]
        m = (a + b) // 2
        stack_a[top], stack_b[top] = m, b          # left half popped first: buckets in order
        stack_a[top + 1], stack_b[top + 1] = a, m
        top += 2
    starts[nb] = n
    return order, starts[:nb + 1].copy()


@jit(parallel=True, boundscheck=False)
def _exact_graph(p, include_self, count, base, src, first):
    """Neighbours of every point of one graph p [n, D] float64 (global index = base + local):
    point i's ``count`` nearest into ``src[first + i·count …]``. The points are grouped into
    spatially compact buckets of :data:`BLOCK` (:func:`_buckets`) with bounding boxes; a query
    scans its own bucket, then every bucket whose box can still hold a point within the current
    count-th distance, its squared distances computed together (vectorised)."""
    n, dim = p.shape
    order, starts = _buckets(p, BLOCK)
    nb = len(starts) - 1
    q_t = np.empty((dim, n))                      # coordinates by row, points in bucket order
    for t in range(n):
        for c in range(dim):
            q_t[c, t] = p[order[t], c]
    lo = np.empty((nb, dim))
    hi = np.empty((nb, dim))
    home = np.empty(n, np.int64)
    for b in range(nb):
        for c in range(dim):
            lo[b, c] = q_t[c, starts[b]:starts[b + 1]].min()
            hi[b, c] = q_t[c, starts[b]:starts[b + 1]].max()
        home[starts[b]:starts[b + 1]] = b
    for t in prange(n):                           # queries in bucket order (warm caches)
        i = order[t]
        best_d = np.full(count, np.inf)
        best_j = np.full(count, n, np.int64)
        buf = np.empty(BLOCK)
        q = q_t[:, t].copy()
        last = count - 1
        filled = 0
        reject2 = np.inf
        for r in range(nb + 1):
            b = home[t] if r == 0 else r - 1
            if r > 0 and b == home[t]:
                continue
            if r > 0:
                lb = 0.0
                for c in range(dim):
                    gap = max(lo[b, c] - q[c], q[c] - hi[b, c], 0.0)
                    lb += gap * gap
                if lb > reject2:
                    continue
            b0, m = starts[b], starts[b + 1] - starts[b]
            for u in range(m):
                buf[u] = 0.0
            for c in range(dim):
                row = q_t[c, b0:b0 + m]
                qc = q[c]
                for u in range(m):
                    diff = row[u] - qc
                    buf[u] += diff * diff
            for u in range(m):
                d2 = buf[u]
                if d2 > reject2:
                    continue
                j = order[b0 + u]
                if j == i and not include_self:
                    continue
                d = np.sqrt(d2)
                if d > best_d[last] or (d == best_d[last] and j >= best_j[last]):
                    continue
                filled = _insert(best_d, best_j, filled, last, d, j)
                if best_d[last] < np.inf:
                    reject2 = best_d[last] * best_d[last] * (1.0 + 1e-12) + 1e-300
        out = first + i * count
        for r in range(count):
            src[out + r] = base + best_j[r]


def _first(ptr: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Offset of each point's first edge: points of graph g take count[g] edges each."""
    per_point = np.repeat(count, np.diff(ptr))
    return np.concatenate([[0], np.cumsum(per_point)[:-1]]).astype(np.int64)


def knn_exact(pos: np.ndarray, ptr: np.ndarray, count: np.ndarray, include_self: bool,
              src: np.ndarray) -> None:
    """Exact neighbours by brute force: pos [N, D] float64 (finite), graphs ``ptr`` [G + 1],
    ``count`` [G] neighbours per point of each graph; writes the neighbours of point i, nearest
    first, into ``src`` [Σ count·size] from its offset (points in order, ``count[g]`` each)."""
    first = 0
    for g in range(len(ptr) - 1):
        s, e, cnt = int(ptr[g]), int(ptr[g + 1]), int(count[g])
        if cnt > 0:
            _exact_graph(pos[s:e], include_self, cnt, s, src, first)
        first += cnt * (e - s)


def knn_matmul(pos, ptr: np.ndarray, count: np.ndarray, include_self: bool, src: np.ndarray,
               rows_per_block: int = 1024) -> None:
    """Neighbours by brute force on matrix-product distances (module docstring): pos [N, D] a
    float32/64 CPU tensor, the rest as :func:`knn_exact`. Rows are taken ``rows_per_block`` at a
    time, so memory stays at rows × graph size."""
    import torch

    exact = pos.detach().double().contiguous()
    first = _first(ptr, count)
    for g in range(len(ptr) - 1):
        s, e = int(ptr[g]), int(ptr[g + 1])
        cnt = int(count[g])
        if cnt <= 0:
            continue
        want = min(cnt + MARGIN, e - s - (0 if include_self else 1))
        # centred on the graph's mean: the product's rounding scales with |p|², not with the
        # distances, so an offset shared by the points would otherwise swamp them
        pg = (exact[s:e] - exact[s:e].mean(0)).to(pos.dtype)
        sq = (pg * pg).sum(1)
        for r0 in range(0, e - s, rows_per_block):
            r1 = min(e - s, r0 + rows_per_block)
            with torch.autocast("cpu", enabled=False):       # distances in pos's precision
                d2 = torch.addmm(sq[None, :] + sq[r0:r1, None], pg[r0:r1], pg.t(), alpha=-2.0)
            cand = np.empty((r1 - r0, want), np.int64)
            _select_rows(d2.numpy(), s, r0, want, include_self, cand)
            out = src[first[s + r0]:first[s + r0] + (r1 - r0) * cnt].reshape(r1 - r0, cnt)
            _rerank_rows(exact.numpy(), cand, s + r0, cnt, out)


@jit(fastmath=True, boundscheck=False)
def _block_min(row, b0, b1):
    """min(row[b0:b1]) for finite rows, vectorised (fastmath: no NaN semantics needed)."""
    lo = row[b0]
    for t in range(b0 + 1, b1):
        lo = min(lo, row[t])
    return lo


@jit(parallel=True, boundscheck=False)
def _select_rows(d2, base, row0, want, include_self, cand):
    """:func:`_select` for rows ``row0 …`` of a graph starting at ``base`` (row i is query
    ``base + row0 + i``, whose own column is ``row0 + i``)."""
    rows, m = d2.shape
    for i in prange(rows):
        me = row0 + i
        best_d = np.full(want, np.inf, dtype=d2.dtype)
        best_j = np.full(want, np.int64(m))
        row = d2[i]
        last = want - 1
        filled = 0
        for b0 in range(0, m, BLOCK):
            b1 = min(m, b0 + BLOCK)
            if _block_min(row, b0, b1) > best_d[last]:
                continue
            for t in range(b0, b1):
                d = row[t]
                if d > best_d[last] or (t == me and not include_self):
                    continue
                if d == best_d[last] and t >= best_j[last]:
                    continue
                filled = _insert(best_d, best_j, filled, last, d, t)
        for r in range(want):
            cand[i, r] = base + best_j[r]


@jit(parallel=True, boundscheck=False)
def _rerank_rows(pos, cand, row0, count, out):
    """Per row i (query point ``row0 + i``, global): the ``count`` nearest of its candidates
    ``cand[i]`` by the exact float64 distance, ascending (distance, index), into ``out[i]``."""
    rows, want = cand.shape
    dim = pos.shape[1]
    for i in prange(rows):
        q = row0 + i
        best_d = np.full(count, np.inf)
        best_j = np.full(count, np.int64(-1))
        last = count - 1
        filled = 0
        for r in range(want):
            j = cand[i, r]
            d2 = 0.0
            for c in range(dim):
                diff = pos[j, c] - pos[q, c]
                d2 += diff * diff
            d = np.sqrt(d2)
            if filled > last and (d > best_d[last] or (d == best_d[last] and j >= best_j[last])):
                continue
            filled = _insert(best_d, best_j, filled, last, d, j)
        for r in range(count):
            out[i, r] = best_j[r]
