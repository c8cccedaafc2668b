r"""Fast inference for the EdgeConv model, built for a GPU (issue 21; docs/design.md#performance-method).

:class:`FastEdgeConv` runs a trained ``edgeconv`` :class:`~gnnu.models.gnn.base.GraphModel` on
batches of events with the levers of docs/design.md#performance-method, calling the model's own modules (same weights,
nothing copied):

1. **Graph building on the device** (``graphs="knn"``): every node receives edges from its ``k``
   nearest nodes of its own event and view (``per_view``; else of its event) in ``pos``, computed
   by the torch kNN backend on the batch's device (:func:`gnnu.graph.knn.knn`) — the graph of the
   default ``knn16`` configs, without reading the stored ``edge_index``. ``graphs="stored"``
   reads the stored edges instead. ``knn_dtype`` (default float32) is the precision of the
   distances; float64 reproduces ``gnnu-build``'s choice at exact ties (its numba backend
   compares float64 distances of the stored float32 positions), float32 may pick another point
   among points whose distances agree to float32 rounding.
2. **Node-budget batching, padded**: a batch is cut into packs of whole events, at most
   ``node_budget`` nodes and ``graph_budget`` events each, and every pack is padded to exactly
   that size (padding nodes: zero features, no edges, pooled into one extra graph that is
   dropped). Every pack has one shape, so a compiled pack never recompiles. Budgets left as
   None are set by the first batch (its nodes × 1.25 rounded up to 4 096, its events).
3. **A fixed-width neighbour table** [nodes, K] instead of an edge list (K = k for kNN graphs,
   the largest in-degree rounded up to 8 for stored ones; empty slots point at a −∞ row): with
   EdgeConv's per-node decomposition (:mod:`~gnnu.models.gnn.edgeconv`: one matrix product per
   node, u_i + max_j v_j per edge) what is left per edge is a gather and a max, which
   ``torch.compile`` fuses into one pass reading v in place (no [nodes, K, C] temporary).
4. **bf16** (``precision="bf16"``): autocast for the encoder; node embeddings are pooled and the
   heads run in float32.
5. **torch.compile** (``compile=True``) of encoder, pooling and heads on the padded shape.

Equivalence: in eval mode every event's output depends on its own nodes only; padding nodes are
nobody's neighbour; EdgeConv's max ignores the order and repetition of neighbours; so the outputs
equal ``model(batch)``'s whenever the neighbour sets equal the stored graph's. Tested
(``tests/test_fast_inference.py``, and on a GPU ``tests/test_gpu.py``): float32, eager or
compiled, against ``model(batch)`` on the CPU to 1e-4 (relative and absolute: compilation
reorders float32 sums); bf16 to 0.05 + 0.05·|logit|, with the same predicted class wherever the
float32 margin exceeds that; the kNN tables against the stored ``gnnu-build`` graph (same
neighbour sets up to distance ties). Nothing changes for ``model(batch)``: this path is opt-in.

Simplifications: EdgeConv only (dynamic EdgeConv and GravNet build graphs inside their blocks and
run eagerly on a GPU with the torch kNN backend); inference only (eval mode, no gradients); an
event with more nodes than the node budget gets a pack of its own, padded to a multiple of 4 096
(a new shape: compiled once more).
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from ...graph.knn import knn
from .edgeconv import EdgeConvEncoder
from .ops import NeighbourTable, neighbour_table

#: Node counts of packs round up to a multiple of this.
NODE_ROUND = 4096
#: Precisions :class:`FastEdgeConv` accepts → autocast dtype (None: float32 throughout).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Pack(NamedTuple):
    """Events padded to one shape: ``x`` [NB, F], ``index`` [NB, K] int64 (sentinel NB),
    ``has_edges`` [NB, 1] bool, ``graph`` [NB] int64 (padding nodes → ``slots``), the events
    it holds (``num_graphs`` ≤ ``slots``) and where they start in the batch (``first``)."""

    x: Tensor
    index: Tensor
    has_edges: Tensor
    graph: Tensor
    num_graphs: int
    slots: int
    first: int


class _Forward(nn.Module):
    """Encoder → float32 pooling (``slots`` + 1 graphs: the last collects padding) → heads."""

    def __init__(self, model: nn.Module, slots: int, dtype: torch.dtype | None):
        super().__init__()
        self.model, self.slots, self.dtype = model, slots, dtype

    def forward(self, x: Tensor, index: Tensor, has_edges: Tensor, graph: Tensor) -> dict[str, Tensor]:
        with torch.autocast(x.device.type, dtype=self.dtype or torch.float32,
                            enabled=self.dtype is not None):
            h = self.model.encoder.encode(x, None, NeighbourTable(index, has_edges))
        return self.model.head(self.model.pool(h.float(), graph, self.slots + 1))


def _round_up(n: int, step: int) -> int:
    return max(step, int(math.ceil(n / step)) * step)


def chunk_events(sizes: np.ndarray, node_budget: int, graph_budget: int) -> list[tuple[int, int]]:
    """Consecutive runs [g0, g1) of events with at most ``node_budget`` nodes and ``graph_budget``
    events each (an event larger than the budget alone in its run)."""
    runs, g0, nodes = [], 0, 0
    for g, n in enumerate(sizes.tolist()):
        if g > g0 and (nodes + n > node_budget or g - g0 >= graph_budget):
            runs.append((g0, g))
            g0, nodes = g, 0
        nodes += n
    if len(sizes):
        runs.append((g0, len(sizes)))
    return runs


class FastEdgeConv:
    """The fast inference path of the module docstring for one trained EdgeConv model.

    Args:
        model: an ``edgeconv`` GraphModel (put in eval mode here).
        graphs: ``"knn"`` (build the kNN graph on the batch's device) or ``"stored"``.
        k, per_view, include_self, knn_dtype: the kNN graph (``graphs="knn"``); defaults are
            the ``knn16`` graph configs' (k = 16 per view, no self-loops).
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast of the encoder).
        compile: ``torch.compile`` the padded forward (``compile_mode``: its ``mode``).
        node_budget, graph_budget: pack size (module docstring; None: from the first batch).

    Call with a PyG ``Batch`` (``x``, ``batch``; ``pos`` and ``view_id`` for ``graphs="knn"``,
    ``edge_index`` for ``"stored"``) on the device to run on; returns the heads' outputs
    (float32, one row per event in batch order), as ``model(batch)``. ``last_build_s`` and
    ``compile_s`` say where time went (host clock; synchronised on a GPU only where said).
    """

    def __init__(self, model: nn.Module, graphs: str = "knn", k: int = 16, per_view: bool = True,
                 include_self: bool = False, knn_dtype: torch.dtype = torch.float32,
                 precision: str = "fp32", compile: bool = False, compile_mode: str | None = None,
                 node_budget: int | None = None, graph_budget: int | None = None):
        encoder = getattr(model, "encoder", None)
        if not isinstance(encoder, EdgeConvEncoder):
            raise ValueError(f"the fast inference path serves the edgeconv model only, not "
                             f"{type(encoder).__name__}")
        if graphs not in ("knn", "stored"):
            raise ValueError(f"graphs must be 'knn' or 'stored', got {graphs!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        self.model = model.eval()
        self.graphs, self.k, self.per_view, self.include_self = graphs, int(k), per_view, include_self
        self.knn_dtype = knn_dtype
        self.precision, self.dtype = precision, PRECISIONS[precision]
        self.compile, self.compile_mode = compile, compile_mode
        self.node_budget, self.graph_budget = node_budget, graph_budget
        self._fns: dict[int, nn.Module] = {}
        self._shapes: set[tuple] = set()            # pack shapes already compiled
        self.compile_s = 0.0
        self.last_build_s = 0.0

    # -- packing ------------------------------------------------------------------------------
    def packs(self, batch) -> list[Pack]:
        """The batch cut into padded packs (graphs built here for ``graphs="knn"``)."""
        x, graph = batch.x, batch.batch
        n_graphs = int(batch.num_graphs)
        sizes = torch.bincount(graph, minlength=n_graphs).cpu().numpy()
        if self.node_budget is None:
            self.node_budget = _round_up(int(1.25 * sizes.sum()), NODE_ROUND)
        if self.graph_budget is None:
            self.graph_budget = n_graphs
        ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        if self.graphs == "stored":
            edge_index = batch.edge_index
            edge_graph = graph[edge_index[1]]
            if edge_graph.numel() and not bool((edge_graph[1:] >= edge_graph[:-1]).all()):
                order = torch.argsort(edge_graph, stable=True)
                edge_index, edge_graph = edge_index[:, order], edge_graph[order]
            eptr = torch.searchsorted(edge_graph, torch.arange(n_graphs + 1, device=graph.device)).cpu()
            degree = torch.bincount(edge_index[1], minlength=x.size(0))
            width = _round_up(int(degree.max()) if degree.numel() else 0, 8)
        else:
            view = batch.view_id if self.per_view else None
            n_views = int(view.max()) + 1 if view is not None and view.numel() else 1
        out = []
        t0 = time.perf_counter()
        for g0, g1 in chunk_events(sizes, self.node_budget, self.graph_budget):
            a, b = int(ptr[g0]), int(ptr[g1])
            xs, gs = x[a:b], graph[a:b] - g0
            if self.graphs == "stored":
                edges = edge_index[:, int(eptr[g0]):int(eptr[g1])] - a
                k = width
            else:
                pos = batch.pos[a:b]
                group = gs if view is None else gs * n_views + view[a:b]
                if group.numel() > 1 and not bool((group[1:] >= group[:-1]).all()):
                    order = torch.argsort(group, stable=True)   # within events: graph order kept
                    xs, gs, pos, group = xs[order], gs[order], pos[order], group[order]
                edges = knn(pos.detach().to(self.knn_dtype), self.k, batch=group,
                            include_self=self.include_self, backend="torch")
                k = self.k
            nb = self.node_budget if b - a <= self.node_budget else _round_up(b - a, NODE_ROUND)
            slots = self.graph_budget if g1 - g0 <= self.graph_budget else g1 - g0
            xp = x.new_zeros((nb, x.size(1)))
            xp[:b - a] = xs
            gp = torch.full((nb,), slots, dtype=torch.long, device=x.device)
            gp[:b - a] = gs
            table = neighbour_table(edges, nb, width=k)
            out.append(Pack(xp, table.index, table.has_edges, gp, g1 - g0, slots, g0))
        self.last_build_s = time.perf_counter() - t0
        return out

    # -- running ------------------------------------------------------------------------------
    def _fn(self, slots: int) -> nn.Module:
        fn = self._fns.get(slots)
        if fn is None:
            fn = _Forward(self.model, slots, self.dtype)
            if self.compile:
                fn = torch.compile(fn, dynamic=False, mode=self.compile_mode)
            self._fns[slots] = fn
        return fn

    def run(self, pack: Pack) -> dict[str, Tensor]:
        """The heads' outputs for the events of one pack."""
        shape = (pack.slots, tuple(pack.x.shape), tuple(pack.index.shape))
        first = self.compile and shape not in self._shapes
        t0 = time.perf_counter()
        with torch.no_grad():
            out = self._fn(pack.slots)(pack.x, pack.index, pack.has_edges, pack.graph)
        if first:                                   # a new shape: this call compiled it
            if pack.x.device.type == "cuda":
                torch.cuda.synchronize(pack.x.device)
            self.compile_s += time.perf_counter() - t0
            self._shapes.add(shape)
        return {name: v[:pack.num_graphs] for name, v in out.items()}

    def __call__(self, batch) -> dict[str, Tensor]:
        with torch.no_grad():
            parts = [self.run(p) for p in self.packs(batch)]
        return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}
