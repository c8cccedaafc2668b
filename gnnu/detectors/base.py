"""The Detector protocol and the registry of detector kinds (docs/design.md#adding-a-detector).

Everything outside ``gnnu/detectors/`` sees a detector only through :class:`Detector`: its views,
where a hit of each view lies (cm), which hit columns that needs, whether time is a position
coordinate, how to label and mark its hits in a display, and where a 3-D point (the vertex) lands
in a view's readout coordinates (what a vertex-centred pixel map needs). No code elsewhere asks
which kind a detector is; the stages that attach something per kind keep their own registries
keyed by :attr:`Detector.kind` — readouts in :data:`gnnu.sim.records.READOUTS`, image layouts in
:data:`gnnu.images.layouts.IMAGE_LAYOUTS` — so this package imports neither.

A new detector kind is one module: a frozen config dataclass (validated from YAML) and a
geometry class (subclass :class:`DetectorBase`, set ``kind``) registered with one line,
``@register_detector(TheConfig)``; then its readout registers in ``sim`` and, if its events
become pixel maps, its image layout in ``images``.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from ..registry import Registry


@runtime_checkable
class Detector(Protocol):
    """What every detector geometry gives the rest of gnnu (units in the names: cm, ticks, ns).

    ``kind``: key of the per-kind registries; ``name``: the configured detector (``dune``);
    ``views``: view names by view id; ``time_unit``/``charge_unit``: units of the hits' ``time``
    and ``charge`` columns; ``config``: the frozen config dataclass (stored as JSON with every
    hit file and dataset); ``position_columns``: hit columns :meth:`hit_positions` needs besides
    ``view``, ``wire`` and ``time`` (e.g. ``("plane",)``); ``hit_marker``: matplotlib marker and
    size of a hit in event displays.
    """

    kind: str
    name: str
    views: tuple[str, ...]
    time_unit: str
    charge_unit: str
    config: Any
    position_columns: tuple[str, ...]
    hit_marker: tuple[str, float]

    def hit_positions(self, view, wire, time, **columns) -> np.ndarray:
        """[N, 2] float32 cm position of each hit in its view's plane (``columns``: the hits'
        :attr:`position_columns`)."""

    def drift_scale(self) -> np.ndarray | None:
        """[V] float32 cm of the second position coordinate per time unit, per view — or None
        where time is not a position coordinate (a segmented detector: widths then stay in
        time units)."""

    def axis_labels(self, view: int) -> tuple[str, str]:
        """Axis titles (first, second position coordinate) of view ``view`` in displays."""

    def vertex_coordinates(self, vertices: np.ndarray, view: int) -> np.ndarray:
        """[n, 2] float64 position of the points ``vertices`` [n, 3] (x, y, z cm; t = 0) in view
        ``view``'s readout coordinates: (fractional wire, tick) for wire planes, (fractional
        plane, fractional cell) for a segmented detector."""


@runtime_checkable
class WirePlanes(Protocol):
    """A detector read out by wire planes (wire × drift time in every view): what pixel maps cut
    from its views need (:class:`gnnu.io.dune_cvn.PixelMapGeometry`)."""

    wire_pitch_cm: np.ndarray

    def drift_cm(self, ticks: float) -> float:
        """Drift distance (cm) of a duration of ``ticks`` ticks."""


class DetectorBase:
    """Defaults of the :class:`Detector` protocol for wire-and-time detectors: no extra position
    column, the drift scale read off :meth:`hit_positions`, wire/drift axis labels, dots."""

    kind = ""
    time_unit = "tick"
    charge_unit = "charge units"
    position_columns: tuple[str, ...] = ()
    hit_marker: tuple[str, float] = ("o", 2)
    name: str
    views: tuple[str, ...]
    config: Any

    def hit_positions(self, view, wire, time, **columns) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def drift_scale(self) -> np.ndarray | None:
        """cm per time unit of each view, as the difference of :meth:`hit_positions` at time 1
        and time 0 (the map is linear in time for every gnnu detector)."""
        v = np.arange(len(self.views))
        zero = np.zeros(len(v))
        p1 = np.asarray(self.hit_positions(v, zero, np.ones(len(v))), np.float64)
        p0 = np.asarray(self.hit_positions(v, zero, zero), np.float64)
        return (p1[:, 1] - p0[:, 1]).astype(np.float32)

    def axis_labels(self, view: int) -> tuple[str, str]:
        return f"{self.views[view]} wire coordinate (cm)", "drift coordinate (cm)"

    def vertex_coordinates(self, vertices: np.ndarray, view: int) -> np.ndarray:
        raise NotImplementedError(f"detector '{self.name}' ({self.kind}) cannot place a vertex in "
                                  "its views")


class DetectorKind(NamedTuple):
    """A registered detector kind: its config dataclass and its geometry class."""

    config: type
    geometry: type


#: kind → :class:`DetectorKind`; each kind's module registers with :func:`register_detector`.
DETECTOR_KINDS: Registry[DetectorKind] = Registry("detector kind")


def register_detector(config: type):
    """Class decorator: register a geometry class (its ``kind`` attribute) with its config
    dataclass ``config``."""
    def decorate(cls: type) -> type:
        DETECTOR_KINDS.register(cls.kind, DetectorKind(config, cls))
        return cls
    return decorate
