"""Node features of hit graphs (docs/design.md#graphs): one node per hit, computed for many events at once.

:func:`node_table` gathers the hit columns of a block of events into one :class:`NodeTable`
(positions in cm from the detector's ``hit_positions``), :func:`compute_features` stacks the
named features into ``x`` [N, F] float32, and :func:`feature_columns` names each column with its
unit. Everything is vectorised over all hits of the block.

Features (:data:`FEATURES`):

- ``pos``: the hit's 2-D position in its view, (wire coordinate, drift coordinate) in cm, from
  ``detector.hit_positions`` (LArTPC: wire × pitch, time × tick × drift velocity; scintillator:
  z of the plane, transverse cell coordinate — it needs the ``plane`` column).
- ``charge``: hit integral in the detector's charge unit (LArTPC ADC·tick, scintillator PE).
- ``log_charge``: ln(1 + charge), same unit inside the logarithm.
- ``time``: the hit time in the detector's time unit (useful where time is not a position
  coordinate, e.g. the scintillator's ns).
- ``width``: the hit's rms width converted from time units to cm of drift with the same time scale
  as ``pos`` (so width and drift coordinate are comparable); segmented detectors keep it in their
  time unit.
- ``view``: one-hot of the view id, one column per view of the detector (``view_U``, …).
- ``xyz``: the hit's true 3-D position (x, y, z cm) where the source has it (simulation);
  non-finite truth (noise hits) becomes 0 and the extra column ``xyz_valid`` is 0 there.

Simplifications: the time → cm scale used for ``width`` is read off ``hit_positions`` as the
drift-coordinate difference between time 1 and time 0 of each view, i.e. the map is assumed
linear in time (true for every gnnu detector). One-hot and validity columns are marked
``normalize=False`` (categorical: they keep their 0/1 values).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from ..detectors import positions
from ..registry import Registry


@dataclass(frozen=True)
class FeatureColumn:
    """One column of ``x``: its name, unit, and whether it is standardised by the dataset."""

    name: str
    unit: str
    normalize: bool = True


@dataclass
class NodeTable:
    """The hits of a block of events, one row per node.

    ``batch`` [N] int64: event (graph) index within the block, non-decreasing. ``view``, ``wire``
    [N] int64; ``time`` (detector time unit), ``charge``, ``width`` (time unit) [N] float32;
    ``pos`` [N, 2] float32 cm (wire coordinate, drift coordinate); ``xyz`` [N, 3] float32 cm true
    position or ``None``; ``time_scale`` [V] cm per time unit of each view; ``n_views`` V.
    """

    batch: np.ndarray
    view: np.ndarray
    wire: np.ndarray
    time: np.ndarray
    charge: np.ndarray
    width: np.ndarray
    pos: np.ndarray
    time_scale: np.ndarray
    n_views: int
    view_names: tuple[str, ...]
    charge_unit: str
    xyz: np.ndarray | None = None
    plane: np.ndarray | None = None      # [N] int64 plane number (segmented detectors), else None

    def __len__(self) -> int:
        return len(self.batch)

    @property
    def n_graphs(self) -> int:
        return int(self.batch[-1]) + 1 if len(self.batch) else 0

    def select(self, mask: np.ndarray) -> "NodeTable":
        """The rows where ``mask`` is true, with ``batch`` renumbered 0, 1, … densely."""
        batch = self.batch[mask]
        _, dense = np.unique(batch, return_inverse=True)
        return NodeTable(dense.astype(np.int64), self.view[mask], self.wire[mask], self.time[mask],
                         self.charge[mask], self.width[mask], self.pos[mask], self.time_scale,
                         self.n_views, self.view_names, self.charge_unit,
                         None if self.xyz is None else self.xyz[mask],
                         None if self.plane is None else self.plane[mask])


def time_scale(detector) -> np.ndarray:
    """[V] cm of drift coordinate per time unit, for each view of ``detector``
    (:meth:`~gnnu.detectors.base.Detector.drift_scale`).

    Detectors where time is not a position coordinate (segmented ones: positions come from plane
    and cell) have no such scale: 1, so widths stay in the detector's time unit."""
    scale = detector.drift_scale()
    return np.ones(len(detector.views), np.float32) if scale is None else scale


def node_table(columns: Mapping[str, np.ndarray], batch: np.ndarray, detector,
               with_xyz: bool = False) -> NodeTable:
    """Gather hit ``columns`` (1-D arrays of equal length N, gnnu hit columns) of a block.

    ``batch`` [N]: event index of each hit (non-decreasing). ``with_xyz``: also take the true
    positions ``x, y, z`` (KeyError if absent). View ids must lie in [0, V): callers check.
    """
    view = np.asarray(columns["view"]).astype(np.int64)
    wire = np.asarray(columns["wire"]).astype(np.int64)
    time = np.asarray(columns["time"], np.float32)
    pos = positions(detector, columns)
    plane = np.asarray(columns["plane"]).astype(np.int64) if "plane" in columns else None
    xyz = None
    if with_xyz:
        xyz = np.stack([np.asarray(columns[c], np.float32) for c in ("x", "y", "z")], axis=1)
    return NodeTable(batch=np.asarray(batch, np.int64), view=view, wire=wire, time=time,
                     charge=np.asarray(columns["charge"], np.float32),
                     width=np.asarray(columns["width"], np.float32), pos=pos,
                     time_scale=time_scale(detector), n_views=len(detector.views),
                     view_names=tuple(detector.views),
                     charge_unit=detector.charge_unit, xyz=xyz,
                     plane=plane)


def _xyz(nodes: NodeTable) -> np.ndarray:
    ok = np.isfinite(nodes.xyz).all(axis=1)
    out = np.zeros((len(nodes), 4), np.float32)
    out[ok, :3] = nodes.xyz[ok]
    out[:, 3] = ok
    return out


def _one_hot(nodes: NodeTable) -> np.ndarray:
    out = np.zeros((len(nodes), nodes.n_views), np.float32)
    out[np.arange(len(nodes)), nodes.view] = 1.0
    return out


@dataclass(frozen=True)
class Feature:
    """A named feature: its columns for a given detector, and its computation [N, c]."""

    columns: Callable[[object], list[FeatureColumn]]
    compute: Callable[[NodeTable], np.ndarray]
    needs_xyz: bool = False


def _charge_unit(det) -> str:
    return det.charge_unit


def _width_column(det) -> FeatureColumn:
    if det.drift_scale() is None:               # no drift coordinate: width in time units
        return FeatureColumn(f"width_{det.time_unit}", det.time_unit)
    return FeatureColumn("width_cm", "cm")


#: Feature name → definition; a new feature is one ``FEATURES.register`` line.
FEATURES: Registry[Feature] = Registry("node feature")
FEATURES.register("pos", Feature(
    lambda det: [FeatureColumn("wire_cm", "cm"), FeatureColumn("time_cm", "cm")], lambda n: n.pos))
FEATURES.register("charge", Feature(
    lambda det: [FeatureColumn("charge", _charge_unit(det))], lambda n: n.charge[:, None]))
FEATURES.register("log_charge", Feature(
    lambda det: [FeatureColumn("log_charge", f"ln(1 + {_charge_unit(det)})")],
    lambda n: np.log1p(n.charge)[:, None]))
FEATURES.register("time", Feature(
    lambda det: [FeatureColumn(f"time_{det.time_unit}", det.time_unit)], lambda n: n.time[:, None]))
FEATURES.register("width", Feature(
    lambda det: [_width_column(det)], lambda n: (n.width * n.time_scale[n.view])[:, None]))
FEATURES.register("view", Feature(
    lambda det: [FeatureColumn(f"view_{v}", "1", normalize=False) for v in det.views], _one_hot))
FEATURES.register("xyz", Feature(
    lambda det: [FeatureColumn("x_cm", "cm (truth)"), FeatureColumn("y_cm", "cm (truth)"),
                 FeatureColumn("z_cm", "cm (truth)"), FeatureColumn("xyz_valid", "1", normalize=False)],
    _xyz, needs_xyz=True))


def feature_columns(names, detector) -> list[FeatureColumn]:
    """The columns of ``x`` for the feature ``names`` (in order) on ``detector``."""
    return [c for name in names for c in FEATURES[name].columns(detector)]


def compute_features(names, nodes: NodeTable) -> np.ndarray:
    """``x`` [N, F] float32: the features ``names`` of every node of ``nodes``, side by side."""
    if not names:
        return np.zeros((len(nodes), 0), np.float32)
    return np.concatenate([_columns(FEATURES[n].compute(nodes), len(nodes)) for n in names], axis=1)


def _columns(values, n: int) -> np.ndarray:
    """A feature's values as [n, k] float32 (k = 1 for a 1-D feature; also when n = 0, where
    ``reshape(0, -1)`` cannot infer k: a block whose events were all bad)."""
    values = np.asarray(values, np.float32)
    return values.reshape(n, -1) if n else values.reshape(0, values.shape[1] if values.ndim == 2 else 1)
