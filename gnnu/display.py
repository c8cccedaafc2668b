"""Event displays: every view of an event side by side, hits drawn in the view's cm space.

Axes, their titles and the hit markers come from the detector (:class:`gnnu.detectors.Detector`):
LArTPC: wire coordinate horizontally, drift coordinate (time × drift velocity) vertically, dots;
segmented scintillator: z of the plane horizontally, the cell's transverse coordinate vertically,
each hit a square marker (plane on x, cell on y).
Colour is the hit charge on a log scale; ``truth=True`` colours hits by the truth particle
that made them instead (noise and radiological blips grey). Written with matplotlib's Agg
backend, so it works without a screen.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import atomic_path
from .detectors import positions
from .events import Event, Flavour, Interaction


def _title(ev: Event) -> str:
    t = ev.truth
    parts = []
    if t.flavour >= 0:
        parts.append(Flavour(t.flavour).pretty + (" (ν̄)" if t.is_antinu == 1 else ""))
    if t.interaction >= 0:
        parts.append(Interaction(t.interaction).name)
    if np.isfinite(t.nu_energy):
        parts.append(f"E = {t.nu_energy:.2f} GeV")
    elif t.flavour == Flavour.COSMIC and np.isfinite(t.lep_energy):
        parts.append(f"E_μ = {t.lep_energy:.2f} GeV")
    parts.append(f"{len(ev.hits)} hits")
    return f"event {ev.event_id}: " + ", ".join(parts)


def draw_events(events: Sequence[Event], detector, path: str | os.PathLike,
                truth: bool = False, title: str | None = None) -> Path:
    """Draw ``events`` (one row each, one column per view) to the PNG ``path``; returns it.

    Axes: wire coordinate (cm) horizontally, drift coordinate (time × drift velocity, cm)
    vertically — or, for a segmented detector, plane z (cm) horizontally and cell coordinate (cm)
    vertically — so distances look as they are in the detector.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    views = detector.views
    marker, size = detector.hit_marker
    n = max(len(events), 1)
    fig, axes = plt.subplots(n, len(views), figsize=(4.2 * len(views), 3.6 * n), squeeze=False)
    for row, ev in enumerate(events):
        h = ev.hits
        pos = positions(detector, h) if len(h) else np.zeros((0, 2))
        for v, name in enumerate(views):
            ax = axes[row, v]
            sel = h["view"] == v
            if truth and "particle" in h:
                pid = h["particle"][sel]
                colours = np.where(pid < 0, -1, pid % 10)
                ax.scatter(pos[sel, 0], pos[sel, 1], c=colours, s=size, marker=marker,
                           cmap="tab10", vmin=-1, vmax=9, linewidths=0)
            elif sel.any():
                q = np.clip(h["charge"][sel], 1e-3, None)
                sc = ax.scatter(pos[sel, 0], pos[sel, 1], c=q, s=size, marker=marker,
                                cmap="viridis",
                                norm=LogNorm(vmin=max(q.min(), 1e-3), vmax=max(q.max(), 1e-2)),
                                linewidths=0)
                if v == len(views) - 1:
                    fig.colorbar(sc, ax=ax, label=f"charge ({detector.charge_unit})")
            _zoom(ax, pos[sel])
            xlabel, ylabel = detector.axis_labels(v)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_title(f"view {name}", fontsize=9)
        axes[row, 0].annotate(_title(ev), (0, 1.12), xycoords="axes fraction", fontsize=10,
                              fontweight="bold")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)
    return path


def _zoom(ax, pos: np.ndarray, margin_cm: float = 15.0) -> None:
    """Frame the bulk of the event (1–99 % quantiles), so isolated noise hits and blips far
    away do not shrink it to a dot."""
    if len(pos) < 2:
        return
    lo = np.percentile(pos, 1, axis=0) - margin_cm
    hi = np.percentile(pos, 99, axis=0) + margin_cm
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])


def one_per_flavour(events: Sequence[Event]) -> list[Event]:
    """The first event of each flavour present, in flavour-code order."""
    chosen: dict[int, Event] = {}
    for ev in events:
        chosen.setdefault(int(ev.truth.flavour), ev)
    return [chosen[k] for k in sorted(chosen)]
