"""Graph-build configs (``configs/graphs/*.yaml``) validated into frozen dataclasses.

A config names the node features (:data:`gnnu.graph.features.FEATURES`), what ``Data.pos``
holds, the edge builders (a list; each entry's ``kind`` selects a builder of
:data:`gnnu.graph.edges.EDGE_BUILDERS` and its other keys are that builder's parameters),
whether every node gets a self-loop, the shard size, the largest event accepted, the
defaults of the split and seed that ``gnnu-build --split/--seed`` override, and optionally
``pixelize``: a wire-time pixel-map preset (``dune-cvn``) that every event goes through before
its graph is built — rendered around its truth vertex, then one node per non-zero pixel
(:func:`gnnu.graph.pixelize.pixelize_events`) — so simulated events get exactly the
representation of DUNE CVN's released ones (``configs/graphs/knn16_dune_cvn_pixels.yaml``). Unknown keys, wrong
types and bad values are a :class:`gnnu.errors.ConfigError` naming the file and the key.

Example (``configs/graphs/knn16.yaml``, the default)::

    name: knn16
    features: [pos, charge, width, view]
    edges:
      - {kind: knn, k: 16, space: view}
    self_loops: false
    shard_size: 1024
    defaults: {split: [0.8, 0.1, 0.1], seed: 0}
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from ..config import from_dict, read_yaml, resolve_config, to_dict, to_json
from ..errors import ConfigError
from ..pixelmap import get_preset
from .edges import EDGE_BUILDERS
from .features import FEATURES

#: Config used when ``gnnu-build`` is given no ``--graph`` (docs/design.md#command-line-contract).
DEFAULT_GRAPH = "knn16"


@dataclass(frozen=True)
class Defaults:
    """Split fractions (train, val, test) and split seed used unless the command line says."""

    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0

    def __post_init__(self):
        if min(self.split) < 0 or abs(sum(self.split) - 1) > 1e-6:
            raise ValueError(f"defaults.split must be 3 non-negative fractions summing to 1, "
                             f"got {list(self.split)}")


@dataclass(frozen=True)
class GraphConfig:
    """How events become graphs. ``edges`` holds the builders' parameter dataclasses."""

    name: str
    description: str = ""
    features: tuple[str, ...] = ("pos", "charge", "width", "view")
    positions: Literal["view", "3d"] = "view"     # Data.pos: (wire, drift) cm, or true x, y, z cm
    edges: tuple[Any, ...] = ()
    self_loops: bool = False
    shard_size: int = 1024                        # events per shard
    max_hits: int = 200_000                       # larger events are bad input
    compression: Literal["lzf", "gzip", "none"] = "none"
    defaults: Defaults = field(default_factory=Defaults)
    pixelize: str | None = None                   # pixel-map preset events go through first

    def __post_init__(self):
        if not self.features:
            raise ValueError("features: at least one node feature is needed")
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise ValueError(f"unknown feature(s) {', '.join(unknown)} (known: {FEATURES.known()})")
        if len(set(self.features)) != len(self.features):
            raise ValueError("features: each feature may be listed once")
        if not self.edges:
            raise ValueError("edges: at least one edge builder is needed")
        if self.shard_size < 1 or self.max_hits < 1:
            raise ValueError("shard_size and max_hits must be ≥ 1")
        if self.pixelize is not None:
            preset = get_preset(self.pixelize)
            if preset.layout != "wire-time" or preset.wires_per_column != 1:
                raise ValueError(f"pixelize: preset '{preset.name}' is not a one-wire-per-column "
                                 f"wire-time map (dune-cvn is)")
            if self.needs_xyz:
                raise ValueError("pixelize: pixel hits have no true 3-D positions (drop the xyz "
                                 "feature, 3-D positions and 3-D edges)")

    @property
    def needs_xyz(self) -> bool:
        """Whether the config uses true 3-D hit positions (simulated sources only)."""
        return (self.positions == "3d" or any(FEATURES[f].needs_xyz for f in self.features)
                or any(getattr(e, "space", None) == "3d" for e in self.edges))

    def to_dict(self) -> dict:
        """Plain-data form (as in YAML), for manifests."""
        return to_dict(self)

    def digest(self) -> str:
        """sha256 of the canonical JSON of this config."""
        return hashlib.sha256(to_json(self).encode()).hexdigest()


def _edge_spec(data: Any, where: str):
    if not isinstance(data, dict) or "kind" not in data:
        raise ConfigError(f"{where}: an edge builder needs a 'kind' (one of {EDGE_BUILDERS.known()})")
    return from_dict(EDGE_BUILDERS.lookup(data["kind"], f"{where}.kind").params, data, where)


def graph_config_from_dict(data: Any, where: str = "graph config") -> GraphConfig:
    """Validate a mapping (as in YAML) into a :class:`GraphConfig`; errors name ``where``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    raw_edges = data.get("edges", [])
    if not isinstance(raw_edges, (list, tuple)):
        raise ConfigError(f"{where}.edges: expected a list of edge builders")
    specs = tuple(_edge_spec(e, f"{where}.edges[{i}]") for i, e in enumerate(raw_edges))
    return from_dict(GraphConfig, {**data, "edges": specs}, where)


def load_graph_config(name_or_path: str | os.PathLike | None = None) -> GraphConfig:
    """A graph config by short name (``configs/graphs/NAME.yaml``) or YAML path; default knn16."""
    path = resolve_config("graphs", name_or_path or DEFAULT_GRAPH)
    return graph_config_from_dict(read_yaml(path), str(path))

