"""Model cost: parameter count and floating-point operations per event (for ``gnnu-compare``).

:func:`flops_per_event` runs one inference forward pass (eval mode, no gradient) under
:class:`torch.utils.flop_counter.FlopCounterMode` and divides by the number of events in the
batch. Convention, the same for GNNs and CNNs:

- matrix products and convolutions: 2 FLOPs per multiply-add (FlopCounterMode's own formulas);
- segment reductions that FlopCounterMode does not know (``scatter_reduce`` max/mean/sum,
  ``scatter_add``, ``index_add``: the GNNs' neighbour and graph pooling; ``amax`` / ``max`` over
  a dimension: the neighbour-table max, padding slots included): 1 FLOP per element reduced (an
  added formula);
- not counted, as is usual for CNNs: elementwise operations (activations, BatchNorm, residual
  additions, GravNet's distance weights exp(−λd²)), gathers and copies;
- kNN graph construction (the dynamic layers' :class:`~gnnu.models.gnn.ops.KNNGraph` calls) is
  excluded: its cost depends on the backend (k-d tree, brute force, GPU kernel), and docs/design.md#performance-method's
  throughput anchors exclude it too.

So a GNN's count scales linearly with its nodes and edges, a CNN's with its pixels.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .gnn.ops import KNNGraph


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (elements) of ``model``; only those with ``requires_grad`` if asked."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _reduced_elements(self_shape, dim, index_shape, src_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of a scatter/index reduction: one per element of the source."""
    return math.prod(src_shape)


_aten = torch.ops.aten
#: Formulas added to FlopCounterMode's registry (in-place and out-of-place forms).
REDUCTION_FLOPS = {op: _reduced_elements for op in (
    _aten.scatter_reduce, _aten.scatter_reduce_, _aten.scatter_add, _aten.scatter_add_,
    _aten.index_add, _aten.index_add_)}


def _dense_reduced_elements(self_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of a max over a dimension (neighbour-table aggregation): one per input element."""
    return math.prod(self_shape)


REDUCTION_FLOPS.update({_aten.amax: _dense_reduced_elements, _aten.max.dim: _dense_reduced_elements})


def _num_events(batch) -> int:
    if getattr(batch, "num_graphs", None) is not None:
        return int(batch.num_graphs)
    if isinstance(batch, torch.Tensor):
        return int(batch.size(0))
    if isinstance(batch, dict):
        return _num_events(next(iter(batch.values())))
    if isinstance(batch, (list, tuple)):
        return _num_events(batch[0])
    raise TypeError(f"cannot tell the number of events of a {type(batch).__name__}; "
                    f"pass num_events")


def flops_per_event(model: nn.Module, example_batch, num_events: int | None = None) -> float:
    """FLOPs of one inference forward pass per event (module docstring for the convention).

    ``example_batch``: what ``model`` takes (a PyG Batch, an image tensor [B, …], or a
    tuple/dict of them); ``num_events`` defaults to its ``num_graphs`` or leading dimension.
    The model's train/eval mode is restored afterwards.
    """
    n = _num_events(example_batch) if num_events is None else num_events
    if n < 1:
        raise ValueError("flops_per_event needs a batch with at least one event")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=REDUCTION_FLOPS) as fc:
            model(example_batch)
    finally:
        model.train(was_training)
    counts = fc.get_flop_counts()
    root = type(model).__name__
    knn = sum(sum(counts.get(f"{root}.{name}", {}).values())
              for name, m in model.named_modules() if isinstance(m, KNNGraph))
    return (fc.get_total_flops() - knn) / n
