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

from typing import NamedTuple

import torch
from torch import Tensor, nn

from ...graph.knn import knn


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
    has fewer than K; ``has_edges`` [N, 1] bool: targets with at least one incoming edge."""

    index: Tensor
    has_edges: Tensor


def neighbour_table(edge_index: Tensor, n: int, max_padding: float = 2.0) -> NeighbourTable | None:
    """The edges ``edge_index`` [2, E] (row 0 source, row 1 target, any order) of a graph of
    ``n`` nodes as a :class:`NeighbourTable`; None when the table would hold more than
    ``max_padding`` × E slots (very uneven in-degrees: use the scatter form instead) or there
    are no edges. Slots keep the edges' order within each target."""
    src, dst = edge_index[0], edge_index[1]
    if dst.numel() == 0 or n == 0:
        return None
    if not bool((dst[1:] >= dst[:-1]).all()):
        order = torch.argsort(dst, stable=True)
        src, dst = src[order], dst[order]
    degree = torch.bincount(dst, minlength=n)
    k = int(degree.max())
    if n * k > max_padding * dst.numel():
        return None
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


def gather_max(v: Tensor, table: NeighbourTable) -> Tensor:
    """Per target the channel-wise maximum of ``v`` [N, C] over its table neighbours → [N, C];
    −∞ for targets without edges (mask them with ``table.has_edges``)."""
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
