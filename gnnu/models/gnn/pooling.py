"""Global pooling: node embeddings → one feature vector per graph.

For graph g with node set V_g and node features h_i ∈ R^C:

    mean_g = (1/|V_g|) Σ_{i∈V_g} h_i,   max_g = max_{i∈V_g} h_i (per channel),   sum_g = Σ_{i∈V_g} h_i

Several modes are concatenated in the order given: output [B, C · n_modes]. Each is invariant
under any permutation of the nodes within a graph. An empty graph pools to zeros.
Scatter reductions use torch's native ``scatter_reduce`` / ``index_add`` (no torch-scatter): the
same torch scatters PyG's ``global_mean_pool``/``global_max_pool`` run, kept here because they are
the segment reductions the operators' aggregation uses too (one set of exactness tests). On the CPU
all modes come from one compiled pass over the nodes instead
(:func:`~gnnu.models.gnn.ops.segment_pool`): the scatters' max backward was the costliest part of
pooling in a training step (BENCHMARKS.md, "GNN training on the CPU").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .ops import segment_max, segment_mean, segment_pool, segment_sum

_REDUCE = {"mean": segment_mean, "max": segment_max, "sum": segment_sum}


class GlobalPooling(nn.Module):
    """Concatenated global pooling.

    Args:
        modes: any of ``"mean"``, ``"max"``, ``"sum"``, in output order.

    Input: h [N, C], batch [N] (graph index per node, int64), num_graphs B.
    Output: [B, C · len(modes)].
    """

    def __init__(self, modes: tuple[str, ...] = ("mean", "max")):
        super().__init__()
        unknown = [m for m in modes if m not in _REDUCE]
        if unknown or not modes:
            raise ValueError(f"pooling modes must be among {list(_REDUCE)}, got {list(modes)}")
        self.modes = tuple(modes)

    def out_features(self, channels: int) -> int:
        """Width of the pooled vector for ``channels`` node channels."""
        return channels * len(self.modes)

    def forward(self, h: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        pooled = segment_pool(h, batch, num_graphs)      # one compiled pass on the CPU
        if pooled is not None:
            return torch.cat([pooled[m] for m in self.modes], dim=-1)
        return torch.cat([_REDUCE[m](h, batch, num_graphs) for m in self.modes], dim=-1)

    def extra_repr(self) -> str:
        return f"modes={self.modes}"
