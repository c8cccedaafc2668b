"""Building blocks shared by the GNN operators: segment reductions, kNN graph, activations.

Segment reductions group rows of ``src`` [M, C] by ``index`` [M] (int64, values in [0, size))
into [size, C]; they use torch's native ``scatter_reduce_`` / ``index_add_`` so neither
torch-scatter nor pyg-lib is needed, on CPU or CUDA. An empty segment reduces to zeros.

:class:`KNNGraph` wraps :func:`gnnu.graph.knn.knn` as a module, so the dynamic layers share one
kNN call site and cost accounting (:mod:`gnnu.models.cost`) can tell graph building apart from
the model's arithmetic.
"""

from __future__ import annotations

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
