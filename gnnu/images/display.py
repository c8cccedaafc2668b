"""One event as the GNNs and the CNNs see it, side by side: the graph of each view (nodes at
their positions in cm, coloured by charge, and the dataset's edges) above the pixel maps of
the same event rendered from the same stored hits with each image preset.

Everything is read from a graph dataset written by ``gnnu-build`` (``/nodes/pos``,
``/edges/index``, ``/nodes/hit``): the picture shows exactly what training reads. Written with
matplotlib's Agg backend (no screen needed).

Simplifications: only edges between nodes of the same view are drawn (cross-view edges, where a
graph config has them, connect different panels); graphs with more than ``max_edges`` edges are
drawn through that many evenly spaced ones (the title says so); a preset whose views or layout
do not fit the dataset is skipped with a note in the figure title.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ConfigError
from .dataset import ImageDataset


def draw_graph_and_maps(root: str | os.PathLike, index: int, path: str | os.PathLike,
                        split: str = "all", presets: Sequence[str] = ("dune-cvn", "resnet-rgb"),
                        max_edges: int = 60_000) -> Path:
    """Draw item ``index`` of ``split`` of the dataset ``root`` as graph and pixel maps to the PNG
    ``path``; returns the path. Row 1: one panel per view, nodes at ``pos`` (cm) coloured by
    charge on a log scale, same-view edges as grey lines. Then one row per preset: its maps,
    one panel per view (pixel value 0–255, zero pixels white)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.colors import LogNorm

    datasets, skipped = [], []
    for name in presets:
        try:
            datasets.append(ImageDataset(root, split, name))
        except ConfigError as exc:
            skipped.append(f"{name}: {exc}")
    if not datasets:
        raise ConfigError("no image preset fits this dataset: " + "; ".join(skipped))
    first = datasets[0]
    if not -len(first) <= index < len(first):
        raise IndexError(f"event index {index} out of range for {len(first)} events of split {split}")
    index %= len(first)
    f, a, b = first.index.nodes(index)
    ea, eb = first.index.edges(index)
    pos = f["nodes/pos"][a:b].astype(np.float64)
    view = f["nodes/view"][a:b].astype(np.int64)
    charge = np.clip(f["nodes/hit"][a:b, 2].astype(np.float64), 1e-3, None)
    edges = f["edges/index"][:, ea:eb].astype(np.int64)
    edges = edges[:, view[edges[0]] == view[edges[1]]]
    n_edges = edges.shape[1]
    if n_edges > max_edges:
        edges = edges[:, np.linspace(0, n_edges - 1, max_edges).astype(np.int64)]
    names = list(first.frame.view_names) or [str(v) for v in np.unique(view)]
    cols = max(len(names), *(ds.shape[0] for ds in datasets))
    fig, axes = plt.subplots(1 + len(datasets), cols, figsize=(4.0 * cols, 3.6 * (1 + len(datasets))),
                             squeeze=False)
    norm = LogNorm(vmin=charge.min(), vmax=max(charge.max(), charge.min() * 10))
    for v, name in enumerate(names):
        ax = axes[0, v]
        sel = view == v
        mine = edges[:, sel[edges[0]]]
        ax.add_collection(LineCollection(np.stack([pos[mine[0], :2], pos[mine[1], :2]], axis=1),
                                         colors="0.6", linewidths=0.3, zorder=1))
        sc = ax.scatter(pos[sel, 0], pos[sel, 1], c=charge[sel], s=3, cmap="viridis", norm=norm,
                        linewidths=0, zorder=2)
        if sel.sum() > 1:
            lo, hi = np.percentile(pos[sel, :2], [1, 99], axis=0)
            ax.set_xlim(lo[0] - 10, hi[0] + 10)
            ax.set_ylim(lo[1] - 10, hi[1] + 10)
        ax.set_title(f"graph, view {name}: {int(sel.sum())} nodes, {mine.shape[1]} edges", fontsize=9)
        ax.set_xlabel("wire coordinate (cm)")
        ax.set_ylabel("drift coordinate (cm)")
    fig.colorbar(sc, ax=axes[0, len(names) - 1], label="hit charge")
    for ax in axes[0, len(names):]:
        ax.set_visible(False)
    for row, ds in enumerate(datasets, start=1):
        maps = ds.render(index)
        for v in range(cols):
            ax = axes[row, v]
            if v >= maps.shape[0]:
                ax.set_visible(False)
                continue
            shown = np.ma.masked_equal(maps[v].T, 0)
            im = ax.imshow(shown, origin="lower", aspect="auto", cmap="viridis", vmin=1, vmax=255,
                           interpolation="nearest")
            ax.set_facecolor("white")
            view_name = names[ds.preset.views[v]] if ds.preset.views[v] < len(names) else v
            ax.set_title(f"{ds.preset.name} map, view {view_name}: {int(np.count_nonzero(maps[v]))} "
                         f"non-zero pixels", fontsize=9)
            ax.set_xlabel("column (wire)")
            ax.set_ylabel("time bin")
        fig.colorbar(im, ax=axes[row, maps.shape[0] - 1], label="pixel value")
    labels = first.labels()
    eid = tuple(int(x) for x in labels["event_id"][index])
    title = (f"event {eid}: {b - a} nodes and {n_edges} edges as a graph; the same hits as pixel maps"
             + (f" (edges drawn: {max_edges} of {n_edges})" if n_edges > max_edges else ""))
    if skipped:
        title += "\nnot drawn: " + "; ".join(skipped)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path
