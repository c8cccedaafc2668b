"""One event as the GNNs and the CNNs see it, side by side: the graph of each view (nodes at
their positions in cm, coloured by charge, and the dataset's edges) above the pixel maps of
the same event rendered from the same stored hits with every image preset that fits the
event's detector.

Everything is read from a graph dataset written by ``gnnu-build`` (``/nodes/pos``,
``/edges/index``, ``/nodes/hit``): the picture shows exactly what training reads. Written with
matplotlib's Agg backend (no screen needed).

Rows: the graph (one panel per view); then one row per preset that fits — ``dune-cvn``: its
three (wire × time) view maps; ``resnet-rgb``: its three channels and the RGB composite the
ResNet18 receives; ``nova-cvn`` (NOvA-like detector): its two (plane × cell) view maps. A preset
that cannot render the event (``nova-cvn`` for a wire-plane LArTPC; ``dune-cvn`` and
``resnet-rgb`` for the two-view segmented detector) is not drawn; the last row of the figure
says which and why, and :class:`EventViews` (what :func:`draw_event_views` returns) lists the
panels drawn and the presets skipped, so a caller can print both.

Simplifications: only edges between nodes of the same view are drawn (cross-view edges, where a
graph config has them, connect different panels); graphs with more than ``max_edges`` edges are
drawn through that many evenly spaced ones (the title says so).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..atomic import atomic_path
from ..errors import ConfigError
from ..pixelmap import PRESETS
from .dataset import ImageDataset
from .layouts import detectors_of


@dataclass(frozen=True)
class EventViews:
    """What :func:`draw_event_views` drew.

    ``path``: the PNG; ``detector``: the dataset's detector name; ``panels``: the title of every
    panel drawn, row by row (graph views first, then each preset's maps); ``presets``: the
    presets drawn, in row order; ``skipped``: (preset, reason) of each preset not drawn.
    """

    path: Path
    detector: str
    panels: tuple[str, ...]
    presets: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]

    def summary(self) -> list[str]:
        """Lines to print: the file, each row's panels, each skipped preset and why."""
        lines = [f"{self.path}: {len(self.panels)} panels ({self.detector} event)"]
        lines += [f"  drawn: {title}" for title in self.panels]
        lines += [f"  not drawn: {name}: {why}" for name, why in self.skipped]
        return lines


def _skip_reason(name: str, exc: Exception, detector: str) -> str:
    preset = PRESETS.get(name)
    fits = detectors_of(preset.layout if preset is not None else "wire-time")
    return f"{exc} — it renders events of {fits}, not of this {detector} event"


def draw_event_views(root: str | os.PathLike, index: int, path: str | os.PathLike,
                     split: str = "all", presets: Sequence[str] | None = None,
                     max_edges: int = 60_000) -> EventViews:
    """Draw item ``index`` of ``split`` of the dataset ``root`` as graph and pixel maps to the PNG
    ``path``. ``presets``: the image presets to try (default: every preset in
    :data:`gnnu.pixelmap.PRESETS`); those that do not fit the dataset's detector are skipped and
    named in the figure's last row. Row 1: one panel per view, nodes at ``pos`` (cm) coloured by
    charge on a log scale, same-view edges as grey lines. Then one row per fitting preset: its
    maps, one panel per view (pixel value 0–255, zero pixels white; ``resnet-rgb`` adds its RGB
    composite). ConfigError when no preset fits; IndexError for an index outside the split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.colors import LogNorm

    presets = list(PRESETS) if presets is None else list(presets)
    datasets, skipped = [], []
    detector = "unknown"
    for name in presets:
        try:
            datasets.append(ImageDataset(root, split, name))
        except ConfigError as exc:
            skipped.append((name, exc))
    if datasets:
        detector = str(datasets[0].manifest.get("detector", {}).get("name", "unknown"))
    skipped = [(name, _skip_reason(name, exc, detector)) for name, exc in skipped]
    if not datasets:
        raise ConfigError("no image preset fits this dataset: "
                          + "; ".join(f"{n}: {why}" for n, why in skipped))
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
    maps = [ds.render(index) for ds in datasets]
    widths = [m.shape[0] + (ds.preset.name == "resnet-rgb" and m.shape[0] == 3)
              for ds, m in zip(datasets, maps)]
    cols = max(len(names), *widths)
    rows = 1 + len(datasets)
    fig = plt.figure(figsize=(4.0 * cols, 3.6 * rows + (0.5 + 0.3 * len(skipped) if skipped else 0)))
    grid = fig.add_gridspec(rows + bool(skipped), cols,
                            height_ratios=[1.0] * rows + ([0.12 + 0.06 * len(skipped)] if skipped else []))
    panels: list[str] = []

    norm = LogNorm(vmin=charge.min(), vmax=max(charge.max(), charge.min() * 10))
    sc = None
    graph_axes = []
    for v, name in enumerate(names):
        ax = fig.add_subplot(grid[0, v])
        graph_axes.append(ax)
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
        title = f"graph, view {name}: {int(sel.sum())} nodes, {mine.shape[1]} edges"
        ax.set_title(title, fontsize=9)
        panels.append(title)
        xlabel, ylabel = first.frame.axis_labels(v)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    if sc is not None:
        fig.colorbar(sc, ax=graph_axes[-1], label="hit charge")

    for row, (ds, m) in enumerate(zip(datasets, maps), start=1):
        plane_cell = ds.preset.layout == "plane-cell"
        im, ax = None, None
        for v in range(m.shape[0]):
            ax = fig.add_subplot(grid[row, v])
            shown = np.ma.masked_equal(m[v].T, 0)
            im = ax.imshow(shown, origin="lower", aspect="auto", cmap="viridis", vmin=1, vmax=255,
                           interpolation="nearest")
            ax.set_facecolor("white")
            vid = ds.preset.views[v]
            view_name = names[vid] if vid < len(names) else vid
            what = (f"{'RGB'[v]} = view {view_name}" if ds.preset.name == "resnet-rgb" and v < 3
                    else f"map, view {view_name}")
            title = f"{ds.preset.name} {what}: {int(np.count_nonzero(m[v]))} non-zero pixels"
            ax.set_title(title, fontsize=9)
            panels.append(title)
            ax.set_xlabel(f"plane row ({ds.preset.planes_per_row} planes)" if plane_cell
                          else f"column ({ds.preset.wires_per_column} wire(s))")
            ax.set_ylabel("cell column" if plane_cell else "time bin")
        fig.colorbar(im, ax=ax, label="pixel value")
        if widths[row - 1] > m.shape[0]:                 # resnet-rgb: what the ResNet18 sees
            ax = fig.add_subplot(grid[row, m.shape[0]])
            rgb = np.transpose(m, (2, 1, 0))            # [time, column, channel]
            ax.imshow(255 - rgb.max(axis=2, keepdims=True) + rgb, origin="lower", aspect="auto",
                      interpolation="nearest")          # white where all channels are empty
            title = f"{ds.preset.name}: RGB composite (U, V, Z as R, G, B)"
            ax.set_title(title, fontsize=9)
            panels.append(title)
            ax.set_xlabel(f"column ({ds.preset.wires_per_column} wires)")
            ax.set_ylabel("time bin")
    if skipped:
        ax = fig.add_subplot(grid[rows, :])
        ax.axis("off")
        ax.text(0.0, 0.5, "\n".join(f"not drawn: {n} — {why}" for n, why in skipped),
                transform=ax.transAxes, ha="left", va="center", fontsize=9, color="darkred",
                wrap=True)

    labels = first.labels()
    eid = tuple(int(x) for x in labels["event_id"][index])
    title = (f"{detector} event {eid}: {b - a} nodes and {n_edges} edges as a graph; the same hits "
             f"as the pixel maps of {', '.join(ds.preset.name for ds in datasets)}"
             + (f" (edges drawn: {max_edges} of {n_edges})" if n_edges > max_edges else ""))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)
    return EventViews(path, detector, tuple(panels), tuple(ds.preset.name for ds in datasets),
                      tuple(skipped))


def draw_graph_and_maps(root: str | os.PathLike, index: int, path: str | os.PathLike,
                        split: str = "all", presets: Sequence[str] | None = None,
                        max_edges: int = 60_000) -> Path:
    """:func:`draw_event_views`, returning only the PNG's path."""
    return draw_event_views(root, index, path, split, presets, max_edges).path
