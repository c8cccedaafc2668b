"""Pixel maps: hits → one (wire × time) or (plane × cell) image per view, and back (docs/design.md#images).

A :class:`PixelMapPreset` is data: which views, how many columns and time bins, wires per
column, ticks per bin, the charge → pixel-value scale, and where the window is centred.
:func:`render` turns the hits of one event into a ``uint8`` array of shape (views, columns,
time bins); :func:`render_sparse` gives the same map as its non-zero pixels only (flat index and
value), which is what a stored or pixelised event needs:

- ``wires_per_column`` wires per column (1: one wire each); time bins of ``ticks_per_bin`` ticks;
- the window is placed per view around a given vertex (wire and tick per view, e.g. from
  :func:`vertex_pixels`) when the preset's ``centring`` is ``"vertex"``: the vertex sits at
  the fractions ``vertex_anchor`` of the window's wire and time ranges. Otherwise — or when no
  vertex is given — the window is centred on the charge-weighted centroid of the view's hits.
  An explicit window ``origin`` overrides both (used to invert a rendering exactly);
- pixel value = summed hit charge (ADC·tick) × ``charge_scale``, rounded up (so every pixel that
  received charge is non-zero) and saturating at 255.

Segmented detectors (``layout="plane-cell"``, hits with a ``plane`` column): per view a
(plane × cell) grid — one row per ``planes_per_row`` detector planes (2 when the views alternate:
row r of each view holds that view's plane among planes 2r and 2r + 1) and ``wires_per_column``
cells per column. Centring on a vertex works as above with (row, cell) coordinates; otherwise the
window starts at the event's first row (the same for every view, so the views stay aligned in z)
and is centred on the charge-weighted mean cell of each view.

The reverse, :func:`pixels_to_hits`: one hit per non-zero pixel — in pixel units (map index,
column, time bin, pixel value: how gnnu reads DUNE CVN's released maps) or, given the preset and
window origin that made the map, in detector units (wire, tick, ADC·tick) such that rendering
the hits again with that origin gives the same map bit for bit (:func:`pixel_hits_to_detector`
does the same for hits already in pixel units).

Presets (:data:`PRESETS`):

- ``dune-cvn`` (3 × 500 × 500, like the pixel maps released with DUNE CVN: 500 wires, 3200 ticks
  in 500 bins of 6.4 ticks, value = q·255/1000). In the released maps the activity starts a few
  wires into the window (the lowest non-zero wire is 1–5 in most views of the 20 sample events)
  and the vertex lies near the middle of the time range, so ``dune-cvn`` puts a given vertex at
  wire fraction 0.01 (column 5) and time fraction 0.5; the beam runs towards higher wire numbers
  in all three views.
- ``nova-cvn`` (2 × 100 × 80, NOvA CVN's two views of 100 planes × 80 cells, Aurisano et al.,
  JINST 11 (2016) P09001; value = PE·255/1000, our scale: a MIP's 30–80 PE become 8–21).
- ``resnet-rgb`` (3 × 224 × 224: the three wire planes as the R, G, B channels of an ImageNet-size
  picture for the transfer-learned ResNet18, Chappell & Whitehead, EPJ C 82 (2022) 1099). Each
  pixel is 2 × 2 ``dune-cvn`` pixels (2 wires × 12.8 ticks ≈ 0.95 cm × 1.02 cm, as isotropic as
  ``dune-cvn``'s 0.48 × 0.51 cm), so the window, 448 wires × 2867 ticks ≈ 2.1–2.15 m × 2.29 m, is
  90 % of ``dune-cvn``'s in each direction: whatever fits a ``dune-cvn`` map up to its last 10 %
  fits. Charge scale q·255/2000: a pixel gathers two wires, so a track deposits about twice a
  ``dune-cvn`` pixel's charge and keeps the same pixel value. Same vertex anchor as ``dune-cvn``.

Simplifications: a pixel's charge is the plain sum of its hits' integrals (no per-wire gain or
noise model); time is binned by the hit's peak time only (its width is not spread over bins);
hits outside the window are dropped, as in the released maps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping

import numpy as np

from .events import Hits
from .registry import Registry

#: Hit width (rms, in time bins) of a pixel turned into a hit: a uniform spread over one bin.
PIXEL_WIDTH_BINS = 1.0 / math.sqrt(12.0)


@dataclass(frozen=True)
class PixelMapPreset:
    """How hits become pixel maps. Times in ticks, charge in the hits' unit (ADC·tick or PE).

    ``layout="wire-time"`` uses ``n_wires`` columns of ``wires_per_column`` wires and
    ``n_time_bins`` bins of ``ticks_per_bin`` ticks; ``layout="plane-cell"`` (segmented
    detectors) uses ``n_planes`` rows of ``planes_per_row`` detector planes and ``n_cells``
    columns of ``wires_per_column`` cells.
    """

    name: str
    views: tuple[int, ...]           # view ids rendered, in output order
    n_wires: int = 0                 # columns
    n_time_bins: int = 0
    ticks_per_bin: float = 0.0
    charge_scale: float = 1.0        # pixel value per unit of summed hit charge
    centring: Literal["vertex", "centroid"] = "vertex"   # vertex when given, else centroid
    vertex_anchor: tuple[float, float] = (0.5, 0.5)      # vertex position (wire, time) — or
                                                         # (row, cell) — in the window, as
                                                         # fractions of its ranges
    layout: Literal["wire-time", "plane-cell"] = "wire-time"
    n_planes: int = 0                # plane-cell: rows
    n_cells: int = 0                 # plane-cell: columns
    planes_per_row: int = 2          # plane-cell: detector planes per row (2: views alternate)
    wires_per_column: int = 1        # wires (wire-time) or cells (plane-cell) per column

    def __post_init__(self):
        if self.layout == "wire-time":
            sizes, steps = (self.n_wires, self.n_time_bins), (self.ticks_per_bin,)
        else:
            sizes, steps = (self.n_planes, self.n_cells), (self.planes_per_row,)
        if not self.views or min(sizes) <= 0:
            raise ValueError(f"preset '{self.name}': needs views and positive sizes")
        if min(steps) <= 0 or self.charge_scale <= 0 or self.wires_per_column < 1:
            raise ValueError(f"preset '{self.name}': bin sizes, wires_per_column and charge_scale "
                             f"must be > 0")
        if not all(0 <= a <= 1 for a in self.vertex_anchor):
            raise ValueError(f"preset '{self.name}': vertex_anchor fractions must lie in [0, 1]")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(views, columns, time bins) — or (views, plane rows, cell columns) — of a map."""
        if self.layout == "plane-cell":
            return len(self.views), self.n_planes, self.n_cells
        return len(self.views), self.n_wires, self.n_time_bins

    @property
    def span(self) -> np.ndarray:
        """Extent of the window per view: (wires, ticks) — or (rows, cells) — float64 [2]."""
        if self.layout == "plane-cell":
            return np.array([self.n_planes, self.n_cells * self.wires_per_column], np.float64)
        return np.array([self.n_wires * self.wires_per_column, self.n_time_bins * self.ticks_per_bin])

    def frame_vertex(self) -> np.ndarray:
        """(wire, tick) [2] of the vertex in a wire-time map's own frame (window origin 0, hits
        as :func:`pixel_hits_to_detector` gives them): centring on it puts the window back at
        origin 0 (see :func:`window_origin`)."""
        anchor = np.asarray(self.vertex_anchor) * self.span
        return np.array([round(anchor[0]), anchor[1]], np.float64)


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

#: The three wire planes as RGB at 224 × 224: 2 × 2 dune-cvn pixels each (module docstring).
RESNET_RGB = PixelMapPreset("resnet-rgb", views=(0, 1, 2), n_wires=224, n_time_bins=224,
                            wires_per_column=2, ticks_per_bin=12.8, charge_scale=255.0 / 2000.0,
                            vertex_anchor=(0.01, 0.5))

#: Every preset by name; a new preset is one ``PRESETS.register(name, preset)`` line.
PRESETS: Registry[PixelMapPreset] = Registry("pixel-map preset")
for _preset in (DUNE_CVN, NOVA_CVN, RESNET_RGB):
    PRESETS.register(_preset.name, _preset)


def get_preset(preset: PixelMapPreset | str) -> PixelMapPreset:
    """A preset object from itself or its name; ValueError naming the known ones if unknown."""
    if isinstance(preset, PixelMapPreset):
        return preset
    if preset not in PRESETS:
        raise ValueError(PRESETS.unknown(preset))
    return PRESETS[preset]


# -- vertices ------------------------------------------------------------------------------------
def vertex_pixels(detector, vertices, preset: PixelMapPreset | str) -> np.ndarray:
    """Per event and rendered view the vertex in map coordinates, float64 [n, V, 2].

    ``vertices`` [n, 3]: (x, y, z) cm of the interaction (at t = 0), placed in each view by the
    detector (:meth:`gnnu.detectors.base.Detector.vertex_coordinates`). Wire-time layout (e.g.
    a LArTPC): (fractional wire = wire coordinate / pitch, tick = drift distance × ticks per cm).
    Plane-cell layout (segmented detector): (fractional row = plane / planes_per_row, fractional
    cell across the view's cells), plane p spanning [p, p + 1) and likewise cells. Rows of
    non-finite vertices are NaN (render them centred on the charge centroid).
    """
    p = get_preset(preset)
    v = np.asarray(vertices, np.float64).reshape(-1, 3)
    out = np.full((len(v), len(p.views), 2), np.nan)
    ok = np.isfinite(v).all(axis=1)
    for s, view in enumerate(p.views):
        first, second = np.asarray(detector.vertex_coordinates(v[ok], view), np.float64).T
        if p.layout == "plane-cell":            # rows of planes_per_row detector planes
            first = first / p.planes_per_row
        out[ok, s] = np.stack([first, second], axis=1)
    return out


def vertex_wire_tick(detector, vertex_cm, views=(0, 1, 2)) -> np.ndarray:
    """Per view the (wire, tick) of one point ``vertex_cm`` = (x, y, z) cm (interaction at t = 0).

    Wire is fractional (wire coordinate / pitch), tick = drift distance × ticks per cm.
    Returns float64 [len(views), 2] (:func:`vertex_pixels` for many vertices at once).
    """
    preset = PixelMapPreset("vertex", views=tuple(views), n_wires=1, n_time_bins=1, ticks_per_bin=1)
    return vertex_pixels(detector, [vertex_cm], preset)[0]


# -- hits → pixels -------------------------------------------------------------------------------
def _n_hits(hits: Hits | Mapping[str, np.ndarray]) -> int:
    return len(hits["view"])


def _rows(hits, p: PixelMapPreset) -> np.ndarray:
    """Plane row of each hit (plane-cell layout); ValueError if the hits have no plane column."""
    if "plane" not in hits:
        raise ValueError(f"preset '{p.name}' renders (plane, cell) maps: the hits need a "
                         f"'plane' column (a segmented detector's hits)")
    return np.asarray(hits["plane"]).astype(np.int64) // p.planes_per_row


def _slot_of(hits, p: PixelMapPreset) -> np.ndarray:
    """Output slot of each hit's view (−1 for views the preset does not render)."""
    view = np.asarray(hits["view"]).astype(np.int64)
    lut = np.full(max(max(p.views), int(view.max(initial=0))) + 1, -1, np.int64)
    lut[list(p.views)] = np.arange(len(p.views))
    return lut[view]


def window_origin(hits, preset: PixelMapPreset | str, vertex_pixel=None) -> np.ndarray:
    """Per rendered view the (first wire, first tick) — plane-cell layout: (first row, first
    cell) — of the window, float64 [V, 2].

    With a vertex (``vertex_pixel`` [V, 2] wire, tick — or row, cell — all finite) and
    ``centring == "vertex"``, the vertex sits at ``vertex_anchor`` of the window. Otherwise
    (wire-time) the window is centred on the charge-weighted centroid of the view's hits (a view
    without hits gets origin (0, 0)); (plane-cell) it starts at the first row of all rendered hits
    and is centred on the charge-weighted mean cell of each view.
    """
    p = get_preset(preset)
    plane_cell = p.layout == "plane-cell"
    span = p.span
    if p.centring == "vertex" and vertex_pixel is not None:
        vertex = np.asarray(vertex_pixel, np.float64).reshape(len(p.views), 2)
        if np.isfinite(vertex).all():
            first = np.floor(vertex[:, 0]) - round(p.vertex_anchor[0] * span[0])
            if plane_cell:
                return np.stack([first, np.floor(vertex[:, 1]) - round(p.vertex_anchor[1] * span[1])],
                                axis=1)
            return np.stack([first, vertex[:, 1] - p.vertex_anchor[1] * span[1]], axis=1)
    slot = _slot_of(hits, p)
    sel = slot >= 0
    q = np.asarray(hits["charge"], np.float64)[sel]
    wire = np.asarray(hits["wire"], np.float64)[sel]
    w = np.bincount(slot[sel], weights=q, minlength=len(p.views))
    cw = np.bincount(slot[sel], weights=q * wire, minlength=len(p.views))
    safe = np.where(w > 0, w, 1.0)
    if plane_cell:
        rows = _rows(hits, p)[sel]
        first_row = float(rows.min()) if len(rows) else 0.0
        centre = np.where(w > 0, cw / safe, 0.5 * span[1])
        return np.stack([np.full(len(p.views), first_row), np.round(centre) - int(span[1]) // 2],
                        axis=1)
    ct = np.bincount(slot[sel], weights=q * np.asarray(hits["time"], np.float64)[sel],
                     minlength=len(p.views))
    centre = np.where((w > 0)[:, None], np.stack([cw / safe, ct / safe], axis=1), 0.5 * span)
    return np.stack([np.round(centre[:, 0]) - int(span[0]) // 2, centre[:, 1] - 0.5 * span[1]],
                    axis=1)


def render_sparse(hits, preset: PixelMapPreset | str = "dune-cvn", vertex_pixel=None,
                  origin=None) -> tuple[np.ndarray, np.ndarray]:
    """The non-zero pixels of :func:`render`'s map: (flat index int64 [K] increasing into the
    map of shape ``preset.shape``, value uint8 [K] > 0). Same arguments as :func:`render`."""
    p = get_preset(preset)
    if _n_hits(hits) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint8)
    origin = (window_origin(hits, p, vertex_pixel) if origin is None
              else np.asarray(origin, np.float64).reshape(len(p.views), 2))
    slot = _slot_of(hits, p)
    s = np.maximum(slot, 0)
    _, size1, size2 = p.shape
    wire = np.asarray(hits["wire"]).astype(np.int64)
    if p.layout == "plane-cell":             # (plane row, cell column)
        i1 = _rows(hits, p) - origin[s, 0].astype(np.int64)
        i2 = (wire - origin[s, 1].astype(np.int64)) // p.wires_per_column
    else:                                    # (wire column, time bin)
        i1 = (wire - origin[s, 0].astype(np.int64)) // p.wires_per_column
        i2 = np.floor((np.asarray(hits["time"], np.float64) - origin[s, 1])
                      / p.ticks_per_bin).astype(np.int64)
    charge = np.maximum(np.asarray(hits["charge"], np.float64), 0.0)
    ok = (slot >= 0) & (i1 >= 0) & (i1 < size1) & (i2 >= 0) & (i2 < size2) & (charge > 0)
    flat = (slot[ok] * size1 + i1[ok]) * size2 + i2[ok]
    pixels, inverse = np.unique(flat, return_inverse=True)
    value = np.minimum(np.ceil(np.bincount(inverse, weights=charge[ok]) * p.charge_scale), 255)
    return pixels, value.astype(np.uint8)


def render(hits, preset: PixelMapPreset | str = "dune-cvn", vertex_pixel=None,
           origin=None) -> np.ndarray:
    """Hits of one event → pixel maps, uint8 [views, columns, time bins] (plane-cell layout:
    [views, plane rows, cell columns]).

    ``hits``: a :class:`gnnu.events.Hits` or a mapping of 1-D columns ``view``, ``wire``,
    ``time`` (ticks), ``charge`` (ADC·tick or PE), and ``plane`` for the plane-cell layout.
    ``vertex_pixel``: optional [V, 2] (wire, tick) — or (row, cell) — per rendered view, used
    when the preset centres on the vertex. ``origin``: optional [V, 2] window origin (first
    wire, first tick — or first row, first cell) that overrides the centring. Hits outside the
    window, and hits without positive charge, are not drawn.
    """
    p = get_preset(preset)
    out = np.zeros(p.shape, np.uint8)
    pixels, values = render_sparse(hits, p, vertex_pixel, origin)
    out.reshape(-1)[pixels] = values
    return out


# -- pixels → hits -------------------------------------------------------------------------------
def pixel_hits_to_detector(columns: Mapping[str, np.ndarray], preset: PixelMapPreset | str,
                           origin=None) -> dict[str, np.ndarray]:
    """Hits in pixel units (``view`` = map index, ``wire`` = column, ``time`` = bin,
    ``charge`` = pixel value) → columns in the detector units of the wire-time ``preset`` whose
    window started at ``origin`` ([V, 2] first wire, first tick; default 0).

    ``view`` = the preset's view id; ``wire`` = origin + column × wires_per_column + the middle
    wire of the column; ``time`` = the bin centre in ticks; ``charge`` = (value − ½) /
    charge_scale, the middle of the charges that round up to the value (so rendering again
    gives the value back); ``width`` = ticks_per_bin / √12 ticks. Returns int8/int32/float32
    columns ``view``, ``wire``, ``time``, ``charge``, ``width``.
    """
    p = get_preset(preset)
    if p.layout != "wire-time":
        raise ValueError(f"preset '{p.name}': only wire-time maps turn back into hits")
    o = np.zeros((len(p.views), 2)) if origin is None else np.asarray(origin, np.float64).reshape(-1, 2)
    slot = np.asarray(columns["view"]).astype(np.int64)
    column = np.asarray(columns["wire"]).astype(np.int64)
    bins = np.asarray(columns["time"], np.float64)
    wpc = p.wires_per_column
    return {
        "view": np.asarray(p.views, np.int8)[slot],
        "wire": (o[slot, 0].astype(np.int64) + column * wpc + (wpc - 1) // 2).astype(np.int32),
        "time": (o[slot, 1] + (bins + 0.5) * p.ticks_per_bin).astype(np.float32),
        "charge": ((np.asarray(columns["charge"], np.float64) - 0.5) / p.charge_scale).astype(np.float32),
        "width": np.full(len(slot), p.ticks_per_bin * PIXEL_WIDTH_BINS, np.float32),
    }


def sparse_to_hits(pixels: np.ndarray, values: np.ndarray, shape: tuple[int, int, int],
                   preset: PixelMapPreset | str | None = None, origin=None) -> Hits:
    """Hits of the non-zero pixels (flat ``pixels`` into a map of ``shape``, their ``values``);
    see :func:`pixels_to_hits` for the units."""
    slot, column, bins = np.unravel_index(np.asarray(pixels, np.int64), shape)
    cols = {"view": slot.astype(np.int8), "wire": column.astype(np.int32),
            "time": bins.astype(np.float32), "charge": np.asarray(values).astype(np.float32),
            "width": np.full(len(slot), PIXEL_WIDTH_BINS, np.float32)}
    if preset is not None:
        cols = pixel_hits_to_detector(cols, preset, origin)
    return Hits(cols)


def pixels_to_hits(maps: np.ndarray, preset: PixelMapPreset | str | None = None,
                   origin=None) -> Hits:
    """One hit per non-zero pixel of ``maps`` [V, W, T] (uint8 values, or any real dtype),
    ordered by (view, column, time bin).

    Without ``preset``: pixel units — ``view`` (int8, map index), ``wire`` (int32, column),
    ``time`` (float32, time-bin index), ``charge`` (float32, pixel value), ``width`` (float32,
    :data:`PIXEL_WIDTH_BINS` bins). With the wire-time ``preset`` (and window ``origin`` [V, 2],
    default 0) that made the map: detector units (:func:`pixel_hits_to_detector`), and
    ``render(pixels_to_hits(m, p, o), p, origin=o)`` equals ``m``. ValueError for a map that is
    not 3-D or holds non-finite or negative values.
    """
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise ValueError(f"pixel maps must have shape (views, wires, time bins), got {maps.shape}")
    if maps.dtype.kind == "f" and not np.all(np.isfinite(maps)):
        raise ValueError("pixel maps hold non-finite values")
    if maps.dtype.kind in "fi" and np.any(maps < 0):
        raise ValueError("pixel maps hold negative values")
    flat = maps.reshape(-1)
    idx = np.flatnonzero(flat)
    return sparse_to_hits(idx, flat[idx], maps.shape, preset, origin)
