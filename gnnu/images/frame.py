"""Which units a dataset's stored hits are in: detector hits or map pixels.

Two kinds of hits reach the image side:

- *detector hits* (gnnu simulation, NuML files): ``wire`` a wire (or cell) number, ``time`` in
  ticks (or ns), ``charge`` in ADC·tick (or PE), vertex from the truth in cm;
- *pixel hits*: one hit per non-zero pixel of a wire-time map (DUNE CVN's released events, or
  simulated events put through a preset with :func:`gnnu.graph.pixelize.pixelize_events`): ``wire`` = column,
  ``time`` = time bin, ``charge`` = pixel value, in the frame of the map (window origin 0), with
  the geometry :class:`gnnu.io.dune_cvn.PixelMapGeometry`.

:class:`HitFrame` (built from a graph dataset's manifest) turns the hits a dataset stores into
detector units for :func:`gnnu.pixelmap.render`, and gives each event's vertex in map
coordinates for vertex centring. Pixel hits carry their vertex implicitly: the map that made them
was centred on it, so it sits at the map preset's anchor (:meth:`PixelMapPreset.frame_vertex`;
for DUNE CVN's released maps this is the documented column-5, mid-time convention, not a
measured vertex). Detector hits use the truth vertex stored with the labels (simulation truth: an
analysis of real data would put a reconstructed vertex there); a missing vertex means centroid
centring for that event.

"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..detectors import detector_from_dict
from ..pixelmap import PixelMapPreset, get_preset, pixel_hits_to_detector, vertex_pixels
from .layouts import IMAGE_LAYOUTS, ImageLayout


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
    def layout(self) -> ImageLayout | None:
        """How these hits become pixel maps: :data:`gnnu.images.layouts.IMAGE_LAYOUTS` of the
        detector's kind, or None where that kind has none; pixel hits: their preset's layout;
        a detector the manifest does not record: wire-time (its hits have no plane)."""
        if self.map_preset is not None:
            return ImageLayout(self.map_preset.layout, f"pixel maps of preset {self.map_preset.name}")
        if self.detector is None:
            return ImageLayout("wire-time", "hits of a detector the manifest does not record")
        return IMAGE_LAYOUTS.get(self.detector.kind)

    def axis_labels(self, view: int) -> tuple[str, str]:
        """Axis titles of a view's node positions (the detector's; wire/drift where unknown)."""
        if self.detector is None:
            return "wire coordinate (cm)", "drift coordinate (cm)"
        return self.detector.axis_labels(view)

    def columns(self, view: np.ndarray, hit: np.ndarray) -> Mapping[str, np.ndarray]:
        """Render columns (``view``, ``wire``, ``time`` in ticks or ns, ``charge``, and ``plane``
        where the detector's positions need it) from a stored ``view`` [N] and ``hit`` [N, 4]
        (wire, time, charge, plane or −1) table."""
        cols = {"view": view, "wire": hit[:, 0], "time": hit[:, 1], "charge": hit[:, 2]}
        if self.map_preset is not None:
            return pixel_hits_to_detector(cols, self.map_preset)
        if self.detector is not None and "plane" in self.detector.position_columns:
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
