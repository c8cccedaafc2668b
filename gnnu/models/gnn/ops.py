"""Building blocks shared by the GNN operators: segment reductions, neighbour tables, kNN graph,
activations.

Segment reductions group rows of ``src`` [M, C] by ``index`` [M] (int64, values in [0, size))
into [size, C]; they use torch's native ``scatter_reduce_`` / ``index_add_`` so neither
torch-scatter nor pyg-lib is needed, on CPU or CUDA. An empty segment reduces to zeros.

A *neighbour table* (:func:`neighbour_table`) is the same edge set as a padded [N, K] array of
source nodes per target (K = the largest in-degree; empty slots point at an extra −∞ row), built
once per batch. :func:`gather_max` takes the per-target maximum through it as a dense gather and
a max over K — no scatter — and its backward sends each (node, channel) gradient only to the
neighbour that gave the maximum: N·C writes instead of E·C. On kNN graphs (in-degree k almost
everywhere) this made an EdgeConv aggregation's forward + backward ~4× faster than the scatter
form on the CPU (tools/bench_models.py, BENCHMARKS.md). At exact ties the gradient goes to the
first tied slot (a valid subgradient; the scatter form splits it among the ties).

:class:`KNNGraph` wraps :func:`gnnu.graph.knn.knn` as a module, so the dynamic layers share one
kNN call site and cost accounting (:mod:`gnnu.models.cost`) can tell graph building apart from
the model's arithmetic.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

from ...graph.knn import knn
from . import kernels


def segment_sum(src: Tensor, index: Tensor, size: int) -> Tensor:
    """Σ of the rows of ``src`` [M, C] per segment → [size, C]."""
    return src.new_zeros((size,) + src.shape[1:]).index_add_(0, index, src)


def segment_mean(src: Tensor, index: Tensor, size: int) -> Tensor:
    """Mean of the rows of ``src`` [M, C] per segment → [size, C] (0 for empty segments)."""
    ones = torch.ones(index.shape, dtype=torch.float32, device=src.device)
    count = ones.new_zeros(size).index_add_(0, index, ones).clamp_(min=1)   # exact in float32
    mean = segment_sum(src, index, size) / count.view((-1,) + (1,) * (src.dim() - 1))
    return mean.to(src.dtype)


def segment_max(src: Tensor, index: Tensor, size: int) -> Tensor:
    """Per-channel maximum of the rows of ``src`` [M, C] per segment → [size, C] (0 if empty)."""
    idx = index.view((-1,) + (1,) * (src.dim() - 1)).expand_as(src)
    return src.new_zeros((size,) + src.shape[1:]).scatter_reduce_(
        0, idx, src, reduce="amax", include_self=False)


class NeighbourTable(NamedTuple):
    """``index`` [N, K] int64: source node of each target's k-th incoming edge, N where the target
    has fewer than K; ``has_edges`` [N, 1] bool: targets with at least one incoming edge;
    ``reverse``: the edges grouped by source, when computed (:func:`with_reverse`)."""

    index: Tensor
    has_edges: Tensor
    reverse: tuple[Tensor, Tensor] | None = None


def neighbour_table(edge_index: Tensor, n: int, max_padding: float = 2.0,
                    width: int | None = None) -> NeighbourTable | None:
    """The edges ``edge_index`` [2, E] (row 0 source, row 1 target, any order) of a graph of
    ``n`` nodes as a :class:`NeighbourTable`; None when the table would hold more than
    ``max_padding`` × E slots (very uneven in-degrees: use the scatter form instead) or there
    are no edges. Slots keep the edges' order within each target. ``width``: a fixed K (the
    padded inference path of :mod:`gnnu.models.gnn.fast` wants one shape per batch): the table
    is always built, a ValueError if a target has more edges."""
    src, dst = edge_index[0], edge_index[1]
    if width is None and (dst.numel() == 0 or n == 0):
        return None
    if dst.numel() and not bool((dst[1:] >= dst[:-1]).all()):
        order = torch.argsort(dst, stable=True)
        src, dst = src[order], dst[order]
    degree = torch.bincount(dst, minlength=n)
    k = int(degree.max()) if dst.numel() else 0
    if width is not None:
        if k > width:
            raise ValueError(f"a node has {k} incoming edges, more than the table's width {width}")
        k = width
    elif n * k > max_padding * dst.numel():
        return None
    if n * k == dst.numel():                      # every node k edges (a kNN graph): a reshape
        return NeighbourTable(src.reshape(n, k), (degree > 0).unsqueeze(1))
    first = torch.cumsum(degree, 0) - degree
    slot = torch.arange(dst.numel(), device=dst.device) - first[dst]
    index = torch.full((n, k), n, dtype=torch.long, device=dst.device)
    index[dst, slot] = src
    return NeighbourTable(index, (degree > 0).unsqueeze(1))


class _GatherMax(torch.autograd.Function):
    """max over the table's slots of v[index]; backward to the arg-max neighbour only."""

    @staticmethod
    def forward(ctx, v: Tensor, index: Tensor) -> Tensor:
        padded = torch.cat([v, v.new_full((1, v.size(1)), float("-inf"))])
        out, arg = padded.index_select(0, index.view(-1)).view(*index.shape, -1).max(dim=1)
        ctx.save_for_backward(index.gather(1, arg))
        ctx.n = v.size(0)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        (source,) = ctx.saved_tensors
        g = grad.new_zeros(ctx.n + 1, grad.size(1)).scatter_add_(0, source, grad)
        return g[:-1], None


class _EdgeMaxCompiled(torch.autograd.Function):
    """u + max over the table of v (0 where a target has no edge), compiled; see edge_max."""

    @staticmethod
    def forward(ctx, uv: Tensor, index: Tensor, rptr: Tensor, rtarget: Tensor) -> Tensor:
        uv = uv.detach().contiguous()
        c = uv.size(1) // 2
        out = uv.new_empty(index.size(0), c)
        arg = torch.empty((index.size(0), c), dtype=torch.int32)
        kernels.edge_max_forward(uv.numpy(), index.contiguous().numpy(), out.numpy(), arg.numpy())
        ctx.save_for_backward(arg, rptr, rtarget)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        arg, rptr, rtarget = ctx.saved_tensors
        guv = grad.new_empty(grad.size(0), 2 * grad.size(1))
        kernels.edge_max_backward(grad.contiguous().numpy(), arg.numpy(), rptr.numpy(),
                                  rtarget.numpy(), guv.numpy())
        return guv, None, None, None


def with_reverse(table: NeighbourTable) -> NeighbourTable:
    """The table with its edges also grouped by source (``reverse``: ptr [N + 1], target [E]),
    which the compiled backward of :func:`edge_max` reads; compute it once for layers that share
    a table."""
    if table.reverse is not None:
        return table
    ptr, target, _ = kernels.reverse_table(table.index.contiguous().numpy(), table.index.size(0))
    return table._replace(reverse=(torch.from_numpy(ptr), torch.from_numpy(target)))


def edge_max(uv: Tensor, table: NeighbourTable) -> Tensor:
    """EdgeConv's aggregation ``u_i + max_{j∈N(i)} v_j`` [N, C] over the table's neighbours, with
    ``uv`` = [u | v] [N, 2C] (one matrix product gives both); 0 for targets without edges (PyG's
    max aggregation of an empty set). Compiled on the CPU (one pass, no [N, K, C] temporary, no
    copy of the halves), :func:`gather_max` elsewhere."""
    if compiled(uv):
        return _EdgeMaxCompiled.apply(uv, table.index, *with_reverse(table).reverse)
    u, v = uv.chunk(2, dim=1)
    return torch.where(table.has_edges, u + gather_max(v, table), torch.zeros_like(u))


class _GravNetAggregate(torch.autograd.Function):
    """GravNet's distance-weighted mean and max over a neighbour table, compiled (see
    :func:`gravnet_aggregate`)."""

    @staticmethod
    def forward(ctx, s: Tensor, f: Tensor, index: Tensor, scale: float):
        s, f = s.detach().contiguous(), f.detach().contiguous()
        index = index.contiguous()
        n, k = index.shape
        mean, mx = f.new_empty(n, f.size(1)), f.new_empty(n, f.size(1))
        arg = torch.empty((n, f.size(1)), dtype=torch.int32)
        w, inv_count = s.new_empty(n, k), s.new_empty(n)
        sc = np.asarray(scale, dtype=s.numpy().dtype)[()]
        kernels.gravnet_forward(s.numpy(), f.numpy(), index.numpy(), sc, mean.numpy(), mx.numpy(),
                                arg.numpy(), w.numpy(), inv_count.numpy())
        ctx.save_for_backward(s, f, index, w, inv_count, arg)
        ctx.scale = sc
        return mean, mx

    @staticmethod
    def backward(ctx, gmean: Tensor, gmx: Tensor):
        s, f, index, w, inv_count, arg = ctx.saved_tensors
        n = index.size(0)
        ptr, target, slot = kernels.reverse_table(index.numpy(), n)
        coef, ds, df = torch.empty_like(w), torch.empty_like(s), torch.empty_like(f)
        kernels.gravnet_backward(s.numpy(), f.numpy(), index.numpy(), ctx.scale, w.numpy(),
                                 inv_count.numpy(), arg.numpy(), gmean.contiguous().numpy(),
                                 gmx.contiguous().numpy(), ptr, target, slot, coef.numpy(),
                                 ds.numpy(), df.numpy())
        return ds, df, None, None


def gravnet_aggregate(s: Tensor, f: Tensor, table: NeighbourTable, scale: float) -> tuple[Tensor, Tensor]:
    """GravNet's messages ``w_ij f_j`` with ``w_ij = exp(−scale ‖s_i − s_j‖²)``, averaged and
    maxed over each node's table neighbours: (mean, max), each [N, F]; zeros for a node without
    neighbours. s [N, S] learnt coordinates, f [N, F] features. Compiled on the CPU (no per-edge
    temporaries, one pass each way), per-edge torch operations elsewhere."""
    if compiled(f) and s.dtype == f.dtype:
        return _GravNetAggregate.apply(s, f, table.index, float(scale))
    n = f.size(0)
    valid = table.index < n                                        # [N, K]
    idx = table.index.clamp(max=n - 1)
    d2 = (s[idx] - s.unsqueeze(1)).pow(2).sum(-1)                 # [N, K]
    msg = f[idx] * torch.exp(-scale * d2).unsqueeze(-1)           # [N, K, F]
    count = valid.sum(1, keepdim=True)
    mean = (msg * valid.unsqueeze(-1)).sum(1) / count.clamp(min=1)
    mx = msg.masked_fill(~valid.unsqueeze(-1), float("-inf")).amax(1)
    mx = torch.where(count > 0, mx, torch.zeros_like(mx))
    return mean, mx


class _SegmentPool(torch.autograd.Function):
    """Sum, mean and max per run ``ptr`` of rows, one compiled pass each way."""

    @staticmethod
    def forward(ctx, h: Tensor, ptr: Tensor):
        h = h.detach().contiguous()
        nb, c = ptr.numel() - 1, h.size(1)
        total, mean, mx = (h.new_empty(nb, c) for _ in range(3))
        arg = torch.empty((nb, c), dtype=torch.int32)
        kernels.segment_pool_forward(h.numpy(), ptr.numpy(), total.numpy(), mean.numpy(),
                                     mx.numpy(), arg.numpy())
        ctx.save_for_backward(ptr, arg)
        ctx.n = h.size(0)
        return total, mean, mx

    @staticmethod
    def backward(ctx, gsum: Tensor, gmean: Tensor, gmx: Tensor):
        ptr, arg = ctx.saved_tensors
        gh = gsum.new_empty(ctx.n, gsum.size(1))
        kernels.segment_pool_backward(ptr.numpy(), gsum.contiguous().numpy(),
                                      gmean.contiguous().numpy(), gmx.contiguous().numpy(),
                                      arg.numpy(), gh.numpy())
        return gh, None


def segment_pool(h: Tensor, batch: Tensor, size: int) -> dict[str, Tensor] | None:
    """{"sum", "mean", "max"} of the rows of h [N, C] per graph of a sorted ``batch`` [N] (each
    [size, C]; zeros for an empty graph) in one compiled pass, or None where the compiled kernels
    do not apply (the caller then uses :func:`segment_sum` and friends)."""
    if not (compiled(h) and h.dim() == 2 and batch.numel() == h.size(0)):
        return None
    if batch.numel() and not bool((batch[1:] >= batch[:-1]).all()):
        return None
    ptr = torch.searchsorted(batch, torch.arange(size + 1, device=batch.device))
    total, mean, mx = _SegmentPool.apply(h, ptr)
    return {"sum": total, "mean": mean, "max": mx}


def _bn_affine(bn: nn.BatchNorm1d, moments: np.ndarray | None, n: int):
    """(mean, rstd, γ, β) as float64 numpy arrays: the batch's (from Σx, Σx²) in training mode,
    the running statistics otherwise."""
    c = bn.num_features
    gamma = bn.weight.detach().double().numpy() if bn.weight is not None else np.ones(c)
    beta = bn.bias.detach().double().numpy() if bn.bias is not None else np.zeros(c)
    if moments is None:
        mean = bn.running_mean.double().numpy()
        var = bn.running_var.double().numpy()
    else:
        mean = moments[0] / n
        var = np.maximum(moments[1] / n - mean * mean, 0.0)
    return mean, 1.0 / np.sqrt(var + bn.eps), gamma, beta


def _update_running(bn: nn.BatchNorm1d, mean: np.ndarray, var: np.ndarray, n: int) -> None:
    """BatchNorm's running-statistics update (momentum, or the cumulative mean when None)."""
    bn.num_batches_tracked.add_(1)
    m = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
    unbiased = var * n / max(n - 1, 1)
    bn.running_mean.mul_(1 - m).add_(torch.from_numpy(mean).to(bn.running_mean.dtype), alpha=m)
    bn.running_var.mul_(1 - m).add_(torch.from_numpy(unbiased).to(bn.running_var.dtype), alpha=m)


class _BNAddReLU(torch.autograd.Function):
    """relu(BN_a(a) + BN_b(b)) (BN_b None: the identity), compiled; see :func:`bn_add_relu`."""

    @staticmethod
    def forward(ctx, a, b, ga, ba, gb, bb, bn_a, bn_b):
        a, b = a.detach().contiguous(), b.detach().contiguous()
        n, c = a.shape
        dtype = a.numpy().dtype
        train = bn_a.training
        stats = []
        for bn, x in ((bn_a, a), (bn_b, b)):
            if bn is None:
                stats.append(None)
                continue
            moments = None
            if train:
                moments = np.empty((2, c))
                kernels.channel_moments(x.numpy(), moments)
            mean, rstd, gamma, beta = _bn_affine(bn, moments, n)
            if train:
                _update_running(bn, mean, 1.0 / rstd ** 2 - bn.eps, n)
            stats.append((mean, rstd, gamma, beta))
        coef = []                                  # BN(x) = x·scale + shift per channel
        for st in stats:
            if st is None:
                coef.append((np.ones(c, dtype), np.zeros(c, dtype)))
            else:
                mean, rstd, gamma, beta = st
                scale = gamma * rstd
                coef.append((scale.astype(dtype), (beta - mean * scale).astype(dtype)))
        y = torch.empty_like(a)
        kernels.scale_add_relu(a.numpy(), *coef[0], b.numpy(), *coef[1], y.numpy())
        ctx.save_for_backward(a, b, y)
        ctx.stats, ctx.train = stats, train
        return y

    @staticmethod
    def backward(ctx, gy):
        a, b, y = ctx.saved_tensors
        n, c = a.shape
        gy = gy.contiguous()
        dtype = a.numpy().dtype
        sums = np.empty((3, c))
        kernels.relu_grad_moments(gy.numpy(), y.numpy(), a.numpy(), b.numpy(), sums)
        sg = sums[0]
        coefs, param_grads = [], []
        for st, sgx in zip(ctx.stats, (sums[1], sums[2])):
            if st is None:                                   # identity shortcut
                coefs.append((np.ones(c, dtype), np.zeros((2, c), dtype)))
                param_grads += [None, None]
                continue
            mean, rstd, gamma, _ = st
            s_ghat = rstd * (sgx - mean * sg)                    # Σ g·x̂
            k = gamma * rstd
            lin = np.zeros((2, c))
            if ctx.train:                                        # batch statistics
                lin[1] = -gamma * rstd * rstd * s_ghat / n
                lin[0] = -k * sg / n - lin[1] * mean
            coefs.append((k.astype(dtype), lin.astype(dtype)))
            param_grads += [torch.from_numpy(s_ghat).to(a.dtype),
                            torch.from_numpy(sg.copy()).to(a.dtype)]
        da, db = torch.empty_like(a), torch.empty_like(b)
        kernels.bn_relu_backward(gy.numpy(), y.numpy(), a.numpy(), *coefs[0], b.numpy(), *coefs[1],
                                 da.numpy(), db.numpy())
        ga, ba, gb, bb = param_grads
        return da, db, ga, ba, gb, bb, None, None


def bn_add_relu(a: Tensor, bn_a: nn.BatchNorm1d, b: Tensor, bn_b: nn.BatchNorm1d | None) -> Tensor:
    """``relu(bn_a(a) + (bn_b(b) if bn_b else b))`` for a, b [N, C]: a residual block's closing
    BatchNorms, sum and ReLU. On the CPU (float32/64) in compiled passes — the statistics, one
    pass writing y, and backward one reduction and one pass writing both input gradients, where
    torch makes about ten — with BatchNorm's semantics (batch statistics and the running-statistics
    update in training mode, running statistics in eval mode); elsewhere the modules themselves."""
    plain = (a.dim() == 2 and a.shape == b.shape and compiled(a) and b.dtype == a.dtype
             and (bn_b is None or bn_b.training == bn_a.training)
             and all(bn is None or (type(bn) is nn.BatchNorm1d and bn.track_running_stats)
                     for bn in (bn_a, bn_b))
             and not (bn_a.training and a.size(0) < 2))
    if not plain:
        return torch.relu(bn_a(a) + (b if bn_b is None else bn_b(b)))
    params = [p for bn in (bn_a, bn_b) for p in ((bn.weight, bn.bias) if bn is not None else (None, None))]
    return _BNAddReLU.apply(a, b, *params, bn_a, bn_b)


#: Switch for the compiled CPU kernels (:func:`compiled_kernels`); on by default.
_KERNELS = {"numba": True}


@contextmanager
def compiled_kernels(enabled: bool):
    """Within the block, use (or not) the compiled CPU kernels; tests and benchmarks compare the
    two paths with it. Tracing, scripting, ``torch.compile`` and dispatch modes (FLOP counting,
    export) always take the torch path, which they can see."""
    before = _KERNELS["numba"]
    _KERNELS["numba"] = enabled
    try:
        yield
    finally:
        _KERNELS["numba"] = before


def compiled(t: Tensor) -> bool:
    """Whether ``t`` goes to the compiled CPU kernels: float32/64 on the CPU, kernels enabled,
    not inside tracing, ``torch.compile`` or a dispatch mode."""
    return (_KERNELS["numba"] and t.device.type == "cpu"
            and t.dtype in (torch.float32, torch.float64)
            and not torch.jit.is_tracing() and not torch.jit.is_scripting()
            and not torch.compiler.is_compiling() and not torch.compiler.is_exporting()
            and _get_current_dispatch_mode() is None)


def gather_max(v: Tensor, table: NeighbourTable) -> Tensor:
    """Per target the channel-wise maximum of ``v`` [N, C] over its table neighbours → [N, C];
    −∞ for targets without edges (mask them with ``table.has_edges``): a dense gather + max (the
    compiled CPU form is :func:`edge_max`'s)."""
    if torch.is_grad_enabled() and v.requires_grad:
        return _GatherMax.apply(v, table.index)
    padded = torch.cat([v, v.new_full((1, v.size(1)), float("-inf"))])
    return padded.index_select(0, table.index.view(-1)).view(*table.index.shape, -1).amax(dim=1)


#: Activations by config name. Every one is non-decreasing, which
#: :class:`~gnnu.models.gnn.edgeconv.EdgeConv` relies on (σ commutes with max).
ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "tanh": nn.Tanh}


def activation(name: str) -> nn.Module:
    """A fresh activation module by config name (``relu``, ``leaky_relu``, ``elu``, ``tanh``)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}' (known: {', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[name]()


class KNNGraph(nn.Module):
    """k-nearest-neighbour graph of points, within each graph of a batch.

    Args:
        k: neighbours per point (fewer where a graph has fewer points).
        include_self: whether a point is its own neighbour (DGCNN and PyG: yes; ParticleNet's
            and GravNet's reference code: no).

    Input: pos [N, D] (half precision is compared in float32; no gradient flows through the
    choice of neighbours),
    batch [N] graph index per point (sorted) or None.
    Output: edge_index [2, E] int64, row 0 = neighbour j (source), row 1 = centre i (target),
    on the device of ``pos``; Euclidean distance in the D-dimensional space.
    """

    def __init__(self, k: int, include_self: bool = False):
        super().__init__()
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        self.k = k
        self.include_self = include_self

    def forward(self, pos: Tensor, batch: Tensor | None) -> Tensor:
        pos = pos.detach()
        if pos.dtype in (torch.float16, torch.bfloat16):   # AMP: choose neighbours in float32
            pos = pos.float()
        edge_index = knn(pos, self.k, batch=batch, include_self=self.include_self)
        return edge_index.to(device=pos.device, dtype=torch.long)

    def extra_repr(self) -> str:
        return f"k={self.k}, include_self={self.include_self}"
