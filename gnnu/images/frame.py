"""Which units hits are in, and moving events between detector hits and map pixels.

Two kinds of hits reach the image side:

- *detector hits* (gnnu simulation, NuML files): ``wire`` a wire (or cell) number, ``time`` in
  ticks (or ns), ``charge`` in ADC·tick (or PE), vertex from the truth in cm;
- *pixel hits*: one hit per non-zero pixel of a wire-time map (DUNE CVN's released events, or
  simulated events put through a preset with :func:`pixelize_events`): ``wire`` = column,
  ``time`` = time bin, ``charge`` = pixel value, in the frame of the map (window origin 0), with
  the geometry :class:`gnnu.io.dune_cvn.PixelMapGeometry`.

:class:`HitFrame` (built from a graph dataset's manifest) turns the hits a dataset stores into
detector units for :func:`gnnu.images.pixelmap.render`, and gives each event's vertex in map
coordinates for vertex centring. Pixel hits carry their vertex implicitly: the map that made them
was centred on it, so it sits at the map preset's anchor (:meth:`PixelMapPreset.frame_vertex`;
for DUNE CVN's released maps this is the documented column-5, mid-time convention, not a
measured vertex). Detector hits use the truth vertex stored with the labels (simulation truth: an
analysis of real data would put a reconstructed vertex there); a missing vertex means centroid
centring for that event.

Simplifications: pixelising keeps no per-hit truth (x, y, z, particle); an event whose hits are
all outside the window becomes empty (and is counted as such by the graph builder).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..detectors import detector_from_dict
from ..errors import ConfigError
from ..events import Event
from .pixelmap import (PixelMapPreset, get_preset, pixel_hits_to_detector, render_sparse,
                       sparse_to_hits, vertex_pixels)


def pixel_geometry(detector, preset: PixelMapPreset | str):
    """The geometry of ``preset``'s maps cut from ``detector`` (a LArTPC geometry object):
    :class:`gnnu.io.dune_cvn.PixelMapGeometry`; ConfigError if the two do not fit (a source that
    is already pixel maps, a segmented detector, a preset with several wires per column)."""
    from ..io.dune_cvn import PixelMapGeometry

    if getattr(detector, "kind", None) == "pixelmap":
        raise ConfigError(f"pixelize: the source '{detector.name}' is pixel maps already")
    return PixelMapGeometry(detector, get_preset(preset).name)


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


@dataclass(frozen=True)
class HitFrame:
    """How a dataset's stored hits become detector units (module docstring).

    ``detector``: the geometry of detector hits (for truth vertex → map coordinates), or None
    where unknown; ``map_preset``: set when the stored hits are pixel hits of this preset's maps.
    ``view_names``: the dataset's view names, by view id.
    """

    detector: object | None
    map_preset: PixelMapPreset | None
    view_names: tuple[str, ...]

    @classmethod
    def from_manifest(cls, manifest: dict) -> "HitFrame":
        """The frame of a graph dataset from its manifest's ``detector`` record."""
        record = manifest.get("detector", {})
        config = record.get("config")
        names = tuple(record.get("views", ()))
        if isinstance(config, dict) and config.get("kind") == "pixelmap":
            return cls(None, get_preset(config.get("preset", "dune-cvn")), names)
        detector = detector_from_dict(config, "manifest detector") if isinstance(config, dict) else None
        return cls(detector, None, names)

    @property
    def needs_plane(self) -> bool:
        return bool(getattr(self.detector, "needs_plane", False))

    def columns(self, view: np.ndarray, hit: np.ndarray) -> Mapping[str, np.ndarray]:
        """Render columns (``view``, ``wire``, ``time`` in ticks or ns, ``charge``, and ``plane``
        for segmented detectors) from a stored ``view`` [N] and ``hit`` [N, 4] (wire, time,
        charge, plane or −1) table."""
        cols = {"view": view, "wire": hit[:, 0], "time": hit[:, 1], "charge": hit[:, 2]}
        if self.map_preset is not None:
            return pixel_hits_to_detector(cols, self.map_preset)
        if self.needs_plane:
            cols["plane"] = hit[:, 3]
        return cols

    def vertex_pixels(self, labels: Mapping[str, np.ndarray], preset: PixelMapPreset) -> np.ndarray:
        """[n, V, 2] vertex of each event in ``preset``'s map coordinates (NaN: none known)."""
        n = len(labels["vtx_x"])
        if self.map_preset is not None:
            return np.broadcast_to(self.map_preset.frame_vertex(), (n, len(preset.views), 2)).copy()
        if self.detector is None:
            return np.full((n, len(preset.views), 2), np.nan)
        vertices = np.stack([labels["vtx_x"], labels["vtx_y"], labels["vtx_z"]], axis=1)
        return vertex_pixels(self.detector, vertices, preset)
