r"""Dynamic EdgeConv (DGCNN: Wang et al., ACM TOG 38 (2019) 146; ParticleNet: Qu & Gouskos,
Phys. Rev. D 101 (2020) 056019): EdgeConv on a k-nearest-neighbour graph rebuilt in every block.

Block b computes its graph from its own input h^{(b)} (the first block from the node positions
``pos`` or from the input features, per ``first_knn``):

.. math::
    \mathcal{N}_b(i) = \mathrm{kNN}_k\big(h^{(b)}_i;\ \{h^{(b)}_j : j \in \text{graph}(i)\}\big),
    \qquad h^{(b+1)} = \mathrm{ReLU}\big(\mathrm{BN}(\mathrm{EdgeConv}(h^{(b)}, \mathcal{N}_b))
                       + \mathrm{shortcut}(h^{(b)})\big)

with Euclidean distance, neighbours only within the node's own graph, and i ∈ N_b(i) only when
``include_self`` (DGCNN and PyG include it, ParticleNet's reference code does not). EdgeConv is the
per-node form of :mod:`gnnu.models.gnn.edgeconv`. The kNN comes from :func:`gnnu.graph.knn.knn`
(PyG 2.8's ``DynamicEdgeConv`` needs pyg-lib, which is not available); the neighbour choice
carries no gradient, as in DGCNN.

Simplifications: as in :mod:`gnnu.models.gnn.edgeconv` (one linear edge map per block, BatchNorm
after the max); ParticleNet's final fusion layer is replaced by the ``concat`` readout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ..registry import register_model
from .base import GraphInputs, GraphModel, readout_width
from .edgeconv import EdgeConvBlock
from .ops import KNNGraph


class DynamicEdgeConv(nn.Module):
    """EdgeConv block on the kNN graph of ``knn_input`` (default: its input x).

    Args:
        in_channels, out_channels: C_in, C_out. k: neighbours. include_self: i ∈ N(i).

    Input: x [N, C_in], batch [N], optional knn_input [N, D]. Output: [N, C_out].
    """

    def __init__(self, in_channels: int, out_channels: int, k: int = 16, include_self: bool = False):
        super().__init__()
        self.knn = KNNGraph(k, include_self)
        self.block = EdgeConvBlock(in_channels, out_channels)

    def graph(self, x: Tensor, batch: Tensor | None) -> Tensor:
        """The block's neighbour graph: edge_index [2, N·k] (row 0 neighbour j, row 1 centre i)."""
        return self.knn(x, batch)

    def forward(self, x: Tensor, batch: Tensor | None, knn_input: Tensor | None = None) -> Tensor:
        edge_index = self.graph(x if knn_input is None else knn_input, batch)
        return self.block(x, edge_index)


@dataclass(frozen=True)
class DynEdgeConvParams:
    """``k``: neighbours per block. ``widths``: block widths. ``include_self``: a node is its own
    neighbour. ``first_knn``: the first block's graph from ``pos`` or from the input
    ``features``. ``readout``: ``last`` block or ``concat`` of all. ``input_norm``: BatchNorm
    on the input node features."""

    k: int = 16
    widths: tuple[int, ...] = (64, 128, 256)
    include_self: bool = False
    first_knn: Literal["pos", "features"] = "pos"
    readout: Literal["last", "concat"] = "concat"
    input_norm: bool = True

    def __post_init__(self):
        if self.k < 1:
            raise ValueError(f"k: must be positive, got {self.k}")
        if not self.widths or any(w < 1 for w in self.widths):
            raise ValueError(f"widths: need at least one positive width, got {list(self.widths)}")


class DynEdgeConvEncoder(nn.Module):
    """Dynamic EdgeConv blocks: x [N, F] (and pos [N, D]) → node embeddings [N, out_features]."""

    def __init__(self, in_features: int, params: DynEdgeConvParams):
        super().__init__()
        self.input_norm = nn.BatchNorm1d(in_features) if params.input_norm else nn.Identity()
        widths = (in_features,) + tuple(params.widths)
        self.blocks = nn.ModuleList(DynamicEdgeConv(a, b, params.k, params.include_self)
                                    for a, b in zip(widths[:-1], widths[1:]))
        self.first_knn = params.first_knn
        self.readout = params.readout
        self.out_features = readout_width(params.widths, params.readout)

    def forward(self, inputs: GraphInputs) -> Tensor:
        if self.first_knn == "pos" and inputs.pos is None:
            raise ValueError("the dynedgeconv model with first_knn=pos needs node positions (batch.pos)")
        h = self.input_norm(inputs.x)
        outs = []
        for i, block in enumerate(self.blocks):
            knn_input = inputs.pos if i == 0 and self.first_knn == "pos" else None
            h = block(h, inputs.batch, knn_input)
            outs.append(h)
        return h if self.readout == "last" else torch.cat(outs, dim=1)


@register_model("dynedgeconv", params=DynEdgeConvParams)
def dynedgeconv(config, in_features: int, tasks: dict[str, int],
                regression: tuple[str, ...]) -> GraphModel:
    """Dynamic EdgeConv network (kNN in feature space rebuilt each block)."""
    return GraphModel(DynEdgeConvEncoder(in_features, config.params), config, tasks, regression)
