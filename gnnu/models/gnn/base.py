"""What every GNN model shares: encoder → global pooling → multi-task heads.

An encoder maps the node features of a batch of graphs to node embeddings [N, C]
(``encoder.out_features`` = C); :class:`GraphModel` pools them per graph
(:class:`~gnnu.models.gnn.pooling.GlobalPooling`) and applies the heads
(:class:`~gnnu.models.heads.MultiTaskHead`). Messages never cross graph boundaries: every
operator only combines a node with neighbours of its own graph, and the only per-graph
reductions are indexed by the batch vector.

Input of :meth:`GraphModel.forward`: a ``torch_geometric.data.Batch`` (or a single ``Data``)
with ``x`` [N, F] float, ``pos`` [N, D] float (cm; needed by models that build graphs on
positions), ``edge_index`` [2, E] (row 0 source j, row 1 target i; needed by models on stored
edges), ``batch`` [N] graph index per node. Output: dict of logits [B, C] and regression values
[B] (:mod:`gnnu.models.heads`).

Note: BatchNorm layers normalise over all nodes of a batch in training mode, so only in eval
mode is each graph's output independent of the other graphs in its batch.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..heads import MultiTaskHead
from .pooling import GlobalPooling


class GraphInputs(NamedTuple):
    """The tensors a GNN reads from a batch (``pos`` / ``edge_index`` may be None)."""

    x: Tensor
    pos: Tensor | None
    edge_index: Tensor | None
    batch: Tensor
    num_graphs: int


def unpack(data) -> GraphInputs:
    """Read x, pos, edge_index (int64), batch and the number of graphs from a PyG Batch or Data."""
    x = data.x
    if x is None or x.dim() != 2:
        raise ValueError("a graph batch needs node features x of shape [N, F]")
    batch = getattr(data, "batch", None)
    if batch is None:
        batch, num_graphs = torch.zeros(x.size(0), dtype=torch.long, device=x.device), 1
    else:
        num_graphs = int(data.num_graphs)
    edge_index = getattr(data, "edge_index", None)
    if edge_index is not None:
        edge_index = edge_index.long()
    return GraphInputs(x, getattr(data, "pos", None), edge_index, batch.long(), num_graphs)


class Shortcut(nn.Module):
    """Residual shortcut: identity when widths match, else a bias-free linear map and BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.proj = (nn.Identity() if in_channels == out_channels else
                     nn.Sequential(nn.Linear(in_channels, out_channels, bias=False),
                                   nn.BatchNorm1d(out_channels)))

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


def readout_width(widths: tuple[int, ...], readout: str) -> int:
    """Node-embedding width of an encoder: last block's width, or the sum for ``concat``."""
    return widths[-1] if readout == "last" else sum(widths)


class GraphModel(nn.Module):
    """Encoder, global pooling and multi-task heads.

    Args:
        encoder: module ``encoder(inputs: GraphInputs) -> Tensor [N, C]`` with attribute
            ``out_features`` = C.
        config: the :class:`~gnnu.models.registry.ModelConfig` (pooling and heads are read).
        tasks, regression: offered heads (see :func:`gnnu.models.heads.select_heads`).

    Attributes: ``loss_weights`` (head name → weight, for the trainer), ``energy_target``.
    """

    def __init__(self, encoder: nn.Module, config, tasks: dict[str, int],
                 regression: tuple[str, ...]):
        super().__init__()
        self.encoder = encoder
        self.pool = GlobalPooling(config.pooling)
        self.head, self.loss_weights = MultiTaskHead.from_config(
            config.heads, self.pool.out_features(encoder.out_features), tasks, regression)
        self.energy_target = config.heads.energy_target

    def embed(self, data) -> Tensor:
        """Pooled per-graph features [B, C · n_pooling] (input of the heads)."""
        inputs = unpack(data)
        h = self.encoder(inputs)
        return self.pool(h, inputs.batch, inputs.num_graphs)

    def forward(self, data) -> dict[str, Tensor]:
        return self.head(self.embed(data))
