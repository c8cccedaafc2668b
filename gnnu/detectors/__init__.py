"""Detector geometries as data: ``load_detector('dune')`` reads ``configs/detectors/dune.yaml``.

Every geometry implements :class:`~gnnu.detectors.base.Detector` (the only view of a detector
the other stages have). A new detector kind is one module (config dataclass + geometry class)
registered with one ``@register_detector(Config)`` line (:data:`DETECTOR_KINDS`); importing its
module registers it.
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..config import from_dict, read_yaml, resolve_config, to_dict
from ..errors import ConfigError, InputError
from .base import DETECTOR_KINDS, Detector, DetectorBase, WirePlanes, register_detector
from .lartpc import LArTPC, LArTPCConfig
from .scintillator import Scintillator, ScintillatorConfig


def detector_from_dict(data: dict, where: str = "detector"):
    """Validate a detector mapping (as in YAML or a hit file's attribute) into its geometry object."""
    if not isinstance(data, dict) or "kind" not in data:
        raise ConfigError(f"{where}: a detector config needs a 'kind' "
                          f"(one of {DETECTOR_KINDS.known()})")
    cfg_cls, geom_cls = DETECTOR_KINDS.lookup(data["kind"], where)
    return geom_cls(from_dict(cfg_cls, data, where))


def load_detector(name_or_path: str | os.PathLike):
    """Detector geometry from a short name (``dune``) or a YAML path."""
    path = resolve_config("detectors", name_or_path)
    return detector_from_dict(read_yaml(path), str(path))


def positions(detector, columns) -> np.ndarray:
    """[N, 2] float32 cm positions of hits (a :class:`gnnu.events.Hits` or a column mapping) in
    their views, passing the detector's :attr:`~gnnu.detectors.base.Detector.position_columns`
    (e.g. a segmented detector's ``plane``)."""
    extra = {}
    for name in detector.position_columns:
        if name not in columns:
            raise InputError(f"detector '{detector.name}' needs the hits' '{name}' column")
        extra[name] = columns[name]
    return np.asarray(detector.hit_positions(columns["view"], columns["wire"], columns["time"],
                                             **extra), np.float32).reshape(-1, 2)


def detector_json(detector) -> str:
    """The full detector config as canonical JSON (stored in hit files)."""
    return json.dumps(to_dict(detector.config), sort_keys=True)


__all__ = ["DETECTOR_KINDS", "Detector", "DetectorBase", "LArTPC", "LArTPCConfig", "Scintillator",
           "ScintillatorConfig", "detector_from_dict", "detector_json", "load_detector", "positions",
           "WirePlanes", "register_detector"]
