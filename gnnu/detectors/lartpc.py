"""DUNE-far-detector-like liquid-argon TPC: geometry and readout as data.

Coordinates (cm): ``x`` is the drift coordinate (anode wire planes at ``anode_x_cm``, electrons
drift towards decreasing x), ``y`` is vertical, ``z`` is along the beam. Each wire plane is
described by the angle of its wires from the vertical (y axis) in the y–z plane and its pitch;
a hit's wire number is the index along the pitch direction across the active volume.

Simplifications (documented, deliberate): one drift volume with continuous wire planes
(no APA gaps, no wrapped induction wires, no plane-to-plane x offsets); induction planes are read
as unipolar pulses with their own gain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .base import DetectorBase, register_detector
from .common import Beam, Material, Transport, Visibility


@dataclass(frozen=True)
class Box:
    """Axis-aligned box, cm."""

    x: tuple[float, float]
    y: tuple[float, float]
    z: tuple[float, float]

    def __post_init__(self):
        for name in "xyz":
            lo, hi = getattr(self, name)
            if not lo < hi:
                raise ValueError(f"box {name} range must have min < max, got {(lo, hi)}")

    def contains(self, pos: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Boolean mask of points ``pos`` [N, 3] (cm) inside the box shrunk by ``margin``."""
        pos = np.asarray(pos)
        lo = np.array([self.x[0], self.y[0], self.z[0]]) + margin
        hi = np.array([self.x[1], self.y[1], self.z[1]]) - margin
        return np.all((pos >= lo) & (pos <= hi), axis=-1)

    @property
    def lo(self) -> np.ndarray:
        return np.array([self.x[0], self.y[0], self.z[0]])

    @property
    def hi(self) -> np.ndarray:
        return np.array([self.x[1], self.y[1], self.z[1]])


@dataclass(frozen=True)
class WirePlane:
    """One readout plane. ``angle_deg``: wire direction from vertical; pitch in cm."""

    name: str
    angle_deg: float
    pitch_cm: float
    kind: Literal["induction", "collection"]
    adc_per_electron: float          # hit-integral gain, ADC·tick per drifted electron

    def __post_init__(self):
        if not (self.pitch_cm > 0 and self.adc_per_electron > 0):   # also refuses NaN
            raise ValueError(f"plane {self.name}: pitch_cm and adc_per_electron must be > 0, got "
                             f"{self.pitch_cm} and {self.adc_per_electron}")


@dataclass(frozen=True)
class Recombination:
    """Modified Box model (ArgoNeuT): R = ln(A + ξ)/ξ, ξ = B·(dE/dx)/(ρ·E)."""

    A: float = 0.93
    B: float = 0.212                 # (kV/cm)(g/cm²)/MeV
    point_dedx_mev_per_cm: float = 4.0   # dE/dx of point deposits (dx = 0): stopping e±, blips


@dataclass(frozen=True)
class Radiologicals:
    """Radiological blips: rate per kg of argon, β endpoint (MeV)."""

    enabled: bool = True
    rate_bq_per_kg: float = 1.01     # Ar-39
    endpoint_mev: float = 0.565
    roi_margin_cm: float = 30.0      # simulated in the event's region of interest ± margin


@dataclass(frozen=True)
class Electronics:
    """Pulse shaping, noise and hit finding (times in µs, charge in electrons or ADC)."""

    shaping_us: float = 1.0                  # rms of the shaped pulse
    noise_electrons: float = 800.0           # equivalent noise charge on a hit integral
    hit_threshold_electrons: float = 7000.0  # on the hit integral
    noise_hits: bool = True
    noise_hit_rate_per_wire: float = 0.001   # fake hits per wire per readout window
    pulse_merge_widths: float = 2.0          # charge closer in time than this many pulse rms merges
    long_pulse_ticks: float = 16.0           # long pulse trains are split into hits this long


@dataclass(frozen=True)
class LArTPCConfig:
    """Full LArTPC detector description (all numbers from the YAML)."""

    name: str
    kind: Literal["lartpc"]
    description: str
    material: Material
    active_volume: Box
    fiducial_margin_cm: float
    anode_x_cm: float
    planes: tuple[WirePlane, ...]
    efield_kv_per_cm: float
    drift_velocity_cm_per_us: float
    tick_us: float
    readout_ticks: int
    electron_lifetime_ms: float
    w_ion_ev: float
    recombination: Recombination
    diffusion_longitudinal_cm2_per_s: float
    diffusion_transverse_cm2_per_s: float
    electronics: Electronics
    radiologicals: Radiologicals
    beam: Beam
    visibility: Visibility
    transport: Transport

    def __post_init__(self):
        positive = {"drift_velocity_cm_per_us": self.drift_velocity_cm_per_us,
                    "tick_us": self.tick_us, "readout_ticks": self.readout_ticks,
                    "electron_lifetime_ms": self.electron_lifetime_ms, "w_ion_ev": self.w_ion_ev,
                    "efield_kv_per_cm": self.efield_kv_per_cm}
        bad = [f"{k} = {v}" for k, v in positive.items() if not v > 0]
        if bad:
            raise ValueError(f"must be > 0: {', '.join(bad)}")
        if not self.planes:
            raise ValueError("at least one wire plane is needed")


@register_detector(LArTPCConfig)
class LArTPC(DetectorBase):
    """Geometry helper over a :class:`LArTPCConfig` (vectorised, units cm / ticks); a
    :class:`~gnnu.detectors.base.Detector`."""

    kind = "lartpc"
    time_unit = "tick"
    charge_unit = "ADC·tick"

    def __init__(self, config: LArTPCConfig):
        self.config = config
        self.name = config.name
        self.material = config.material
        self.views = tuple(p.name for p in config.planes)
        corners_y = np.array(config.active_volume.y)
        corners_z = np.array(config.active_volume.z)
        yy, zz = np.meshgrid(corners_y, corners_z)
        self._wmin = []
        self._nwires = []
        for p in config.planes:
            w = self._coord(p, yy.ravel(), zz.ravel())
            self._wmin.append(float(w.min()))
            self._nwires.append(int(math.ceil((w.max() - w.min()) / p.pitch_cm)))
        # [planes, 4]: cos and sin of each plane's wire angle, its first wire's coordinate and
        # its pitch (cm): wire = ⌊(z·cos + y·sin − first) / pitch⌋, as wire_index computes it
        self.wire_geometry = np.array(
            [[math.cos(math.radians(p.angle_deg)), math.sin(math.radians(p.angle_deg)), w0,
              p.pitch_cm] for p, w0 in zip(config.planes, self._wmin)])
        self.n_wires_per_plane = np.array(self._nwires)
        # offset of each plane's wires in one numbering of all wires (the readout's groups)
        self.group_offset = np.concatenate([[0], np.cumsum(self._nwires)[:-1]]).astype(np.int64)

    @staticmethod
    def _coord(plane: WirePlane, y, z):
        a = math.radians(plane.angle_deg)
        return np.asarray(z) * math.cos(a) + np.asarray(y) * math.sin(a)

    def n_wires(self, view: int) -> int:
        """Number of wires in plane ``view``."""
        return self._nwires[view]

    def wire_coordinate(self, view: int, y, z) -> np.ndarray:
        """Distance (cm) along plane ``view``'s pitch direction from its first wire."""
        return self._coord(self.config.planes[view], y, z) - self._wmin[view]

    def wire_index(self, view: int, y, z) -> np.ndarray:
        """Wire number (int32) hit at (y, z) cm in plane ``view``; may fall outside [0, n)."""
        pitch = self.config.planes[view].pitch_cm
        return np.floor(self.wire_coordinate(view, y, z) / pitch).astype(np.int32)

    @property
    def ticks_per_cm(self) -> float:
        """Drift ticks per cm of drift distance."""
        return 1.0 / (self.config.drift_velocity_cm_per_us * self.config.tick_us)

    def drift_distance(self, x) -> np.ndarray:
        """Drift distance (cm) from x to the anode."""
        return np.abs(np.asarray(x) - self.config.anode_x_cm)

    def hit_positions(self, view, wire, time) -> np.ndarray:
        """2-D hit coordinates in cm: (wire × pitch, time × tick × drift velocity) → [N, 2]."""
        view = np.asarray(view)
        pitch = np.array([p.pitch_cm for p in self.config.planes], dtype=np.float32)[view]
        cm_per_tick = self.config.drift_velocity_cm_per_us * self.config.tick_us
        return np.stack([np.asarray(wire, np.float32) * pitch,
                         np.asarray(time, np.float32) * np.float32(cm_per_tick)], axis=1)

    @property
    def wire_pitch_cm(self) -> np.ndarray:
        """[V] float32 wire pitch of each plane, cm."""
        return np.array([p.pitch_cm for p in self.config.planes], np.float32)

    def drift_cm(self, ticks: float) -> float:
        """Drift distance (cm) of a duration of ``ticks`` ticks: ticks × tick length × drift
        velocity (:class:`~gnnu.detectors.base.WirePlanes`)."""
        return ticks * self.config.tick_us * self.config.drift_velocity_cm_per_us

    def vertex_coordinates(self, vertices: np.ndarray, view: int) -> np.ndarray:
        """[n, 2] (fractional wire = wire coordinate / pitch, tick = drift distance × ticks per
        cm) of the points ``vertices`` [n, 3] cm in plane ``view`` (interaction at t = 0)."""
        x, y, z = np.asarray(vertices, np.float64).reshape(-1, 3).T
        pitch = self.config.planes[view].pitch_cm
        wire = np.asarray(self.wire_coordinate(view, y, z), np.float64) / pitch
        tick = np.asarray(self.drift_distance(x), np.float64) * self.ticks_per_cm
        return np.stack([wire, tick], axis=1)
