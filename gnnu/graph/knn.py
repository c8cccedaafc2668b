"""k nearest neighbours behind one function, :func:`knn`, with three interchangeable backends.

``knn(pos, k, batch)`` returns the directed edges j → i from each point's k nearest neighbours j
(PyG ``source_to_target`` flow: row 0 = neighbour/source, row 1 = centre/target), never across
the graphs of a batch. Backends:

- ``torch_cluster``: ``torch_cluster.knn`` (optional extra, a source build); fast on CPU and CUDA.
- ``numba``: gnnu's own compiled search per graph (CPU; numpy or CPU tensor in, numpy out): a
  cell grid for 2-D points (:mod:`gnnu.graph.cellgrid`, the view plane of gnnu-build), a k-d tree
  for 1-D and 3-D (:mod:`gnnu.graph.kdtree`), an exact brute force up to 8-D (GravNet's learnt
  space) and beyond (the feature spaces of dynamic EdgeConv) an exact search pruned on
  principal-axis projections for graphs of ≥ 1024 points, a brute force on matrix-product
  distances, re-ranked exactly, for smaller ones (:mod:`gnnu.graph.bruteforce` says where they
  can differ: near-ties within float64 and float32 rounding); finite coordinates only.
- ``scipy``: one ``scipy.spatial.cKDTree`` per graph (CPU); numpy in, numpy out.
- ``torch``: batched brute force in pure torch on the input's device (CPU or GPU); graphs are
  padded, largest first, into blocks of at most ``block_size`` pairwise distances, so memory stays
  bounded and a GPU sees a batch in a few large blocks. Beyond 8 coordinates (feature spaces) the
  distances come from matrix products and the best candidates are re-ranked exactly, as in the
  numba backend (near-ties within the product's rounding may choose differently).

``backend='auto'`` uses torch-cluster when importable, else the torch brute force for tensors on
a GPU, else numba.

The result is the same for every backend (up to floating-point rounding of distances, which
matters only for near-ties): edges are grouped by centre in ascending order, and each centre's
neighbours come in ascending (distance, index) order — ties at equal distance go to the lower
index, including at the k-th place. A graph with fewer than k other points connects each point
to all of them. ``include_self`` says whether a point is its own neighbour (counted among the k,
as in PyG's ``loop=True`` and DGCNN; ParticleNet and GravNet exclude it).

Simplifications: the torch-cluster backend takes its neighbour choice at exact ties from
torch-cluster (its distances are float32); only the numba, scipy and torch backends apply the
lower-index rule at the k-th place.
"""

from __future__ import annotations

import numpy as np

#: Backends accepted by :func:`knn`.
BACKENDS = ("auto", "numba", "scipy", "torch", "torch_cluster")
#: The numba backend takes the grid or k-d tree up to this many coordinates per point.
TREE_MAX_DIM = 3


def has_torch_cluster() -> bool:
    """Whether the optional torch-cluster package can be imported."""
    try:
        import torch_cluster  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def knn(pos, k: int, batch=None, include_self: bool = False, backend: str = "auto",
        block_size: int | None = None):
    """Directed kNN edges of the points ``pos``, per graph of ``batch``.

    ``pos``: [N, D] coordinates (numpy array or torch tensor; any unit, Euclidean distance).
    ``k``: neighbours per point (≥ 1). ``batch``: [N] graph index of each point, sorted
    non-decreasing (``None``: one graph). ``include_self``: a point counts as its own nearest
    neighbour. ``backend``: one of :data:`BACKENDS`. ``block_size``: torch backend only, the
    largest number of pairwise distances held at once (default: :data:`TORCH_BLOCK` of the
    device).

    Returns ``edge_index`` [2, E] int64 (row 0 = neighbour j, row 1 = centre i), numpy for numpy
    input, a tensor on ``pos``'s device for tensor input.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown kNN backend '{backend}' (known: {', '.join(BACKENDS)})")
    if int(k) < 1:
        raise ValueError(f"k must be ≥ 1, got {k}")
    is_tensor = not isinstance(pos, np.ndarray)
    if backend == "auto":
        if has_torch_cluster():
            backend = "torch_cluster"
        elif is_tensor and pos.device.type != "cpu":
            backend = "torch"
        else:
            backend = "numba"
    if backend in ("numba", "scipy"):
        b = None if batch is None else (batch if isinstance(batch, np.ndarray)
                                        else batch.detach().cpu().numpy())
        if backend == "numba":
            edges = _knn_numba(pos, int(k), b, include_self)
        else:
            p = pos.detach().cpu().numpy() if is_tensor else pos
            edges = _knn_scipy(np.asarray(p), int(k), b, include_self)
        if is_tensor:
            import torch
            return torch.from_numpy(edges).to(pos.device)
        return edges
    import torch
    p = pos if is_tensor else torch.from_numpy(np.ascontiguousarray(pos))
    b = None if batch is None else (batch if isinstance(batch, torch.Tensor)
                                    else torch.from_numpy(np.asarray(batch)).to(p.device))
    if backend == "torch":
        edges = _knn_torch(p, int(k), b, include_self, None if block_size is None else int(block_size))
    else:
        edges = _knn_torch_cluster(p, int(k), b, include_self)
    return edges if is_tensor else edges.cpu().numpy()


# -- helpers shared by the backends ---------------------------------------------------------
def graph_pointers(batch: np.ndarray | None, n: int) -> np.ndarray:
    """[G + 1] start offsets of the runs of equal values in a sorted ``batch`` (G = number of runs)."""
    if batch is None or n == 0:
        return np.array([0, n] if n else [0], dtype=np.int64)
    batch = np.asarray(batch)
    if batch.shape != (n,):
        raise ValueError(f"batch must have shape [{n}], got {list(batch.shape)}")
    step = np.diff(batch)
    if np.any(step < 0):
        raise ValueError("batch must be sorted (non-decreasing)")
    return np.concatenate([[0], np.flatnonzero(step) + 1, [n]]).astype(np.int64)


def _order_rows(d: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row of candidate (distance, index) pairs by distance, then index."""
    tied = np.flatnonzero(np.any(d[:, 1:] == d[:, :-1], axis=1)) if d.shape[1] > 1 else []
    if len(tied):
        order = np.lexsort((idx[tied], d[tied]), axis=1)
        d[tied] = np.take_along_axis(d[tied], order, 1)
        idx[tied] = np.take_along_axis(idx[tied], order, 1)
    return d, idx


def _sq_dist(a, b):
    """Squared Euclidean distances of broadcastable [..., D] arrays or tensors, one coordinate at
    a time (the same operations in every backend, and no [..., D] temporary of pairwise size)."""
    d = (a[..., 0] - b[..., 0]) ** 2
    for c in range(1, a.shape[-1]):
        d = d + (a[..., c] - b[..., c]) ** 2
    return d


def _counts(ptr: np.ndarray, k: int, include_self: bool) -> tuple[np.ndarray, np.ndarray]:
    """(neighbours per point of each graph, graph sizes) for graphs ``ptr``."""
    sizes = np.diff(ptr)
    return np.minimum(k, np.maximum(sizes - (0 if include_self else 1), 0)), sizes


def _centres(ptr: np.ndarray, k: int, include_self: bool) -> tuple[np.ndarray, np.ndarray]:
    """(neighbours per point of each graph, the centre of every edge) for graphs ``ptr``."""
    count, sizes = _counts(ptr, k, include_self)
    return count, np.repeat(np.arange(ptr[-1]), np.repeat(count, sizes))


# -- numba --------------------------------------------------------------------------------------
def _knn_numba(pos, k: int, batch, include_self: bool, grid: bool = True) -> np.ndarray:
    """``pos``: numpy array or CPU tensor. Up to 3 coordinates the cell grid (2-D) or the k-d
    tree (``grid=False``: the tree for 2-D points too; benchmarks compare the two); up to
    :data:`~gnnu.graph.bruteforce.EXACT_MAX_DIM` the exact brute force; beyond,
    :func:`~gnnu.graph.bruteforce.knn_features` (:mod:`gnnu.graph.bruteforce`)."""
    from . import bruteforce
    from .cellgrid import knn_compiled

    if pos.ndim != 2:
        raise ValueError(f"pos must have shape [N, D], got {list(pos.shape)}")
    dim = pos.shape[1]
    tensor = None
    if not isinstance(pos, np.ndarray):
        tensor, pos = pos, pos.detach().cpu().numpy()
    if not np.isfinite(pos).all():
        raise ValueError("pos must be finite for the numba kNN backend")
    ptr = graph_pointers(batch, len(pos))
    count, sizes = _counts(ptr, k, include_self)
    edges = np.empty((2, int(np.dot(count, sizes))), np.int64)
    if not edges.shape[1]:
        return edges
    if dim <= TREE_MAX_DIM:
        knn_compiled(np.ascontiguousarray(pos, dtype=np.float64), ptr, k, include_self, edges,
                     grid and dim == 2)
        return edges
    edges[1] = np.repeat(np.arange(len(pos)), np.repeat(count, sizes))
    if dim <= bruteforce.EXACT_MAX_DIM:
        bruteforce.knn_exact(np.ascontiguousarray(pos, dtype=np.float64), ptr, count, include_self,
                             edges[0])
    else:
        import torch

        p = tensor.detach().cpu() if tensor is not None else torch.from_numpy(pos)
        if p.dtype not in (torch.float32, torch.float64):
            p = p.float()
        bruteforce.knn_features(p.contiguous(), ptr, count, include_self, edges[0])
    return edges


# -- scipy ------------------------------------------------------------------------------------
def _knn_scipy(pos: np.ndarray, k: int, batch, include_self: bool) -> np.ndarray:
    from scipy.spatial import cKDTree

    if pos.ndim != 2:
        raise ValueError(f"pos must have shape [N, D], got {list(pos.shape)}")
    pos = np.asarray(pos, dtype=np.float64)
    n_total = len(pos)
    ptr = graph_pointers(batch, n_total)
    sizes = np.diff(ptr)
    extra = 0 if include_self else 1
    q = k + extra + 1               # one candidate beyond the k (+ self) shows ties at the k-th place
    count, dst = _centres(ptr, k, include_self)               # neighbours per point, per graph
    first = np.zeros(n_total + 1, np.int64)                   # edge offset of each centre
    first[1:] = np.cumsum(np.repeat(count, sizes))
    src = np.empty(first[-1], np.int64)
    trees: dict[int, cKDTree] = {}
    dists, idxs, rows = [], [], []
    for g in np.flatnonzero(sizes >= q):                      # graphs with more than k others
        s, e = int(ptr[g]), int(ptr[g + 1])
        trees[g] = cKDTree(pos[s:e])
        d, i = trees[g].query(pos[s:e], k=q)
        dists.append(d)
        idxs.append(i + s)
        rows.append(np.arange(s, e))
    if rows:
        d, idx, rows = np.concatenate(dists), np.concatenate(idxs), np.concatenate(rows)
        d, idx = _order_rows(d, idx)
        if not include_self:
            d, idx = _drop_self(d, idx, rows)
        boundary = np.flatnonzero(d[:, k - 1] == d[:, k])
        idx = idx[:, :k]
        if len(boundary):
            g_of = np.searchsorted(ptr, rows[boundary], side="right") - 1
            for r, g in zip(boundary, g_of):
                s = int(ptr[g])
                idx[r] = s + _resolve_ties(trees[g], pos[s:int(ptr[g + 1])], int(rows[r]) - s,
                                           d[r, k - 1], k, include_self)
        src[first[rows][:, None] + np.arange(k)] = idx
    for g in np.flatnonzero((sizes < q) & (count > 0)):       # small graphs: all other points
        s, e = int(ptr[g]), int(ptr[g + 1])
        p = pos[s:e]
        d2 = _sq_dist(p[:, None, :], p[None, :, :])
        cand = np.broadcast_to(np.arange(e - s), d2.shape)
        order = np.lexsort((cand, d2), axis=1)
        if not include_self:
            order = order[order != np.arange(e - s)[:, None]].reshape(e - s, -1)
        src[first[s]:first[e]] = (order[:, :count[g]] + s).reshape(-1)
    return np.stack([src, dst])


def _drop_self(d: np.ndarray, idx: np.ndarray, rows: np.ndarray):
    """Remove each row's own index from its candidates (or the last one if absent)."""
    if np.array_equal(idx[:, 0], rows):  # the usual case: self comes first (distance 0)
        return d[:, 1:], idx[:, 1:]
    is_self = idx == rows[:, None]
    missing = ~is_self.any(axis=1)
    is_self[missing, -1] = True          # self lies beyond the candidates: drop the farthest
    keep = ~is_self
    m = idx.shape[1] - 1
    return d[keep].reshape(-1, m), idx[keep].reshape(-1, m)


def _resolve_ties(tree, pts: np.ndarray, i: int, radius: float, need: int,
                  include_self: bool) -> np.ndarray:
    """Exact (distance, index) choice of point i's neighbours when its k-th distance is tied
    beyond the k: every point within that distance, sorted. Local indices [need]."""
    cand = np.asarray(tree.query_ball_point(pts[i], radius * (1 + 1e-9) + 1e-300), dtype=np.int64)
    if not include_self:
        cand = cand[cand != i]
    d2 = _sq_dist(pts[cand], pts[i])
    return cand[np.lexsort((cand, d2))[:need]]


# -- torch brute force ------------------------------------------------------------------------
#: Pairwise distances the torch backend holds at once by default, per device type: a GPU takes
#: whole batches of DUNE-like views in a few blocks (1 << 27 float32 distances = 512 MiB).
TORCH_BLOCK = {"cpu": 1 << 24, "cuda": 1 << 27}
#: Device types on which the torch backend computes a padded block's squared distances and
#: exclusions (padding, self) in one ``torch.compile``-d pass — one kernel writing [B, m, m] once
#: instead of seven eager passes over it — for up to 8 coordinates. On by default on the GPU,
#: where those passes are the graph build's cost; off on the CPU (compiling costs minutes there,
#: and the CPU builds graphs with numba). Should compilation fail, the eager passes run instead
#: (with a warning) and the device type is switched off.
TORCH_FUSED = {"cuda": True}
_FUSED: dict[str, object] = {}


def _fused_distances():
    """The compiled pass of :data:`TORCH_FUSED` (dynamic shapes: one compilation per
    dimension and ``include_self``): the same operations as the eager path."""
    if "fn" not in _FUSED:
        import torch

        def distances(x, valid, include_self: bool):
            d = _sq_dist(x[:, :, None, :], x[:, None, :, :])
            excluded = ~valid[:, None, :]
            if not include_self:
                idx = torch.arange(x.shape[1], device=x.device)
                excluded = excluded | (idx[:, None] == idx[None, :])
            return d.masked_fill(excluded, float("inf"))

        _FUSED["fn"] = torch.compile(distances, dynamic=True)
    return _FUSED["fn"]


def _knn_torch(pos, k: int, batch, include_self: bool, block_size: int | None):
    """Graphs of at most ``block_size`` pairs are packed, largest first, into padded [B, m, m]
    blocks (m = the block's largest graph), larger ones searched in blocks of rows; the edges
    are then put in centre order (a stable sort keeps each centre's neighbour order). Autocast
    is off inside: distances in the points' own precision."""
    import torch

    if pos.dim() != 2:
        raise ValueError(f"pos must have shape [N, D], got {list(pos.shape)}")
    n_total = pos.shape[0]
    ptr = graph_pointers(None if batch is None else batch.detach().cpu().numpy(), n_total)
    sizes = np.diff(ptr)
    if block_size is None:
        block_size = TORCH_BLOCK.get(pos.device.type, TORCH_BLOCK["cpu"])
    src, dst = [], []
    with torch.autocast(pos.device.type, enabled=False):
        for g in np.flatnonzero(sizes * sizes > block_size):
            s_, d_ = _knn_torch_rows(pos, int(ptr[g]), int(sizes[g]), k, include_self, block_size)
            src.append(s_)
            dst.append(d_)
        small = [int(g) for g in np.argsort(-sizes, kind="stable")
                 if 0 < sizes[g] and sizes[g] * sizes[g] <= block_size]
        i = 0
        while i < len(small):
            m = int(sizes[small[i]])                     # the block's largest graph
            j = i + 1
            while j < len(small) and (j + 1 - i) * m * m <= block_size:
                j += 1
            gs = np.array(small[i:j])
            s_, d_ = _knn_torch_padded(pos, ptr[gs], sizes[gs], m, k, include_self)
            src.append(s_)
            dst.append(d_)
            i = j
    if not src:
        return torch.zeros((2, 0), dtype=torch.long, device=pos.device)
    src, dst = torch.cat(src), torch.cat(dst)
    order = torch.argsort(dst, stable=True)
    return torch.stack([src[order], dst[order]])


def _select(d, k_eff: int):
    """Per row of ``d`` [..., m]: the ``k_eff`` smallest entries, ties to the lower column.

    Returns (values, columns) [..., k_eff] in ascending (value, column) order; +inf marks
    excluded entries, which sort last.
    """
    import torch

    vals, cols = d.topk(k_eff, dim=-1, largest=False, sorted=True)
    kth = vals[..., -1:]
    # rows where topk left out an entry equal to the k-th value: redo them by column order
    tied = ((d == kth).sum(-1) > (vals == kth).sum(-1)) & torch.isfinite(kth[..., 0])
    if bool(tied.any()):
        dt, kt = d[tied], kth[tied]
        below = (dt < kt).sum(-1, keepdim=True)
        eq = dt == kt
        take = (dt < kt) | (eq & (torch.cumsum(eq.to(torch.int64), -1) <= k_eff - below))
        cols_t = torch.nonzero(take)[:, 1].view(-1, k_eff)
        vals[tied] = torch.gather(dt, 1, cols_t)
        cols[tied] = cols_t
    # within the selection: order by (value, column)
    cols, order = cols.sort(dim=-1)
    vals = torch.gather(vals, -1, order)
    vals, order = vals.sort(dim=-1, stable=True)
    cols = torch.gather(cols, -1, order)
    return vals, cols


def _nearest(xq, xp, excluded, k_eff: int, valid=None):
    """The ``k_eff`` nearest points of each query: (squared distances, columns) [..., r, k_eff]
    in ascending (distance, column) order, +inf where fewer points are left.

    ``xq`` [B, r, D] queries, ``xp`` [B, m, D] points, ``excluded`` [B, r, m] bool (or
    broadcastable): pairs never chosen; ``valid`` [B, m] bool: the real points (padding
    excluded), for the centring below. Up to :data:`~gnnu.graph.bruteforce.EXACT_MAX_DIM`
    coordinates the distances are the exact one-coordinate-at-a-time sums of :func:`_sq_dist`.
    Beyond (dynamic EdgeConv's feature spaces), as the numba backend's ``knn_matmul``: squared
    distances of the points centred on their mean from one batched matrix product, the
    ``k_eff +`` :data:`~gnnu.graph.bruteforce.MARGIN` smallest re-ranked by the direct sum of
    squared differences (near-ties within the product's rounding may choose differently)."""
    import torch

    from .bruteforce import EXACT_MAX_DIM, MARGIN

    inf = float("inf")
    if xq.shape[-1] <= EXACT_MAX_DIM:
        d = _sq_dist(xq[..., :, None, :], xp[..., None, :, :]).masked_fill(excluded, inf)
        return _select(d, k_eff)
    if valid is None:
        mean = xp.mean(-2, keepdim=True)
    else:
        w = valid.unsqueeze(-1).to(xp.dtype)
        mean = (xp * w).sum(-2, keepdim=True) / w.sum(-2, keepdim=True).clamp(min=1)
    cq, cp = xq - mean, xp - mean
    approx = torch.baddbmm((cq * cq).sum(-1).unsqueeze(-1) + (cp * cp).sum(-1).unsqueeze(-2),
                           cq, cp.transpose(-1, -2), alpha=-2.0)
    lead, r, m, dim = xq.shape[:-2], xq.shape[-2], xp.shape[-2], xp.shape[-1]
    excluded = excluded.expand(*lead, r, m)
    approx = approx.masked_fill(excluded, inf)
    q = min(m, k_eff + MARGIN)
    cand = approx.topk(q, dim=-1, largest=False, sorted=False).indices.sort(dim=-1).values
    pc = xp.gather(-2, cand.reshape(*lead, r * q, 1).expand(*lead, r * q, dim)).reshape(*lead, r, q, dim)
    d = ((pc - xq.unsqueeze(-2)) ** 2).sum(-1).masked_fill(excluded.gather(-1, cand), inf)
    vals, sel = _select(d, k_eff)                # candidates in column order: ties to the lower
    return vals, cand.gather(-1, sel)


def _knn_torch_padded(pos, starts_np: np.ndarray, sizes_np: np.ndarray, m: int, k: int,
                      include_self: bool):
    """kNN within each graph (``starts_np``, ``sizes_np``: its rows of ``pos``), padded to
    [B, m, D]."""
    import torch

    from .bruteforce import EXACT_MAX_DIM

    dev = pos.device
    starts = torch.as_tensor(starts_np, device=dev)
    sizes = torch.as_tensor(sizes_np, device=dev)
    b = len(sizes)
    slot = torch.arange(m, device=dev)
    valid = slot[None, :] < sizes[:, None]                       # [B, m]
    gidx = (starts[:, None] + slot[None, :]).clamp(max=pos.shape[0] - 1)
    x = pos[gidx]                                                # [B, m, D]
    k_eff = min(k, m)
    d = None
    if TORCH_FUSED.get(dev.type) and x.shape[-1] <= EXACT_MAX_DIM:
        try:
            d = _fused_distances()(x, valid, include_self)
        except Exception as exc:                                 # no compiler: the eager passes
            import warnings

            warnings.warn(f"kNN: compiled distances unavailable on {dev.type} "
                          f"({type(exc).__name__}: {exc}); eager passes from now on")
            TORCH_FUSED[dev.type] = False
    if d is not None:
        vals, cols = _select(d, k_eff)
    else:
        excluded = ~valid[:, None, :]
        if not include_self:
            excluded = excluded | torch.eye(m, dtype=torch.bool, device=dev)[None]
        vals, cols = _nearest(x, x, excluded, k_eff, valid)
    keep = torch.isfinite(vals) & valid[:, :, None]
    centre = gidx[:, :, None].expand(b, m, k_eff)
    neighbour = starts[:, None, None] + cols
    return neighbour[keep], centre[keep]


def _knn_torch_rows(pos, start: int, n: int, k: int, include_self: bool, block_size: int):
    """kNN inside one large graph, in blocks of rows against all its points."""
    import torch

    pts = pos[start:start + n]
    rows_per_block = max(1, block_size // max(n, 1))
    k_eff = min(k, n if include_self else n - 1)
    src, dst = [], []
    if k_eff <= 0:
        empty = torch.zeros(0, dtype=torch.long, device=pos.device)
        return empty, empty
    cols_all = torch.arange(n, device=pos.device)
    for r0 in range(0, n, rows_per_block):
        r1 = min(n, r0 + rows_per_block)
        rows = torch.arange(r0, r1, device=pos.device)
        excluded = (cols_all[None, :] == rows[:, None]) if not include_self else \
            torch.zeros((1, 1), dtype=torch.bool, device=pos.device)
        _, cols = _nearest(pts[r0:r1][None], pts[None], excluded[None], k_eff)
        src.append((cols[0] + start).reshape(-1))
        dst.append((rows + start).repeat_interleave(k_eff))
    return torch.cat(src), torch.cat(dst)


# -- torch-cluster ----------------------------------------------------------------------------
def _knn_torch_cluster(pos, k: int, batch, include_self: bool):
    import torch
    import torch_cluster

    n = pos.shape[0]
    extra = 0 if include_self else 1
    # torch_cluster.knn(x, y, k): row 0 = index into y (centre), row 1 = index into x
    e = torch_cluster.knn(pos, pos, k + extra, batch, batch)
    centre, neighbour = e[0], e[1]
    d = ((pos[centre] - pos[neighbour]) ** 2).sum(-1)
    if not include_self:
        keep = centre != neighbour
        centre, neighbour, d = centre[keep], neighbour[keep], d[keep]
    # order by (centre, distance, neighbour) and keep at most k per centre
    order = torch.argsort(neighbour, stable=True)
    order = order[torch.argsort(d[order], stable=True)]
    order = order[torch.argsort(centre[order], stable=True)]
    centre, neighbour = centre[order], neighbour[order]
    counts = torch.bincount(centre, minlength=n)
    first = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(centre), device=pos.device) - first[centre]
    keep = rank < k
    return torch.stack([neighbour[keep], centre[keep]])
