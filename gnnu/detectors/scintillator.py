"""NOvA-like segmented liquid-scintillator detector: geometry, readout and cosmics as data.

Coordinates (cm): ``z`` along the beam, ``y`` vertical (up), ``x`` horizontal across the beam.
The detector is a stack of ``n_planes`` planes along z, each ``plane_pitch_cm`` thick; a plane
holds ``n_cells`` cells side by side at ``cell_pitch_cm``. Views alternate plane by plane
(plane p has view ``(p + first_plane_view) % 2``):

- view 0, "XZ": vertical cells (running along y) that measure x;
- view 1, "YZ": horizontal cells (running along x) that measure y.

A cell is a PVC tube whose scintillator interior is ``cell_width_cm`` across and
``cell_depth_cm`` along the beam, centred in its pitch × pitch slot; the rest of the slot is PVC
wall (dead). Every cell spans the whole plane (length = n_cells × cell_pitch) and is read out at
one end (``readout_end`` of its view: the low or high end of its coordinate), where the looped
wavelength-shifting fibre leaves the cell.

Hits carry ``view``, ``wire`` (= cell number), ``plane`` and ``time`` (ns):
:meth:`Scintillator.hit_positions` maps them to (z of the plane centre, transverse coordinate of
the cell centre) in cm and needs the plane — unlike the LArTPC, a cell number alone does not
say where along the beam a hit is.

Simplifications (deliberate, documented): planes and cells are perfectly regular (no module
gaps, no block boundaries, no plane-to-plane offsets); the walls are a uniform PVC shell; the
particle transport sees a homogeneous PVC + scintillator mixture (``material``), and the readout
decides afterwards whether a deposit lies in a cell's scintillator (:mod:`gnnu.sim.scint_readout`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .base import DetectorBase, register_detector
from .common import Beam, Material, Transport, Visibility
from .lartpc import Box

#: Muon mass (GeV/c², PDG): the lowest total energy a cosmic muon can have.
MUON_MASS_GEV = 0.1056583755
#: What each view measures (coordinate index) and along which axis its cells run.
VIEW_MEASURES = (0, 1)          # view 0 (XZ) measures x, view 1 (YZ) measures y
VIEW_ALONG = (1, 0)             # view 0 cells run along y, view 1 cells along x


@dataclass(frozen=True)
class Segmentation:
    """Planes and cells (cm). ``cell_width_cm``/``cell_depth_cm``: scintillator interior of a cell
    across / along the beam; the pitches include the PVC walls."""

    n_planes: int
    n_cells: int
    plane_pitch_cm: float
    cell_pitch_cm: float
    cell_width_cm: float
    cell_depth_cm: float
    first_plane_view: int = 0

    def __post_init__(self):
        if self.n_planes < 1 or self.n_cells < 1:
            raise ValueError("segmentation: n_planes and n_cells must be ≥ 1")
        if not 0 < self.cell_width_cm <= self.cell_pitch_cm:
            raise ValueError("segmentation: need 0 < cell_width_cm ≤ cell_pitch_cm")
        if not 0 < self.cell_depth_cm <= self.plane_pitch_cm:
            raise ValueError("segmentation: need 0 < cell_depth_cm ≤ plane_pitch_cm")
        if self.first_plane_view not in (0, 1):
            raise ValueError("segmentation.first_plane_view must be 0 or 1")

    @property
    def scintillator_volume_fraction(self) -> float:
        """Fraction of the detector volume filled with scintillator (the rest is PVC)."""
        return ((self.cell_width_cm * self.cell_depth_cm)
                / (self.cell_pitch_cm * self.plane_pitch_cm))


@dataclass(frozen=True)
class ScintView:
    """One view: its name and the end of its cells that is read out (``low``: the end at the
    smallest coordinate along the cell, ``high``: the largest)."""

    name: str
    readout_end: Literal["low", "high"]


@dataclass(frozen=True)
class ScintReadout:
    """Light production, collection and digitisation (units in the names).

    - ``scintillator_density_g_cm3``, ``scintillator_z_over_a``: the liquid scintillator itself;
      a deposit computed in the transport mixture is scaled by the electron-density ratio
      (ρ·Z/A)_scint / (ρ·Z/A)_mixture to the energy the scintillator receives.
    - ``light_yield_pe_per_mev``: photoelectrons per MeV of Birks-quenched energy deposited at the
      readout end of a cell (distance 0); ``attenuation_lengths_cm`` / ``attenuation_weights``: the
      fibre's multi-exponential attenuation; with ``looped_fibre`` the light also reaches the
      readout through the far end of the loop (path 2L − d). Law in
      :func:`gnnu.sim.scint_readout.attenuation`.
    - ``fibre_light_speed_cm_per_ns``: signal speed along the fibre (delay = d / speed).
    - ``point_dedx_mev_per_cm``: dE/dx used for Birks quenching of point deposits (dx = 0).
    - ``noise_pe``: Gaussian electronics noise (rms, PE) on a hit; ``adc_per_pe``: digitiser
      scale (charge is quantised to 1/adc_per_pe PE); ``threshold_pe``: hits below are dropped.
    - ``time_resolution_ns``: Gaussian smearing of a hit time; ``hit_merge_ns``: light arriving
      in a cell within this gap of the previous arrival belongs to the same hit;
      ``readout_window_ns``: [start, end) of kept hit times (the interaction is at t = 0).
    """

    scintillator_density_g_cm3: float
    scintillator_z_over_a: float
    light_yield_pe_per_mev: float
    attenuation_lengths_cm: tuple[float, ...]
    attenuation_weights: tuple[float, ...]
    fibre_light_speed_cm_per_ns: float
    point_dedx_mev_per_cm: float
    noise_pe: float
    adc_per_pe: float
    threshold_pe: float
    time_resolution_ns: float
    hit_merge_ns: float
    readout_window_ns: tuple[float, float]
    looped_fibre: bool = True

    def __post_init__(self):
        if len(self.attenuation_lengths_cm) != len(self.attenuation_weights) or not \
                self.attenuation_lengths_cm:
            raise ValueError("readout: attenuation_lengths_cm and attenuation_weights need the "
                             "same (non-zero) length")
        if min(self.attenuation_lengths_cm) <= 0 or min(self.attenuation_weights) < 0 or \
                sum(self.attenuation_weights) <= 0:
            raise ValueError("readout: attenuation lengths must be > 0, weights ≥ 0 (sum > 0)")
        positive = (self.scintillator_density_g_cm3, self.scintillator_z_over_a,
                    self.light_yield_pe_per_mev, self.fibre_light_speed_cm_per_ns,
                    self.point_dedx_mev_per_cm, self.adc_per_pe, self.hit_merge_ns)
        if min(positive) <= 0:
            raise ValueError("readout: densities, yields, speeds, scales and gaps must be > 0")
        if min(self.noise_pe, self.threshold_pe, self.time_resolution_ns) < 0:
            raise ValueError("readout: noise, threshold and time resolution must be ≥ 0")
        if not self.readout_window_ns[0] < self.readout_window_ns[1]:
            raise ValueError("readout.readout_window_ns needs start < end")


@dataclass(frozen=True)
class Cosmics:
    """Cosmic-ray muons (:mod:`gnnu.sim.cosmics`; energies GeV, angles degrees).

    Directions follow I(θ) ∝ cos²θ per solid angle up to ``max_zenith_deg``; muons enter through
    any face of the active volume (``entry: box``, the rate through each face ∝ its projected
    area) or through the top face only (``entry: top``). Total energies in [``e_min_gev``,
    ``e_max_gev``] follow the sea-level spectrum at the drawn zenith angle; μ+/μ− =
    ``charge_ratio``. With ``shower_probability`` a muon radiates one hard photon of at least
    ``shower_min_energy_gev`` inside the detector. ``overlay_mean``: Poisson mean number of
    cosmic muons overlaid on each neutrino event (uniform in the readout window; 0 = off).
    """

    entry: Literal["box", "top"] = "box"
    max_zenith_deg: float = 89.0
    e_min_gev: float = 0.5
    e_max_gev: float = 100.0
    charge_ratio: float = 1.25
    shower_probability: float = 0.05
    shower_min_energy_gev: float = 0.2
    overlay_mean: float = 0.0

    def __post_init__(self):
        if not 0 < self.max_zenith_deg <= 90:
            raise ValueError("cosmics.max_zenith_deg must lie in (0, 90]")
        if not MUON_MASS_GEV < self.e_min_gev < self.e_max_gev:
            raise ValueError("cosmics: need muon mass < e_min_gev < e_max_gev (total energies, "
                             "GeV)")
        if self.charge_ratio <= 0 or self.overlay_mean < 0 or self.shower_min_energy_gev <= 0:
            raise ValueError("cosmics: charge_ratio and shower_min_energy_gev must be > 0, "
                             "overlay_mean ≥ 0")
        if not 0 <= self.shower_probability <= 1:
            raise ValueError("cosmics.shower_probability must lie in [0, 1]")


@dataclass(frozen=True)
class ScintillatorConfig:
    """Full segmented-scintillator detector description (all numbers from the YAML)."""

    name: str
    kind: Literal["scintillator"]
    description: str
    material: Material
    active_volume: Box
    fiducial_margin_cm: float
    segmentation: Segmentation
    views: tuple[ScintView, ScintView]
    readout: ScintReadout
    cosmics: Cosmics
    beam: Beam
    visibility: Visibility
    transport: Transport

    def __post_init__(self):
        seg = self.segmentation
        width = seg.n_cells * seg.cell_pitch_cm
        depth = seg.n_planes * seg.plane_pitch_cm
        box = self.active_volume
        sizes = (box.x[1] - box.x[0], box.y[1] - box.y[0], box.z[1] - box.z[0])
        if any(not math.isclose(s, t, rel_tol=1e-6) for s, t in zip(sizes, (width, width, depth))):
            raise ValueError(f"active_volume {sizes} cm does not match the segmentation: x and y "
                             f"must span n_cells × cell_pitch = {width:g} cm, z n_planes × "
                             f"plane_pitch = {depth:g} cm")


@register_detector(ScintillatorConfig)
class Scintillator(DetectorBase):
    """Geometry helper over a :class:`ScintillatorConfig` (vectorised; cm, ns, PE); a
    :class:`~gnnu.detectors.base.Detector`."""

    kind = "scintillator"
    time_unit = "ns"
    charge_unit = "PE"
    #: :meth:`hit_positions` needs the hits' ``plane`` column (a LArTPC's does not).
    position_columns = ("plane",)
    #: A hit is a whole cell: drawn as a square.
    hit_marker = ("s", 6)

    def __init__(self, config: ScintillatorConfig):
        self.config = config
        self.name = config.name
        self.material = config.material
        self.views = tuple(v.name for v in config.views)
        seg = config.segmentation
        self.n_planes = seg.n_planes
        self.n_cells = seg.n_cells
        box = config.active_volume
        self._lo = box.lo
        self._hi = box.hi

    # -- numbering ------------------------------------------------------------------------
    def n_wires(self, view: int) -> int:
        """Number of cells per plane (same in both views; the LArTPC's "wires")."""
        return self.n_cells

    def plane_view(self, plane) -> np.ndarray:
        """View (0 = XZ, 1 = YZ) of each plane number (int8, same shape)."""
        return ((np.asarray(plane) + self.config.segmentation.first_plane_view) % 2).astype(np.int8)

    def planes_of_view(self, view: int) -> np.ndarray:
        """Plane numbers (int32, increasing) that belong to ``view``."""
        first = (view - self.config.segmentation.first_plane_view) % 2
        return np.arange(first, self.n_planes, 2, dtype=np.int32)

    # -- positions --------------------------------------------------------------------------
    def plane_z(self, plane) -> np.ndarray:
        """z (cm) of the centre of each plane number."""
        seg = self.config.segmentation
        return self._lo[2] + (np.asarray(plane, np.float64) + 0.5) * seg.plane_pitch_cm

    def cell_coordinate(self, view, cell) -> np.ndarray:
        """Transverse coordinate (cm) of the centre of cell ``cell`` in ``view``: x for view 0,
        y for view 1 (arrays broadcast)."""
        low = np.array([self._lo[VIEW_MEASURES[0]], self._lo[VIEW_MEASURES[1]]])[np.asarray(view)]
        return low + (np.asarray(cell, np.float64) + 0.5) * self.config.segmentation.cell_pitch_cm

    def hit_positions(self, view, wire, time, plane=None) -> np.ndarray:
        """2-D hit coordinates [N, 2] float32 in cm: (z of the plane centre, transverse coordinate
        of the cell centre — x in view 0, y in view 1).

        ``view``, ``wire`` (cell number), ``plane`` [N]; ``time`` (ns) is accepted for the common
        interface and not used. ``plane`` is required: a cell number alone does not give z.
        """
        if plane is None:
            raise ValueError(f"{self.name}: hit_positions needs the hits' plane numbers "
                             "(a segmented detector's cell number does not give z)")
        view = np.asarray(view).astype(np.intp)
        z = self.plane_z(plane)
        u = self.cell_coordinate(view, wire)
        n = np.broadcast(z, u, np.asarray(time)).shape
        return np.stack([np.broadcast_to(z, n), np.broadcast_to(u, n)], axis=-1).astype(np.float32)

    def drift_scale(self) -> None:
        """None: positions come from plane and cell, not from time (widths stay in ns)."""
        return None

    def axis_labels(self, view: int) -> tuple[str, str]:
        """Axis titles for displays of ``view``: (plane axis, cell axis)."""
        return "z (cm), along planes", f"{'xy'[VIEW_MEASURES[view]]} (cm), across cells"

    def vertex_coordinates(self, vertices: np.ndarray, view: int) -> np.ndarray:
        """[n, 2] (fractional plane, fractional cell) of the points ``vertices`` [n, 3] cm in
        ``view``: plane p spans [p, p + 1) along z, cell c [c, c + 1) across the view's cells."""
        x, y, z = np.asarray(vertices, np.float64).reshape(-1, 3).T
        seg = self.config.segmentation
        plane = (z - self.plane_z(0)) / seg.plane_pitch_cm + 0.5
        u = (x, y)[VIEW_MEASURES[view]]
        cell = (u - self.cell_coordinate(view, 0)) / seg.cell_pitch_cm + 0.5
        return np.stack([plane, cell], axis=1)

    def locate(self, pos: np.ndarray) -> tuple[np.ndarray, ...]:
        """Cell of each point ``pos`` [N, 3] (cm).

        Returns (plane int64 [N], view int64 [N], cell int64 [N], in_scintillator bool [N],
        distance to the readout end along the cell, cm float64 [N]). ``in_scintillator`` is false
        for points in a PVC wall or outside the planes/cells; plane and cell are then
        meaningless.
        """
        seg = self.config.segmentation
        pos = np.asarray(pos, np.float64).reshape(-1, 3)
        fz = (pos[:, 2] - self._lo[2]) / seg.plane_pitch_cm
        plane = np.floor(fz).astype(np.int64)
        view = (plane + seg.first_plane_view) % 2
        u = np.where(view == 0, pos[:, VIEW_MEASURES[0]], pos[:, VIEW_MEASURES[1]])
        u_lo = np.where(view == 0, self._lo[VIEW_MEASURES[0]], self._lo[VIEW_MEASURES[1]])
        fu = (u - u_lo) / seg.cell_pitch_cm
        cell = np.floor(fu).astype(np.int64)
        half_depth = 0.5 * seg.cell_depth_cm / seg.plane_pitch_cm
        half_width = 0.5 * seg.cell_width_cm / seg.cell_pitch_cm
        inside = ((plane >= 0) & (plane < self.n_planes) & (cell >= 0) & (cell < self.n_cells)
                  & (np.abs(fz - plane - 0.5) <= half_depth)
                  & (np.abs(fu - cell - 0.5) <= half_width))
        s = np.where(view == 0, pos[:, VIEW_ALONG[0]], pos[:, VIEW_ALONG[1]])
        ends = []
        for v, cfg in enumerate(self.config.views):
            axis = VIEW_ALONG[v]
            ends.append(self._hi[axis] if cfg.readout_end == "high" else self._lo[axis])
        distance = np.abs(np.where(view == 0, ends[0], ends[1]) - s)
        return plane, view, cell, inside, distance

    @property
    def cell_length_cm(self) -> float:
        """Length of every cell (cm): the full width of a plane."""
        return self.n_cells * self.config.segmentation.cell_pitch_cm
