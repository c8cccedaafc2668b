"""Edge builders (docs/design.md#graphs): one function each, registered in :data:`EDGE_BUILDERS`.

Every builder takes a :class:`gnnu.graph.features.NodeTable` (the hits of a block of events) and
its parameter dataclass, and returns ``edge_index`` [2, E] int64 of block-global node indices
(row 0 = source j, row 1 = target i: messages flow j → i). Contract, tested for each builder:
no edge joins two events, no self-loops, no duplicate edges, and edges are grouped by the
target's event (non-decreasing ``batch[target]``). :func:`build_edges` runs the configured
builders, merges and deduplicates their edges, and adds self-loops when asked.

Builders (distances in cm in the view's (wire, drift) plane unless said otherwise):

- ``knn``: each hit receives edges from its k nearest hits of the same view (``space: view``),
  or from its k nearest hits in true 3-D space (``space: 3d``; simulation only, hits without a
  finite true position get no 3-D edges). Backend per :func:`gnnu.graph.knn.knn`.
- ``radius``: each hit receives edges from the hits of its view within ``r_cm``, the nearest
  ``max_neighbours`` of them (ties to the lower index).
- ``adjacency``: detector adjacency: hits of the same view (and, segmented detectors, nearby
  planes of that view) on wires ``w ± 1 … ± wires`` (and on
  the same wire when ``same_wire``) whose drift coordinates differ by at most ``window_cm``.
- ``delaunay``: the Delaunay triangulation of each view's hits (both directions of every
  triangle side). Views with one hit get no edges, two hits or collinear hits are chained in
  order along their line, coincident hits are joined to the first hit at that position, and hits
  Qhull leaves out of the triangulation (numerically coplanar) are joined to their nearest vertex.
- ``crossview``: each hit receives edges from the ``max_per_view`` hits of every other view of
  its event whose drift coordinate is closest to its own, within ``window_cm`` (the drift time is
  shared by all views, so coincident times mean the same charge seen by several planes).

A new builder is one parameter dataclass (its ``kind`` field names the builder in configs) and
one function registered with ``@edge_builder(TheParams)`` (:data:`EDGE_BUILDERS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, NamedTuple

import numpy as np

from ..registry import Registry
from .features import NodeTable
from .knn import knn


class EdgeBuilder(NamedTuple):
    """A registered edge builder: its parameter dataclass and its function."""

    params: type
    build: Callable[[NodeTable, Any], np.ndarray]


#: kind → :class:`EdgeBuilder` (the kind is the params dataclass's ``kind`` default).
EDGE_BUILDERS: Registry[EdgeBuilder] = Registry("edge builder")


def edge_builder(params: type):
    """Decorator: register a builder function with its parameter dataclass ``params`` under
    ``params.kind``."""
    def decorate(fn):
        EDGE_BUILDERS.register(params.kind, EdgeBuilder(params, fn))
        return fn
    return decorate


# -- helpers ------------------------------------------------------------------------------------
def view_groups(nodes: NodeTable) -> np.ndarray:
    """[N] int64 id of each node's (event, view) group: ``batch × V + view``."""
    return nodes.batch * nodes.n_views + nodes.view


def lex_searchsorted(data: list[np.ndarray], queries: list[np.ndarray], side: str) -> np.ndarray:
    """``np.searchsorted`` for rows of several key columns (first column primary), exactly.

    ``data``: columns of equal length n, sorted lexicographically. ``queries``: columns of length
    q, same dtypes. Returns [q] int64 insertion positions: with ``side='left'`` the number of
    data rows < the query row, with ``'right'`` the number ≤ it.
    """
    n, q = len(data[0]), len(queries[0])
    tie = np.concatenate([np.zeros(n, np.int8), np.full(q, -1 if side == "left" else 1, np.int8)])
    keys = [tie] + [np.concatenate([d, qq]) for d, qq in zip(data, queries)][::-1]
    order = np.lexsort(keys)
    is_data = order < n
    before = np.cumsum(is_data) - is_data
    out = np.empty(q, np.int64)
    out[order[~is_data] - n] = before[~is_data]
    return out


def _expand(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges [lo, hi): (range number of each element, position of each element)."""
    counts = np.maximum(hi - lo, 0)
    owner = np.repeat(np.arange(len(lo)), counts)
    start = np.cumsum(counts) - counts
    return owner, lo[owner] + np.arange(counts.sum()) - start[owner]


def _sorted_by_target(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    order = np.lexsort((src, dst))
    return np.stack([src[order], dst[order]]).astype(np.int64)


def _empty() -> np.ndarray:
    return np.zeros((2, 0), np.int64)


# -- kNN ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KnnEdges:
    """k nearest neighbours per view (2-D cm) or in true 3-D space."""

    kind: Literal["knn"] = "knn"
    k: int = 16
    space: Literal["view", "3d"] = "view"
    backend: Literal["auto", "numba", "scipy", "torch", "torch_cluster"] = "numba"

    def __post_init__(self):
        if self.k < 1:
            raise ValueError(f"knn: k must be ≥ 1, got {self.k}")


@edge_builder(KnnEdges)
def knn_edges(nodes: NodeTable, spec: KnnEdges) -> np.ndarray:
    """Edges j → i from the k nearest hits j of hit i (same view, or 3-D)."""
    if spec.space == "3d":
        if nodes.xyz is None:
            raise ValueError("knn with space: 3d needs true hit positions (x, y, z)")
        idx = np.flatnonzero(np.isfinite(nodes.xyz).all(axis=1))
        e = knn(nodes.xyz[idx], spec.k, nodes.batch[idx], include_self=False, backend=spec.backend)
        return idx[e]
    group = view_groups(nodes)
    if np.all(group[1:] >= group[:-1]):         # hits already grouped by view (gnnu-sim, bench)
        return knn(nodes.pos, spec.k, group, include_self=False, backend=spec.backend)
    perm = np.argsort(group, kind="stable")
    e = knn(nodes.pos[perm], spec.k, group[perm], include_self=False, backend=spec.backend)
    return perm[e]


# -- radius -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RadiusEdges:
    """All hits of the same view within ``r_cm`` (at most ``max_neighbours`` per hit)."""

    kind: Literal["radius"] = "radius"
    r_cm: float = 1.0
    max_neighbours: int = 32

    def __post_init__(self):
        if not self.r_cm > 0 or self.max_neighbours < 1:
            raise ValueError("radius: need r_cm > 0 and max_neighbours ≥ 1")


@edge_builder(RadiusEdges)
def radius_edges(nodes: NodeTable, spec: RadiusEdges) -> np.ndarray:
    """Edges j → i for hits j of i's view within ``r_cm`` of it (nearest ``max_neighbours``)."""
    from scipy.spatial import cKDTree

    if len(nodes) < 2:
        return _empty()
    # a third coordinate separates the (event, view) groups by more than r: one tree for all
    sep = 2.0 * spec.r_cm + 1.0
    pts = np.column_stack([nodes.pos.astype(np.float64), view_groups(nodes) * sep])
    pairs = cKDTree(pts).query_pairs(spec.r_cm, output_type="ndarray").astype(np.int64)
    src = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    d2 = ((nodes.pos[src].astype(np.float64) - nodes.pos[dst]) ** 2).sum(axis=1)
    order = np.lexsort((src, d2, dst))
    src, dst = src[order], dst[order]
    counts = np.bincount(dst, minlength=len(nodes))
    rank = np.arange(len(dst)) - (np.cumsum(counts) - counts)[dst]
    keep = rank < spec.max_neighbours
    return _sorted_by_target(src[keep], dst[keep])


# -- wire adjacency -----------------------------------------------------------------------------
@dataclass(frozen=True)
class AdjacencyEdges:
    """Detector adjacency: neighbouring wires/cells (± ``wires``) of the same view — and, for
    segmented detectors, of the same or the ``planes`` nearest planes of that view each side
    (plane numbers ``plane_step`` apart, 2 where views alternate) — within a time window:
    ``window_cm`` of drift coordinate, or ``window_time`` in the detector's time unit (ns) when
    given (for detectors whose position does not come from time)."""

    kind: Literal["adjacency"] = "adjacency"
    wires: int = 1
    window_cm: float = 1.0
    same_wire: bool = True
    planes: int = 0
    plane_step: int = 2
    window_time: float | None = None

    def __post_init__(self):
        if self.wires < 0 or not self.window_cm >= 0 or (self.wires == 0 and not self.same_wire
                                                         and self.planes == 0):
            raise ValueError("adjacency: need wires ≥ 0, window_cm ≥ 0 and some wire to connect")
        if self.planes < 0 or self.plane_step < 1 or (self.window_time is not None
                                                      and not self.window_time >= 0):
            raise ValueError("adjacency: need planes ≥ 0, plane_step ≥ 1 and window_time ≥ 0")


@edge_builder(AdjacencyEdges)
def adjacency_edges(nodes: NodeTable, spec: AdjacencyEdges) -> np.ndarray:
    """Edges j → i for hits j of i's view on plane p_i + s·plane_step (|s| ≤ planes) and wire
    w_i + d (|d| ≤ wires; the same wire on the same plane only with ``same_wire``) whose time
    coordinate lies within the window of i's (inclusive)."""
    n = len(nodes)
    if spec.window_time is None:
        t, window = nodes.pos[:, 1].astype(np.float64), spec.window_cm
    else:
        t, window = nodes.time.astype(np.float64), spec.window_time
    plane = nodes.plane if nodes.plane is not None else np.zeros(n, np.int64)
    order = np.lexsort((t, nodes.wire, plane, nodes.view, nodes.batch))
    data = [nodes.batch[order], nodes.view[order], plane[order], nodes.wire[order], t[order]]
    offsets = [(s * spec.plane_step, d) for s in range(-spec.planes, spec.planes + 1)
               for d in range(-spec.wires, spec.wires + 1) if s or d or spec.same_wire]
    qi = np.tile(np.arange(n), len(offsets))
    dp, dw = (np.repeat(np.array(c, np.int64), n) for c in zip(*offsets))
    base = [nodes.batch[qi], nodes.view[qi], plane[qi] + dp, nodes.wire[qi] + dw]
    lo = lex_searchsorted(data, base + [t[qi] - window], "left")
    hi = lex_searchsorted(data, base + [t[qi] + window], "right")
    owner, where = _expand(lo, hi)
    src, dst = order[where], qi[owner]
    keep = src != dst
    return _sorted_by_target(src[keep], dst[keep])


# -- Delaunay -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DelaunayEdges:
    """Delaunay triangulation of each view's hits."""

    kind: Literal["delaunay"] = "delaunay"


def _delaunay_pairs(p: np.ndarray) -> np.ndarray:
    """Undirected neighbour pairs [M, 2] (local indices) of the Delaunay graph of points ``p``."""
    from scipy.spatial import Delaunay, QhullError

    uniq, first, inverse = np.unique(p, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    rep = first                                   # representative (first) hit of each position
    pairs = [np.stack([rep[inverse], np.arange(len(p))], 1)[rep[inverse] != np.arange(len(p))]]
    m = len(uniq)
    if m == 2:
        pairs.append(rep[None, :])
    elif m > 2:
        try:
            tri = Delaunay(uniq)
            indptr, nbr = tri.vertex_neighbor_vertices
            a = np.repeat(np.arange(m), np.diff(indptr))
            pairs.append(rep[np.stack([a, nbr], 1)])
            if len(tri.coplanar):                 # points left out: join to their nearest vertex
                pairs.append(rep[tri.coplanar[:, [0, 2]]])
        except QhullError:                        # collinear: a chain along the line
            direction = uniq[-1] - uniq[0]
            chain = np.argsort(uniq @ direction, kind="stable")
            pairs.append(rep[np.stack([chain[:-1], chain[1:]], 1)])
    return np.concatenate(pairs).astype(np.int64)


@edge_builder(DelaunayEdges)
def delaunay_edges(nodes: NodeTable, spec: DelaunayEdges) -> np.ndarray:
    """Edges both ways along every side of the Delaunay triangles of each (event, view)."""
    group = view_groups(nodes)
    perm = np.argsort(group, kind="stable")
    bounds = np.flatnonzero(np.diff(group[perm])) + 1
    out = []
    for members in np.split(perm, bounds):
        if len(members) < 2:
            continue
        pr = members[_delaunay_pairs(nodes.pos[members].astype(np.float64))]
        out.append(pr)
    if not out:
        return _empty()
    pr = np.concatenate(out)
    pr = np.concatenate([pr, pr[:, ::-1]])
    key = np.unique(pr[:, 1] * len(nodes) + pr[:, 0])     # dedupe; sorted by (target, source)
    return np.stack([key % len(nodes), key // len(nodes)]).astype(np.int64)


# -- cross-view ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CrossViewEdges:
    """Hits of the other views whose drift coordinate coincides within ``window_cm``."""

    kind: Literal["crossview"] = "crossview"
    window_cm: float = 0.5
    max_per_view: int = 2

    def __post_init__(self):
        if not self.window_cm >= 0 or self.max_per_view < 1:
            raise ValueError("crossview: need window_cm ≥ 0 and max_per_view ≥ 1")


@edge_builder(CrossViewEdges)
def crossview_edges(nodes: NodeTable, spec: CrossViewEdges) -> np.ndarray:
    """Edges j → i from the ``max_per_view`` hits j of each other view of i's event nearest to
    i in drift coordinate, with |Δ| ≤ ``window_cm`` (ties to the lower index)."""
    n, v = len(nodes), nodes.n_views
    if n < 2 or v < 2:
        return _empty()
    t = nodes.pos[:, 1].astype(np.float64)
    # two orders of the same keys: index ascending within equal drift (candidates after the
    # query point) and descending (candidates before it), so both sides offer the lowest indices
    after = np.lexsort((np.arange(n), t, nodes.view, nodes.batch))
    before = np.lexsort((-np.arange(n), t, nodes.view, nodes.batch))
    data = [nodes.batch[after], nodes.view[after], t[after]]
    shift = np.repeat(np.arange(1, v), n)                       # every other view
    qi = np.tile(np.arange(n), v - 1)
    qv = (nodes.view[qi] + shift) % v
    base = [nodes.batch[qi], qv]
    lo = lex_searchsorted(data, base + [t[qi] - spec.window_cm], "left")
    hi = lex_searchsorted(data, base + [t[qi] + spec.window_cm], "right")
    mid = lex_searchsorted(data, base + [t[qi]], "left")
    m = spec.max_per_view
    cand = mid[:, None] + np.arange(-m, m)[None, :]              # m each side of the query
    ok = (cand >= lo[:, None]) & (cand < hi[:, None])
    cand = np.clip(cand, 0, n - 1)
    j = np.concatenate([before[cand[:, :m]], after[cand[:, m:]]], axis=1)
    dt = np.where(ok, np.abs(t[j] - t[qi][:, None]), np.inf)
    pick = np.lexsort((j, dt), axis=1)[:, :m]
    j = np.take_along_axis(j, pick, 1)
    ok = np.isfinite(np.take_along_axis(dt, pick, 1))
    src, dst = j[ok], np.broadcast_to(qi[:, None], j.shape)[ok]
    return _sorted_by_target(src, dst)


# -- combination ----------------------------------------------------------------------------------
def build_edges(nodes: NodeTable, specs, self_loops: bool = False) -> np.ndarray:
    """Edges of every configured builder ``specs``, merged, for a block of events.

    One builder and no self-loops: its edges as they come. Otherwise the union of all builders'
    edges plus, with ``self_loops``, one loop i → i per node, deduplicated and sorted by
    (target, source). Returns [2, E] int64 block-global indices, grouped by the target's event.
    """
    parts = [EDGE_BUILDERS[s.kind].build(nodes, s) for s in specs]
    if len(parts) == 1 and not self_loops:
        return parts[0]
    n = len(nodes)
    if self_loops:
        loop = np.arange(n, dtype=np.int64)
        parts.append(np.stack([loop, loop]))
    e = np.concatenate(parts, axis=1) if parts else _empty()
    key = np.unique(e[1] * n + e[0])
    return np.stack([key % max(n, 1), key // max(n, 1)]).astype(np.int64)
