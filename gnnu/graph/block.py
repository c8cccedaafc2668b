"""Events → graphs, for a block of events at once: node features, positions, edges.

:func:`make_graphs` is the one conversion every build runs (``gnnu-build`` per shard, in blocks
of :data:`gnnu.graph.shard.SUB_BLOCK` events); events that cannot become a graph are left out
with their reason (:data:`BAD_REASONS`), never silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..events import Event
from .config import GraphConfig
from .edges import build_edges
from .features import compute_features, node_table
from .pixelize import is_pixel_maps, pixel_geometry, pixelize_events

#: Reasons an event is rejected (default) or skipped (``skip_bad``), by code.
BAD_REASONS = {1: "empty event", 2: "too many hits", 3: "invalid view id", 4: "non-finite values",
               5: "no hit in the window"}
#: Reasons of valid but empty events (no hit at all, or none inside the window of the graph
#: config's pixel-map representation): skipped and counted by default, never an error (docs/design.md#reliability).
EMPTY_REASONS = (BAD_REASONS[1], BAD_REASONS[5])
_HIT_INPUTS = ("view", "wire", "time", "charge", "width")


@dataclass
class GraphBlock:
    """Graphs of a block of events, concatenated (see :mod:`gnnu.graph.store` for the shapes).

    ``index``: position in the input list of each graph's event; ``bad``: (position, reason) of
    every rejected event.
    """

    x: np.ndarray
    pos: np.ndarray
    view: np.ndarray
    hit: np.ndarray
    edge_index: np.ndarray
    node_offset: np.ndarray
    edge_offset: np.ndarray
    index: np.ndarray
    bad: list[tuple[int, str]]

    @property
    def n_graphs(self) -> int:
        return len(self.node_offset) - 1


def graph_detector(detector, cfg: GraphConfig):
    """The geometry the graphs are built in: the source's, or with ``cfg.pixelize`` that of its
    pixel maps (:func:`gnnu.graph.pixelize.pixel_geometry`; a source of those maps keeps its own)."""
    if cfg.pixelize and not is_pixel_maps(detector, cfg.pixelize):
        return pixel_geometry(detector, cfg.pixelize)
    return detector


def _hit_table(nodes) -> np.ndarray:
    """[N, 4] float32 (wire, time, charge, plane or −1) of a node table: the shards' /nodes/hit."""
    plane = nodes.plane if nodes.plane is not None else np.full(len(nodes), -1)
    return np.stack([nodes.wire, nodes.time, nodes.charge, plane], axis=1).astype(np.float32)


def make_graphs(events: list[Event], detector, cfg: GraphConfig) -> GraphBlock:
    """Turn ``events`` into graphs with config ``cfg``, all at once.

    Events with no hits, more than ``cfg.max_hits`` hits, view ids outside ``detector.views`` or
    non-finite values are left out and listed in ``bad``. Hits must carry the columns of
    :data:`gnnu.events.HIT_COLUMNS` (plus x, y, z when ``cfg.needs_xyz``). With ``cfg.pixelize``
    the events first go through that pixel-map preset (:func:`gnnu.graph.pixelize.pixelize_events`:
    one node per non-zero pixel, as DUNE CVN's released events are read).
    """
    had_hits = np.array([len(e.hits) > 0 for e in events], bool)
    if cfg.pixelize:
        events, detector = pixelize_events(events, detector, cfg.pixelize)
    names = (_HIT_INPUTS + tuple(detector.position_columns)
             + (("x", "y", "z") if cfg.needs_xyz else ()))
    counts = np.array([len(e.hits) for e in events], np.int64)
    cols = {n: (np.concatenate([e.hits.columns[n] for e in events]) if events else np.zeros(0))
            for n in names}
    batch = np.repeat(np.arange(len(events)), counts)
    n_views = len(detector.views)
    finite = np.isfinite(cols["time"]) & np.isfinite(cols["charge"]) & np.isfinite(cols["width"])
    bad_view = (cols["view"] < 0) | (cols["view"] >= n_views)
    code = np.zeros(len(events), np.int8)
    code[np.bincount(batch, weights=~finite, minlength=len(events)) > 0] = 4
    code[np.bincount(batch, weights=bad_view, minlength=len(events)) > 0] = 3
    code[counts > cfg.max_hits] = 2
    code[counts == 0] = np.where(had_hits[counts == 0], 5, 1)
    good = np.flatnonzero(code == 0)
    hit_ok = code[batch] == 0
    nodes = node_table({k: v[hit_ok] for k, v in cols.items()},
                       np.repeat(np.arange(len(good)), counts[good]), detector, cfg.needs_xyz)
    x = compute_features(cfg.features, nodes)
    pos = nodes.pos if cfg.positions == "view" else np.where(np.isfinite(nodes.xyz), nodes.xyz, 0)
    if not (np.isfinite(x).all() and np.isfinite(pos).all()):
        row_ok = np.isfinite(x).all(axis=1) & np.isfinite(pos).all(axis=1)
        bad_graphs = np.unique(nodes.batch[~row_ok])
        code[good[bad_graphs]] = 4
        keep = ~np.isin(nodes.batch, bad_graphs)
        nodes, x, pos = nodes.select(keep), x[keep], pos[keep]
        good = np.flatnonzero(code == 0)
    n_good = len(good)
    node_offset = np.concatenate([[0], np.cumsum(counts[good])]).astype(np.int64)
    edges = build_edges(nodes, cfg.edges, cfg.self_loops)
    target_graph = nodes.batch[edges[1]]
    if np.any(np.diff(target_graph) < 0):
        order = np.argsort(target_graph, kind="stable")
        edges, target_graph = edges[:, order], target_graph[order]
    edge_offset = np.searchsorted(target_graph, np.arange(n_good + 1), side="left")
    local = edges.astype(np.int32)
    local -= np.repeat(node_offset[:-1].astype(np.int32), np.diff(edge_offset))
    bad = [(int(i), BAD_REASONS[int(code[i])]) for i in np.flatnonzero(code)]
    return GraphBlock(x=np.ascontiguousarray(x, np.float32), pos=np.ascontiguousarray(pos, np.float32),
                      view=nodes.view.astype(np.int8), hit=_hit_table(nodes), edge_index=local,
                      node_offset=node_offset,
                      edge_offset=edge_offset.astype(np.int64), index=good, bad=bad)
