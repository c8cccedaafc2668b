"""Pixel maps: hits → one (wire × time) or (plane × cell) image per view (DESIGN §3.4).

A :class:`PixelMapPreset` is data: which views, how many wire columns and time bins, ticks per
bin, the charge → pixel-value scale, and where the window is centred. :func:`render` turns the
hits of one event into a ``uint8`` array of shape (views, wires, time bins):

- one wire per column; time bins of ``ticks_per_bin`` ticks;
- the window is placed per view around a given vertex (wire and tick per view, e.g. from
  :func:`vertex_wire_tick`) when the preset's ``centring`` is ``"vertex"``: the vertex sits at
  the fractions ``vertex_anchor`` of the window's wire and time ranges. Otherwise — or when no
  vertex is given — the window is centred on the charge-weighted centroid of the view's hits;
- pixel value = summed hit charge (ADC·tick) × ``charge_scale``, rounded up (so every pixel that
  received charge is non-zero) and saturating at 255.

Segmented detectors (``layout="plane-cell"``, hits with a ``plane`` column): per view a
(plane × cell) grid — one row per ``planes_per_row`` detector planes (2 when the views alternate:
row r of each view holds that view's plane among planes 2r and 2r + 1) and one cell per column.
Centring on a vertex works as above with (row, cell) coordinates; otherwise the window starts at
the event's first row (the same for every view, so the views stay aligned in z) and is centred on
the charge-weighted mean cell of each view.

Presets: ``dune-cvn`` (3 × 500 × 500, like the pixel maps released with DUNE CVN: 500 wires,
3200 ticks in 500 bins of 6.4 ticks, value = q·255/1000). In the released maps the activity
starts a few wires into the window (the lowest non-zero wire is 1–5 in most views of the 20
sample events) and the vertex lies near the middle of the time range, so ``dune-cvn`` puts a
given vertex at wire fraction 0.01 (column 5) and time fraction 0.5; the beam runs towards
higher wire numbers in all three views. ``nova-cvn`` (2 × 100 × 80, NOvA CVN's two views of 100
planes × 80 cells, Aurisano et al., JINST 11 (2016) P09001; value = PE·255/1000, our scale: a
MIP's 30–80 PE become 8–21).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..events import Hits


@dataclass(frozen=True)
class PixelMapPreset:
    """How hits become pixel maps. Times in ticks, charge in the hits' unit (ADC·tick or PE).

    ``layout="wire-time"`` uses ``n_wires``, ``n_time_bins`` and ``ticks_per_bin``;
    ``layout="plane-cell"`` (segmented detectors) uses ``n_planes`` rows of ``planes_per_row``
    detector planes and ``n_cells`` columns.
    """

    name: str
    views: tuple[int, ...]           # view ids rendered, in output order
    n_wires: int = 0                 # columns (one wire each)
    n_time_bins: int = 0
    ticks_per_bin: float = 0.0
    charge_scale: float = 1.0        # pixel value per unit of summed hit charge
    centring: Literal["vertex", "centroid"] = "vertex"   # vertex when given, else centroid
    vertex_anchor: tuple[float, float] = (0.5, 0.5)      # vertex position (wire, time) — or
                                                         # (row, cell) — in the window, as
                                                         # fractions of its ranges
    layout: Literal["wire-time", "plane-cell"] = "wire-time"
    n_planes: int = 0                # plane-cell: rows
    n_cells: int = 0                 # plane-cell: columns (one cell each)
    planes_per_row: int = 2          # plane-cell: detector planes per row (2: views alternate)

    def __post_init__(self):
        if self.layout == "wire-time":
            sizes, steps = (self.n_wires, self.n_time_bins), (self.ticks_per_bin,)
        else:
            sizes, steps = (self.n_planes, self.n_cells), (self.planes_per_row,)
        if not self.views or min(sizes) <= 0:
            raise ValueError(f"preset '{self.name}': needs views and positive sizes")
        if min(steps) <= 0 or self.charge_scale <= 0:
            raise ValueError(f"preset '{self.name}': bin sizes and charge_scale must be > 0")
        if not all(0 <= a <= 1 for a in self.vertex_anchor):
            raise ValueError(f"preset '{self.name}': vertex_anchor fractions must lie in [0, 1]")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(views, wires, time bins) — or (views, plane rows, cells) — of a rendered map."""
        if self.layout == "plane-cell":
            return len(self.views), self.n_planes, self.n_cells
        return len(self.views), self.n_wires, self.n_time_bins


#: DUNE CVN's released maps: views U, V, Z; 500 wires × 3200 ticks in 500 bins; q·255/1000;
#: a given vertex at column 5 and mid-time (see the module docstring).
DUNE_CVN = PixelMapPreset("dune-cvn", views=(0, 1, 2), n_wires=500, n_time_bins=500,
                          ticks_per_bin=6.4, charge_scale=255.0 / 1000.0,
                          vertex_anchor=(0.01, 0.5))

#: NOvA CVN's maps: views XZ, YZ; 100 plane rows (one plane of each view per row) × 80 cells;
#: charge in PE, q·255/1000; window from the event's first plane, centred on its mean cell.
NOVA_CVN = PixelMapPreset("nova-cvn", views=(0, 1), charge_scale=255.0 / 1000.0,
                          centring="centroid", layout="plane-cell", n_planes=100, n_cells=80,
                          planes_per_row=2, vertex_anchor=(0.0, 0.5))

PRESETS: dict[str, PixelMapPreset] = {p.name: p for p in (DUNE_CVN, NOVA_CVN)}


def get_preset(preset: PixelMapPreset | str) -> PixelMapPreset:
    """A preset object from itself or its name; ValueError naming the known ones if unknown."""
    if isinstance(preset, PixelMapPreset):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"unknown pixel-map preset '{preset}' (known: {', '.join(PRESETS)})")
    return PRESETS[preset]


def vertex_wire_tick(detector, vertex_cm, views=(0, 1, 2)) -> np.ndarray:
    """Per view the (wire, tick) of a point ``vertex_cm`` = (x, y, z) cm (interaction at t = 0).

    Wire is fractional (wire coordinate / pitch), tick = drift distance × ticks per cm.
    Returns float64 [len(views), 2].
    """
    x, y, z = (float(v) for v in vertex_cm)
    tick = float(detector.drift_distance(x)) * detector.ticks_per_cm
    return np.array([[float(detector.wire_coordinate(v, y, z)) / detector.config.planes[v].pitch_cm,
                      tick] for v in views])


def _rows(hits: Hits, p: PixelMapPreset) -> np.ndarray:
    """Plane row of each hit (plane-cell layout); ValueError if the hits have no plane column."""
    if "plane" not in hits:
        raise ValueError(f"preset '{p.name}' renders (plane, cell) maps: the hits need a "
                         f"'plane' column (a segmented detector's hits)")
    return hits["plane"].astype(np.int64) // p.planes_per_row


def window_origin(hits: Hits, preset: PixelMapPreset | str, vertex_pixel=None) -> np.ndarray:
    """Per rendered view the (first wire, first tick) — plane-cell layout: (first row, first
    cell) — of the window, float64 [V, 2].

    With a vertex (``vertex_pixel`` [V, 2] wire, tick — or row, cell) and ``centring ==
    "vertex"``, the vertex sits at ``vertex_anchor`` of the window. Otherwise (wire-time) the
    window is centred on the charge-weighted centroid of the view's hits (a view without hits gets
    origin (0, 0)); (plane-cell) it starts at the first row of all rendered hits and is centred on
    the charge-weighted mean cell of each view.
    """
    p = get_preset(preset)
    plane_cell = p.layout == "plane-cell"
    if plane_cell:
        span = np.array([p.n_planes, p.n_cells], np.float64)
    else:
        span = np.array([p.n_wires, p.n_time_bins * p.ticks_per_bin])
    if p.centring == "vertex" and vertex_pixel is not None:
        vertex = np.asarray(vertex_pixel, np.float64).reshape(len(p.views), 2)
        if plane_cell:
            return np.floor(vertex) - np.round(np.asarray(p.vertex_anchor) * span)
        first_wire = np.floor(vertex[:, 0]) - round(p.vertex_anchor[0] * p.n_wires)
        return np.stack([first_wire, vertex[:, 1] - p.vertex_anchor[1] * span[1]], axis=1)
    slot = _slot_of(hits, p)
    sel = slot >= 0
    q = hits["charge"][sel].astype(np.float64)
    w = np.bincount(slot[sel], weights=q, minlength=len(p.views))
    cw = np.bincount(slot[sel], weights=q * hits["wire"][sel], minlength=len(p.views))
    safe = np.where(w > 0, w, 1.0)
    if plane_cell:
        rows = _rows(hits, p)[sel]
        first_row = float(rows.min()) if len(rows) else 0.0
        centre = np.where(w > 0, cw / safe, 0.5 * span[1])
        return np.stack([np.full(len(p.views), first_row), np.round(centre) - p.n_cells // 2],
                        axis=1)
    ct = np.bincount(slot[sel], weights=q * hits["time"][sel], minlength=len(p.views))
    centre = np.where((w > 0)[:, None], np.stack([cw / safe, ct / safe], axis=1), 0.5 * span)
    return np.stack([np.round(centre[:, 0]) - p.n_wires // 2, centre[:, 1] - 0.5 * span[1]],
                    axis=1)


def _slot_of(hits: Hits, p: PixelMapPreset) -> np.ndarray:
    """Output slot of each hit's view (−1 for views the preset does not render)."""
    lut = np.full(max(max(p.views), int(hits["view"].max(initial=0))) + 1, -1, np.int64)
    lut[list(p.views)] = np.arange(len(p.views))
    return lut[hits["view"].astype(np.int64)]


def render(hits: Hits, preset: PixelMapPreset | str = "dune-cvn", vertex_pixel=None) -> np.ndarray:
    """Hits of one event → pixel maps, uint8 [views, n_wires, n_time_bins] (plane-cell layout:
    [views, n_planes, n_cells]).

    ``hits``: columns ``view``, ``wire``, ``time`` (ticks), ``charge`` (ADC·tick or PE), and
    ``plane`` for the plane-cell layout. ``vertex_pixel``: optional [V, 2] (wire, tick) — or
    (row, cell) — per rendered view, used when the preset centres on the vertex. Hits outside
    the window are not drawn.
    """
    p = get_preset(preset)
    out = np.zeros(p.shape, np.uint8)
    if len(hits) == 0:
        return out
    origin = window_origin(hits, p, vertex_pixel)
    slot = _slot_of(hits, p)
    s = np.maximum(slot, 0)
    _, size1, size2 = p.shape
    if p.layout == "plane-cell":             # (plane row, cell)
        i1 = _rows(hits, p) - origin[s, 0].astype(np.int64)
        i2 = hits["wire"].astype(np.int64) - origin[s, 1].astype(np.int64)
    else:                                    # (wire, time bin)
        i1 = hits["wire"].astype(np.int64) - origin[s, 0].astype(np.int64)
        i2 = np.floor((hits["time"] - origin[s, 1]) / p.ticks_per_bin).astype(np.int64)
    ok = (slot >= 0) & (i1 >= 0) & (i1 < size1) & (i2 >= 0) & (i2 < size2)
    flat = (slot[ok] * size1 + i1[ok]) * size2 + i2[ok]
    pixels, inverse = np.unique(flat, return_inverse=True)
    charge = np.bincount(inverse, weights=np.maximum(hits["charge"][ok], 0.0))
    value = np.minimum(np.ceil(charge * p.charge_scale), 255)
    out.reshape(-1)[pixels] = value.astype(np.uint8)
    return out
