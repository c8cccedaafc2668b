"""Toy pixel-pad TPC: one view, the anode plane x = 0 tiled with square pads (cm, µs).

A hit is a pad: ``wire`` = pad column along z, ``plane`` = pad row along y, ``time`` = drift time
(µs) of the earliest charge. The hit's position in its view is the pad centre (z, y), so the
positions need the ``plane`` column and time is not a position coordinate. Physics sections
(material, beam, visibility, transport) are the same dataclasses every gnnu detector uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from gnnu.detectors import DetectorBase, register_detector
from gnnu.detectors.common import Beam, Material, Transport, Visibility
from gnnu.detectors.lartpc import Box


@dataclass(frozen=True)
class PadTPCConfig:
    """The toy detector's YAML: the shared physics sections plus its pads and drift."""

    name: str
    kind: Literal["toypad"]
    description: str
    material: Material
    active_volume: Box
    fiducial_margin_cm: float
    pad_pitch_cm: float
    drift_velocity_cm_per_us: float
    threshold_mev: float
    beam: Beam
    visibility: Visibility
    transport: Transport


@register_detector(PadTPCConfig)
class PadTPC(DetectorBase):
    kind = "toypad"
    time_unit = "us"
    charge_unit = "MeV"
    position_columns = ("plane",)
    hit_marker = ("s", 3)

    def __init__(self, config: PadTPCConfig):
        self.config = config
        self.name = config.name
        self.material = config.material
        self.views = ("ZY",)
        box = config.active_volume
        self.n_columns = int(np.ceil((box.z[1] - box.z[0]) / config.pad_pitch_cm))
        self.n_rows = int(np.ceil((box.y[1] - box.y[0]) / config.pad_pitch_cm))

    def pad_of(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(column, row) int64 of the pad under each point ``pos`` [n, 3] cm."""
        box, pitch = self.config.active_volume, self.config.pad_pitch_cm
        return (np.floor((pos[:, 2] - box.z[0]) / pitch).astype(np.int64),
                np.floor((pos[:, 1] - box.y[0]) / pitch).astype(np.int64))

    def hit_positions(self, view, wire, time, plane=None) -> np.ndarray:
        """[N, 2] float32 (z, y) cm of the pad centres."""
        if plane is None:
            raise ValueError("toy pads need the hits' plane (row) column")
        box, pitch = self.config.active_volume, self.config.pad_pitch_cm
        z = box.z[0] + (np.asarray(wire, np.float64) + 0.5) * pitch
        y = box.y[0] + (np.asarray(plane, np.float64) + 0.5) * pitch
        return np.stack([z, y], axis=-1).astype(np.float32)

    def drift_scale(self) -> None:
        return None

    def axis_labels(self, view: int) -> tuple[str, str]:
        return "z (cm), pad columns", "y (cm), pad rows"

    def vertex_coordinates(self, vertices: np.ndarray, view: int) -> np.ndarray:
        box, pitch = self.config.active_volume, self.config.pad_pitch_cm
        v = np.asarray(vertices, np.float64).reshape(-1, 3)
        return np.stack([(v[:, 2] - box.z[0]) / pitch, (v[:, 1] - box.y[0]) / pitch], axis=1)
