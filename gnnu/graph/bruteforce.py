"""Compiled k nearest neighbours for points in more dimensions than a tree serves well: the
learnt space of GravNet (S = 4) and the feature spaces of dynamic EdgeConv (64, 128).

The functions give what :mod:`gnnu.graph.kdtree` gives, per graph of a batch: for every point its
``count`` nearest other points (or points, with ``include_self``) in ascending (distance, index)
order, ties at equal distance to the lower index, distance ``sqrt(Σ_c (p_j,c − p_i,c)²)`` in
float64.

- :func:`knn_exact` (up to :data:`EXACT_MAX_DIM` coordinates): distances in that float64
  arithmetic, so the result equals the tree's exactly. A graph's points are cut into spatially
  compact buckets of :data:`BLOCK` (a k-d tree's leaves, without the tree); a query scans its own
  bucket, then, nearest box first, every bucket whose bounding box may still hold a point within
  its current count-th distance, the squared distances of a bucket computed together
  (vectorised). A box's distance is a lower bound of its points' in floating point too (rounding is monotone), so no neighbour is
  missed. In the learnt 4-D space of GravNet this beats the k-d tree, whose per-point descent and
  branches cost more than scanning a bucket (BENCHMARKS.md).
- :func:`knn_matmul` (more coordinates): squared distances of a graph's points, centred on their
  mean, from matrix products, ``|p_i|² + |p_j|² − 2 p_i·p_j`` in the points' precision (what DGCNN
  does, there without centring), in tiles of which each pair is computed once (the product is
  symmetric); per query the ``count +`` :data:`MARGIN` smallest are kept and re-ranked by the
  exact float64 distance. The result equals the exact one unless more than MARGIN points lie
  within the product's rounding of a query's count-th squared distance — about
  1e-7 × (|p_i − m|² + |p_j − m|²) in float32, m the graph's mean: a near-tie, where the choice
  between points at equal distance up to that rounding may differ.
- :func:`knn_projected` (more coordinates, large graphs): exact like :func:`knn_exact`, the
  pruning done in a space of few coordinates. Centred on the graph's mean, the points are
  projected on their ``lead`` principal axes y, and z = (y, |r|) with r the rest of the centred
  point. Since |r_i − r_j| ≥ | |r_i| − |r_j| |, the distance of z's lower-bounds the true distance:
  |z_i − z_j| ≤ |p_i − p_j| (filter and refine). The search of :func:`knn_exact` runs on the z's
  buckets — a bucket is skipped when its box is farther than the query's current count-th true
  distance, a point when its z-distance is — and the survivors' true distances are computed in
  float64 from the points as given (the bounds carry a slack of 1e-6 × the graph's largest
  |p − m|² against the projection's rounding). On dynamic EdgeConv's features the lead axes
  hold most of the variance and a query computes true distances for a small fraction of the n
  points. The true distances are summed vectorised (``fastmath`` reassociation), so they can
  differ from knn_exact's in the last bits: points at equal distance up to ~1e-15 relative (a
  near-tie) may be chosen differently; otherwise the result is identical. Both searches share one layout
  (:func:`_layout`) and one query loop (:func:`_query`).

:func:`knn_features` picks between the last two per graph: the projection for graphs of at least
:data:`PROJECTED_MIN_POINTS` points whose lead axes hold at least :data:`PROJECTED_MIN_VARIANCE`
of the variance, the matrix products otherwise.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import jit
from .kdtree import insert as _insert
from .kdtree import widest_axis

#: Candidates compared per vectorised block.
BLOCK = 64
#: :func:`knn` of :mod:`gnnu.graph.knn` uses :func:`knn_exact` up to this many coordinates.
EXACT_MAX_DIM = 8
#: Extra candidates :func:`knn_matmul` keeps from the product's distances before the exact re-rank.
MARGIN = 8
#: :func:`knn_features` takes :func:`knn_projected` for graphs of at least this many points (fewer:
#: :func:`knn_matmul`, as before; the crossover below it is not measured).
PROJECTED_MIN_POINTS = 1024
#: ... and whose ``lead`` principal axes hold at least this share of the variance (the bound is
#: loose where they hold little: isotropic random points, 0.16 of it, search 0.53× as fast as
#: :func:`knn_matmul`; dynamic EdgeConv's features, 0.90–0.96, 1.5–6× faster;
#: ``tools/bench_knn_features.py``, BENCHMARKS.md).
PROJECTED_MIN_VARIANCE = 0.5


@jit(boundscheck=False)
def _buckets(p, size):
    """Order the points p [n, D] into buckets of at most ``size`` by splitting at the median of
    the widest coordinate (a k-d tree's leaves, without the tree): (order [n], bucket starts
    [B + 1]) with bucket b = ``order[starts[b]:starts[b+1]]``; coincident points stay together,
    so a bucket of identical points can hold more than ``size``."""
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
            widest, spread = widest_axis(p, order, a, b)
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
def _visit_order(lo, hi):
    """For buckets with boxes [lo, hi] [B, D]: ``gap`` [B, B], the squared distance between the
    boxes of buckets a and b (−1 on the diagonal), and ``visit`` [B, B], the buckets by that gap
    from bucket a, a first. A query in bucket a is at least gap[a, b] from every point of b, so
    its scan in this order stops at the first bucket beyond its current count-th distance."""
    nb, dim = lo.shape
    gap = np.empty((nb, nb))
    visit = np.empty((nb, nb), np.int64)
    for a in prange(nb):
        for b in range(nb):
            g2 = 0.0
            for c in range(dim):
                d = max(lo[b, c] - hi[a, c], lo[a, c] - hi[b, c], 0.0)
                g2 += d * d
            gap[a, b] = g2
        gap[a, a] = -1.0
        visit[a] = np.argsort(gap[a])
    return gap, visit


@jit(boundscheck=False)
def _layout(z):
    """The bucket layout of the points z [n, L] (float64): (order, starts) of :func:`_buckets`,
    z_t [L, n] (z by coordinate, points in bucket order), the buckets' boxes lo, hi [B, L], each
    point's bucket in bucket order (home [n]), the largest bucket, and :func:`_visit_order`."""
    n, dz = z.shape
    order, starts = _buckets(z, BLOCK)
    nb = len(starts) - 1
    z_t = np.empty((dz, n))
    for t in range(n):
        for c in range(dz):
            z_t[c, t] = z[order[t], c]
    lo = np.empty((nb, dz))
    hi = np.empty((nb, dz))
    home = np.empty(n, np.int64)
    largest = 0                                   # coincident points can overfill a bucket
    for b in range(nb):
        largest = max(largest, starts[b + 1] - starts[b])
        for c in range(dz):
            lo[b, c] = z_t[c, starts[b]:starts[b + 1]].min()
            hi[b, c] = z_t[c, starts[b]:starts[b + 1]].max()
        home[starts[b]:starts[b + 1]] = b
    gap, visit = _visit_order(lo, hi)
    return order, starts, z_t, lo, hi, home, largest, gap, visit


@jit(inline="always", boundscheck=False)
def _query(t, layout, p_o, refine, include_self, count, base, src, first, slack):
    """The search of the query at bucket position t (see :func:`_exact_graph`); ``refine`` (a
    constant at each call site, so the compiled kernels keep only their branch): the z-distance
    is only a lower bound and the distance comes from p_o [n, D] (bucket order)."""
    order, starts, z_t, lo, hi, home, largest, gap, visit = layout
    dz, n = z_t.shape
    dim = p_o.shape[1]
    i = order[t]
    best_d = np.full(count, np.inf)
    best_j = np.full(count, n, np.int64)
    buf = np.empty(largest)
    q = z_t[:, t].copy()
    pq = p_o[t]
    hb = home[t]
    last = count - 1
    filled = 0
    reject2 = np.inf
    for r in range(len(starts) - 1):
        b = visit[hb, r]
        if gap[hb, b] > reject2:
            break
        if r > 0:
            lb = 0.0
            for c in range(dz):
                g = max(lo[b, c] - q[c], q[c] - hi[b, c], 0.0)
                lb += g * g
            if lb > reject2:
                continue
        b0, m = starts[b], starts[b + 1] - starts[b]
        for u in range(m):
            buf[u] = 0.0
        for c in range(dz):
            row = z_t[c, b0:b0 + m]
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
            if refine:
                pj = p_o[b0 + u]
                d2 = 0.0
                for c in range(dim):
                    diff = pj[c] - pq[c]
                    d2 += diff * diff
            d = np.sqrt(d2)
            if d > best_d[last] or (d == best_d[last] and j >= best_j[last]):
                continue
            filled = _insert(best_d, best_j, filled, last, d, j)
            if best_d[last] < np.inf:
                reject2 = best_d[last] * best_d[last] * (1.0 + 1e-9) + slack
    out = first + i * count
    for r in range(count):
        src[out + r] = base + best_j[r]


@jit(parallel=True, boundscheck=False)
def _exact_graph(p, include_self, count, base, src, first):
    """Neighbours of every point of one graph p [n, D] float64 (global index = base + local):
    point i's ``count`` nearest into ``src[first + i·count …]``. The points are grouped into
    spatially compact buckets of :data:`BLOCK` (:func:`_buckets`) with bounding boxes; a query
    scans its own bucket, then, nearest box first (:func:`_visit_order`), every bucket whose box
    can still hold a point within the current count-th distance, its squared distances computed
    together (vectorised), coordinate by coordinate as the k-d tree sums them."""
    layout = _layout(p)
    none = np.empty((1, 0))
    for t in prange(len(p)):                      # queries in bucket order (warm caches)
        _query(t, layout, none, False, include_self, count, base, src, first, 1e-300)


@jit(parallel=True, boundscheck=False, fastmath={"reassoc", "contract", "nsz"})
def _projected_graph(z, p, include_self, count, base, src, first, slack):
    """:func:`_exact_graph` with the buckets, boxes and point filter in the lower-bounding space
    z [n, L + 1] and the distances of the survivors from p [n, D] (float64, summed vectorised);
    ``slack``: absolute allowance on the bounds' squared rounding."""
    layout = _layout(z)
    order = layout[0]
    p_o = np.empty_like(p)                        # p in bucket order
    for t in range(len(p)):
        p_o[t] = p[order[t]]
    for t in prange(len(p)):
        _query(t, layout, p_o, True, include_self, count, base, src, first, slack)


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


def _graph_float64(pos, s: int, e: int):
    """Points s…e of the CPU tensor ``pos`` (one graph) as a contiguous float64 tensor: the
    searches convert graph by graph, so a batch is not converted once per search."""
    return pos[s:e].detach().double().contiguous()


def knn_features(pos, ptr: np.ndarray, count: np.ndarray, include_self: bool, src: np.ndarray) -> None:
    """Neighbours in a feature space (more than :data:`EXACT_MAX_DIM` coordinates), arguments as
    :func:`knn_matmul`: graphs of at least :data:`PROJECTED_MIN_POINTS` points by
    :func:`knn_projected`, smaller ones by :func:`knn_matmul`."""
    big = np.diff(ptr) >= PROJECTED_MIN_POINTS
    knn_matmul(pos, ptr, count, include_self, src, graphs=np.flatnonzero(~big))
    knn_projected(pos, ptr, count, include_self, src, graphs=np.flatnonzero(big))


def knn_projected(pos, ptr: np.ndarray, count: np.ndarray, include_self: bool, src: np.ndarray,
                  lead: int | None = None, graphs=None) -> None:
    """Exact neighbours pruned on principal-axis projections (module docstring): arguments as
    :func:`knn_matmul`; ``lead`` principal axes (default: an eighth of the coordinates, at least
    8); ``graphs``: the graphs to do (default all). The result equals :func:`knn_exact`'s up to
    near-ties within float64 rounding. A graph whose lead axes hold less than
    :data:`PROJECTED_MIN_VARIANCE` of its variance goes to :func:`knn_matmul` instead."""
    import torch

    dim = pos.shape[1]
    lead = min(dim, max(8, dim // 8) if lead is None else lead)
    first = _first(ptr, count)
    isotropic = []
    for g in range(len(ptr) - 1) if graphs is None else graphs:
        s, e = int(ptr[g]), int(ptr[g + 1])
        cnt = int(count[g])
        if cnt <= 0:
            continue
        exact = _graph_float64(pos, s, e)
        centred = exact - exact.mean(0)
        c32 = centred.float()                     # the axes need not be optimal, only orthonormal
        variance, axes = torch.linalg.eigh((c32.T @ c32).double())    # ascending
        total = float(variance.sum())
        if total > 0 and float(variance[dim - lead:].sum()) < PROJECTED_MIN_VARIANCE * total:
            isotropic.append(g)
            continue
        y = centred @ axes[:, dim - lead:]
        sq = (centred * centred).sum(1)
        # |r|² = |p − m|² − |y|²: its rounding (~1e-15 × |p − m|²) moves |r| by up to ~3e-8 × the
        # largest |p − m| where r is tiny, and the bound by ~3e-7 × its square: the slack's share
        rest = (sq - (y * y).sum(1)).clamp_(min=0).sqrt_()
        z = torch.cat([y, rest[:, None]], 1).numpy()
        slack = 1e-6 * float(sq.max())
        _projected_graph(z, exact.numpy(), include_self, cnt, s, src, int(first[s]), slack)
    if isotropic:
        knn_matmul(pos, ptr, count, include_self, src, graphs=isotropic)


def knn_matmul(pos, ptr: np.ndarray, count: np.ndarray, include_self: bool, src: np.ndarray,
               tile: int = 512, graphs=None) -> None:
    """Neighbours by brute force on matrix-product distances (module docstring): pos [N, D] a
    float32/64 CPU tensor, the rest as :func:`knn_exact`.

    The product is symmetric, so it is computed by tiles of ``tile`` points, each pair of tiles
    once and read for the rows of both (half the arithmetic of the full product). The diagonal
    tiles come first: hits stored near each other are usually near in feature space too, so each
    query's list fills with close candidates early and later tiles are mostly rejected block by
    block. Memory: the candidate sets [n, count + MARGIN] of the graph at hand and one tile.
    ``graphs``: the graphs to do (default all)."""
    import torch

    first = _first(ptr, count)
    for g in range(len(ptr) - 1) if graphs is None else graphs:
        s, e = int(ptr[g]), int(ptr[g + 1])
        n, cnt = e - s, int(count[g])
        if cnt <= 0:
            continue
        exact = _graph_float64(pos, s, e)
        want = min(cnt + MARGIN, n - (0 if include_self else 1))
        # centred on the graph's mean: the product's rounding scales with |p|², not with the
        # distances, so an offset shared by the points would otherwise swamp them
        pg = (exact - exact.mean(0)).to(pos.dtype)
        sq = (pg * pg).sum(1).numpy()
        heap_d = np.empty((n, want), dtype=sq.dtype)
        heap_j = np.empty((n, want), np.int64)
        size = np.zeros(n, np.int64)
        starts = list(range(0, n, tile))
        with torch.autocast("cpu", enabled=False):         # distances in pos's precision
            for diag in range(len(starts)):
                for a in range(len(starts) - diag):
                    i0, j0 = starts[a], starts[a + diag]
                    i1, j1 = min(n, i0 + tile), min(n, j0 + tile)
                    prod = torch.mm(pg[i0:i1], pg[j0:j1].t())
                    dot = prod.numpy()
                    _update(dot, sq, i0, j0, include_self, heap_d, heap_j, size)
                    if diag:                              # the same tile for the rows of j
                        _update(prod.t().contiguous().numpy(), sq, j0, i0, include_self,
                                heap_d, heap_j, size)
        out = src[first[s]:first[s] + n * cnt].reshape(n, cnt)
        _rerank(exact.numpy(), heap_j, cnt, s, out)


#: fastmath flags of :func:`_update`: no NaN (finite inputs are checked), so the block minimum
#: vectorises; infinities keep their meaning (an unfilled list holds +inf).
_FAST = {"nnan", "nsz", "reassoc", "contract"}


@jit(inline="always", boundscheck=False)
def _heap_push(hd, hj, size, d, j):
    """Add (d, j) to the max-heap ``h*[:size]`` ordered by (d, j); returns the new size."""
    c = size
    while c > 0:
        p = (c - 1) // 2
        if hd[p] > d or (hd[p] == d and hj[p] > j):
            break
        hd[c] = hd[p]
        hj[c] = hj[p]
        c = p
    hd[c] = d
    hj[c] = j
    return size + 1


@jit(inline="always", boundscheck=False)
def _heap_replace_top(hd, hj, size, d, j):
    """Replace the largest (d, j) of the full max-heap ``h*[:size]`` by a smaller (d, j)."""
    c = 0
    while True:
        left = 2 * c + 1
        if left >= size:
            break
        m = left
        right = left + 1
        if right < size and (hd[right] > hd[left] or (hd[right] == hd[left] and hj[right] > hj[left])):
            m = right
        if hd[m] < d or (hd[m] == d and hj[m] < j):
            break
        hd[c] = hd[m]
        hj[c] = hj[m]
        c = m
    hd[c] = d
    hj[c] = j


@jit(parallel=True, boundscheck=False, fastmath=_FAST)
def _update(dot, sq, i0, j0, include_self, heap_d, heap_j, size):
    """Offer the candidates of one tile to the candidate sets of its rows: row r of dot [R, C]
    (products of point ``i0 + r`` with points ``j0 …`` of the graph) updates the max-heap
    ``heap_*[i0 + r, :size[i0 + r]]`` of its ``want`` smallest (squared distance
    ``sq_i + sq_j − 2·dot``, index) so far; a block of :data:`BLOCK` candidates is skipped when
    its smallest distance cannot enter. The heaps are unordered sets with their largest on top
    (the order comes from the exact re-rank)."""
    rows, cols = dot.shape
    want = heap_d.shape[1]
    for r in prange(rows):
        i = i0 + r
        hd = heap_d[i]
        hj = heap_j[i]
        k = size[i]
        sq_i = sq[i]
        row = dot[r]
        for b0 in range(0, cols, BLOCK):
            b1 = min(cols, b0 + BLOCK)
            if k == want:
                lo = np.inf
                for t in range(b0, b1):
                    lo = min(lo, sq_i + sq[j0 + t] - (row[t] + row[t]))
                if lo > hd[0]:
                    continue
            for t in range(b0, b1):
                d = sq_i + sq[j0 + t] - (row[t] + row[t])
                j = j0 + t
                if j == i and not include_self:
                    continue
                if k < want:
                    k = _heap_push(hd, hj, k, d, j)
                elif d < hd[0] or (d == hd[0] and j < hj[0]):
                    _heap_replace_top(hd, hj, want, d, j)
        size[i] = k


@jit(parallel=True, boundscheck=False)
def _rerank(pos, cand, count, base, out):
    """Per point i of one graph pos [n, D] float64: the ``count`` nearest of its candidates
    ``cand[i]`` (local indices) by the exact float64 distance, ascending (distance, index), into
    ``out[i]`` as global indices (``base`` + local)."""
    n, want = cand.shape
    dim = pos.shape[1]
    for i in prange(n):
        best_d = np.full(count, np.inf)
        best_j = np.full(count, np.int64(-1))
        last = count - 1
        filled = 0
        for r in range(want):
            j = cand[i, r]
            d2 = 0.0
            for c in range(dim):
                diff = pos[j, c] - pos[i, c]
                d2 += diff * diff
            d = np.sqrt(d2)
            if filled > last and (d > best_d[last] or (d == best_d[last] and j >= best_j[last])):
                continue
            filled = _insert(best_d, best_j, filled, last, d, j)
        for r in range(count):
            out[i, r] = base + best_j[r]
