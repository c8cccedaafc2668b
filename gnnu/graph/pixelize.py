"""Pixelising events before their graphs are built (graph configs with ``pixelize``): each event is
rendered with a wire-time pixel-map preset around its truth vertex and becomes one hit per
non-zero pixel, in the units of DUNE CVN's released maps (column, time bin, pixel value), so
simulated events get exactly the representation of the real ones (:mod:`gnnu.io.dune_cvn`).

A source that already is the preset's pixel maps (``gnnu-build --format dune-cvn``: DUNE CVN's
released events) passes unchanged (:func:`is_pixel_maps`), so one graph config — the one a
checkpoint records — builds simulated and real events alike.

Simplifications: pixelising keeps no per-hit truth (x, y, z, particle); an event whose hits are
all outside the window becomes empty (and is counted as such by the graph builder).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..events import Event
from ..io.dune_cvn import PixelMapGeometry
from ..pixelmap import PixelMapPreset, get_preset, render_sparse, sparse_to_hits, vertex_pixels


def pixel_geometry(detector, preset: PixelMapPreset | str):
    """The geometry of ``preset``'s maps cut from ``detector`` (a LArTPC geometry object):
    :class:`gnnu.io.dune_cvn.PixelMapGeometry`; ConfigError if the two do not fit (a source that
    is already pixel maps, a segmented detector, a preset with several wires per column)."""
    if isinstance(detector, PixelMapGeometry):
        raise ConfigError(f"pixelize: the source '{detector.name}' is pixel maps already")
    return PixelMapGeometry(detector, get_preset(preset).name)


def is_pixel_maps(detector, preset: PixelMapPreset | str) -> bool:
    """Whether ``detector`` is the geometry of ``preset``'s pixel maps already (a DUNE CVN
    source): its events need no pixelising."""
    own = getattr(detector, "preset", None)
    return (getattr(detector, "kind", None) == "pixelmap" and own is not None
            and own.name == get_preset(preset).name)


def _renderable(hits, n_views: int) -> bool:
    view = hits["view"]
    return bool(np.all((view >= 0) & (view < n_views)) and np.isfinite(hits["time"]).all()
                and np.isfinite(hits["charge"]).all())


def pixelize_events(events: list[Event], detector, preset: PixelMapPreset | str
                    ) -> tuple[list[Event], object]:
    """Render each event with ``preset`` (centred on its truth vertex, or its charge centroid
    where the vertex is not finite) and turn the map back into pixel hits (one per non-zero
    pixel, pixel units: see the module docstring). Returns (events, their pixel-map geometry).

    Events with view ids outside the detector or non-finite times or charges are returned
    unchanged, so the graph builder's checks reject them with their reason.
    """
    p = get_preset(preset)
    if is_pixel_maps(detector, p):
        return list(events), detector
    geometry = pixel_geometry(detector, p)
    vertices = np.array([[e.truth.vtx_x, e.truth.vtx_y, e.truth.vtx_z] for e in events],
                        np.float64).reshape(-1, 3)
    vertex = vertex_pixels(detector, vertices, p)
    out = []
    for ev, vtx in zip(events, vertex):
        if not _renderable(ev.hits, len(detector.views)):
            out.append(ev)
            continue
        pixels, values = render_sparse(ev.hits, p, vtx if np.isfinite(vtx).all() else None)
        out.append(Event(ev.event_id, ev.truth, sparse_to_hits(pixels, values, p.shape)))
    return out, geometry
