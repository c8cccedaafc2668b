r"""EdgeConv (Wang et al., "Dynamic Graph CNN for Learning on Point Clouds", ACM TOG 38 (2019) 146)
on the edges stored in the graph dataset, computed per node.

The operator with a single linear edge map Θ = [Θ₁ | Θ₂] ∈ R^{C_out × 2 C_in}, bias b and a
non-decreasing activation σ (identity, ReLU, …):

.. math::
    x'_i = \max_{j \in \mathcal{N}(i)} \sigma\big(Θ_1 x_i + Θ_2 (x_j - x_i) + b\big)
         = \sigma\big(u_i + \max_{j \in \mathcal{N}(i)} v_j\big),
    \qquad u = (Θ_1 - Θ_2)\,x + b,\quad v = Θ_2\,x .

The first equality is the decomposition W·[x_i, x_j − x_i] = (W₁ − W₂)·x_i + W₂·x_j of docs/design.md#performance-method:
both linear maps run once per node (one [N, C_in] × [C_in, 2 C_out] matmul) instead of once per
edge. The second uses that u_i does not depend on j and that a non-decreasing σ commutes with
max, so it is exact, not an approximation: per edge only a gather of v_j and a running max
remain (no per-edge add, nonlinearity or matmul). A node without incoming edges gets x'_i = 0,
as in PyG's max aggregation. The parameters are stored as the naive Θ, b, so parameter counts
and initialisation equal those of a per-edge ``Linear(2·C_in, C_out)``.

Network (:class:`EdgeConvEncoder`): optional input BatchNorm, then blocks
``h ← ReLU(BN(EdgeConv(h)) + shortcut(h))`` with widths from the config (default 64/128/256),
shortcut = identity or Linear+BN when the width changes; node embedding = last block's output
or the concatenation of all blocks' outputs (``readout``).

Simplifications against DGCNN / ParticleNet: one linear layer per edge map (ParticleNet uses three
per block; stacking blocks gives depth instead), BatchNorm applied per node after the max instead
of per edge before it (equal in eval mode whenever the BN scale is positive, since an increasing
affine map commutes with max).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..registry import register_model
from .base import GraphInputs, GraphModel, Shortcut, readout_width
from .ops import (NeighbourTable, activation, bn_add_relu, compiled, edge_max, neighbour_table,
                  segment_max, with_reverse)


class EdgeConv(nn.Module):
    """EdgeConv with max aggregation, computed per node (module docstring).

    Args:
        in_channels: C_in. out_channels: C_out.
        act: non-decreasing activation applied to the messages (``None`` = identity).

    Input: x [N, C_in], edge_index [2, E] int64 (row 0 source j, row 1 target i), any edge order;
    optionally ``table``, the same edges as a :class:`~gnnu.models.gnn.ops.NeighbourTable`
    (built once per batch and shared by the blocks: the max is then a dense gather, see
    :mod:`gnnu.models.gnn.ops`; without it the table is built here, or the scatter form is used
    for very uneven in-degrees). Output: [N, C_out].
    """

    def __init__(self, in_channels: int, out_channels: int, act: str | None = None):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.lin = nn.Linear(2 * in_channels, out_channels)   # Θ = [Θ₁ | Θ₂], b
        self.act = nn.Identity() if act is None else activation(act)
        self.reset_parameters()

    def reset_parameters(self):
        self.lin.reset_parameters()

    def node_terms(self, x: Tensor) -> Tensor:
        """[u | v] [N, 2 C_out] with u = (Θ₁ − Θ₂)x + b and v = Θ₂x, from one matmul."""
        w1, w2 = self.lin.weight.split(self.in_channels, dim=1)
        bias = torch.cat([self.lin.bias, torch.zeros_like(self.lin.bias)])
        return F.linear(x, torch.cat([w1 - w2, w2], dim=0), bias)

    def forward(self, x: Tensor, edge_index: Tensor, table: NeighbourTable | None = None) -> Tensor:
        n = x.size(0)
        uv = self.node_terms(x)
        if table is None:
            table = neighbour_table(edge_index, n)
        if table is not None:
            return self.act(edge_max(uv, table))
        u, v = uv.split(self.out_channels, dim=1)
        src, dst = edge_index[0], edge_index[1]
        vmax = segment_max(v.index_select(0, src), dst, n)
        has_edges = torch.zeros(n, 1, dtype=torch.bool, device=x.device).index_fill_(0, dst, True)
        return self.act(torch.where(has_edges, u + vmax, torch.zeros_like(u)))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}"


class EdgeConvBlock(nn.Module):
    """``ReLU(BN(EdgeConv(x)) + shortcut(x))`` on a given edge set: [N, C_in] → [N, C_out]."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = EdgeConv(in_channels, out_channels)
        self.norm = nn.BatchNorm1d(out_channels)
        self.shortcut = Shortcut(in_channels, out_channels)

    def forward(self, x: Tensor, edge_index: Tensor, table: NeighbourTable | None = None) -> Tensor:
        proj = self.shortcut.proj
        if isinstance(proj, nn.Sequential):                   # Linear + BatchNorm
            return bn_add_relu(self.conv(x, edge_index, table), self.norm, proj[0](x), proj[1])
        return bn_add_relu(self.conv(x, edge_index, table), self.norm, x, None)


@dataclass(frozen=True)
class EdgeConvParams:
    """``widths``: output width of each block. ``readout``: node embedding = ``last`` block or
    ``concat`` of all blocks. ``input_norm``: BatchNorm on the input node features."""

    widths: tuple[int, ...] = (64, 128, 256)
    readout: Literal["last", "concat"] = "concat"
    input_norm: bool = True

    def __post_init__(self):
        if not self.widths or any(w < 1 for w in self.widths):
            raise ValueError(f"widths: need at least one positive width, got {list(self.widths)}")


class EdgeConvEncoder(nn.Module):
    """EdgeConv blocks on the stored ``edge_index``: x [N, F] → node embeddings [N, out_features]."""

    def __init__(self, in_features: int, params: EdgeConvParams):
        super().__init__()
        self.input_norm = nn.BatchNorm1d(in_features) if params.input_norm else nn.Identity()
        widths = (in_features,) + tuple(params.widths)
        self.blocks = nn.ModuleList(EdgeConvBlock(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.readout = params.readout
        self.out_features = readout_width(params.widths, params.readout)

    def forward(self, inputs: GraphInputs) -> Tensor:
        if inputs.edge_index is None:
            raise ValueError("the edgeconv model needs stored edges (batch.edge_index)")
        edge_index = inputs.edge_index
        # one neighbour table for all blocks (dense max, see ops); where in-degrees are too
        # uneven for one, group the edges by target once instead (7x faster scatter max on CPU)
        table = neighbour_table(edge_index, inputs.x.size(0))
        if table is not None and compiled(inputs.x):
            table = with_reverse(table)           # shared by the blocks' compiled backward
        if table is None:
            edge_index = edge_index[:, torch.argsort(edge_index[1], stable=True)]
        return self.encode(inputs.x, edge_index, table)

    def encode(self, x: Tensor, edge_index: Tensor | None, table: NeighbourTable | None) -> Tensor:
        """The blocks on given edges: ``table`` when given (``edge_index`` is then not read),
        else ``edge_index`` sorted by target. :mod:`gnnu.models.gnn.fast` calls this with its
        fixed-shape tables."""
        h = self.input_norm(x)
        outs = []
        for block in self.blocks:
            h = block(h, edge_index, table)
            outs.append(h)
        return h if self.readout == "last" else torch.cat(outs, dim=1)


@register_model("edgeconv", params=EdgeConvParams)
def edgeconv(config, in_features: int, tasks: dict[str, int],
             regression: tuple[str, ...]) -> GraphModel:
    """EdgeConv network on the dataset's stored edges."""
    return GraphModel(EdgeConvEncoder(in_features, config.params), config, tasks, regression)
