"""A trained checkpoint ready to run outside training: the model, how its inputs are made, and the
conversion of events into exactly those inputs (shared by ``gnnu-predict`` and ``gnnu-export``).

:func:`load_deployable` reads a checkpoint (a path or ``pretrained:NAME``,
:func:`gnnu.models.pretrained.resolve_checkpoint`) and the record of how its training dataset was
built: the checkpoint's ``gnnu.graph`` block (:func:`gnnu.train.run.graph_record`), or for a
checkpoint written before it existed, the manifest of the dataset it was trained on, if that
dataset is still there with the same manifest hash.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError
from ..graph.config import GraphConfig, graph_config_from_dict
from ..graph.store import MANIFEST
from ..models import model_inputs
from ..models.pretrained import resolve_checkpoint
from ..train.inference import load_model
from ..train.module import task_class_names
from ..train.run import graph_record


@dataclass
class Deployable:
    """A checkpoint's model (CPU, eval mode) with what is needed to feed it.

    ``inputs``: ``graph`` or ``image``; ``graph``: the training dataset's record (format, reader
    options, graph config, detector, features with units, positions); ``feature_stats``: the
    training standardisation (mean, std per feature); ``tasks``: built classification tasks
    with their class counts; ``regression``: built regression targets.
    """

    path: Path
    model: object
    meta: dict
    config: object
    inputs: str
    graph: dict
    graph_config: GraphConfig
    feature_stats: dict | None
    tasks: dict[str, int] = field(default_factory=dict)
    regression: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.config.model.name

    @property
    def feature_names(self) -> list[str]:
        return list(self.meta["feature_names"])

    @property
    def class_names(self) -> dict[str, list[str]]:
        return {t: task_class_names(t, c) for t, c in self.tasks.items()}

    @property
    def representation(self) -> str:
        """What the model's nodes are: ``pixels`` (one per non-zero pixel of a DUNE CVN-style
        map: the released events, or a ``pixelize`` graph config) or ``hits`` (detector hits)."""
        if self.graph.get("format") == "dune-cvn" or self.graph_config.pixelize:
            return "pixels"
        return "hits"


def graph_record_from_dataset(meta: dict, path: Path) -> dict:
    """The graph record of an older checkpoint, from its training dataset's manifest."""
    data = Path(str(meta.get("data", "")))
    manifest = data / MANIFEST
    if not manifest.is_file():
        raise InputError(f"the checkpoint does not record how its graphs were built (written before "
                         f"gnnu stored it) and its training dataset {data} is gone: retrain, or "
                         f"run where that dataset is", path)
    from ..train.data import manifest_hash

    if manifest_hash(data) != meta.get("manifest_hash"):
        raise InputError(f"the checkpoint does not record how its graphs were built and the "
                         f"dataset at {data} is not the one it was trained on (manifest hash "
                         f"differs)", path)
    return graph_record(json.loads(manifest.read_text()))


def load_deployable(ref: str | os.PathLike) -> Deployable:
    """Load ``ref`` (a checkpoint path or ``pretrained:NAME``) for prediction or export."""
    path = resolve_checkpoint(ref)
    model, meta, cfg = load_model(path)
    record = meta.get("graph") or graph_record_from_dataset(meta, path)
    if not isinstance(record.get("graph_config"), dict):
        raise InputError("the checkpoint's graph record has no graph config", path)
    gcfg = graph_config_from_dict(record["graph_config"], f"{path}: graph config")
    built = dict(model.loss_weights)
    tasks = {t: int(n) for t, n in meta["tasks"].items() if t in built}
    regression = [r for r in meta["regression"] if r in built]
    stats = meta.get("feature_stats")
    inputs = model_inputs(cfg.model.name)
    if inputs == "graph" and stats is None:
        raise InputError("the checkpoint has no feature statistics (written before gnnu stored "
                         "them); retrain it", path)
    return Deployable(path=path, model=model, meta=meta, config=cfg, inputs=inputs, graph=record,
                      graph_config=gcfg, feature_stats=stats, tasks=tasks, regression=regression)


def standardise(x: np.ndarray, stats: dict) -> np.ndarray:
    """(x − mean) / std in float32, as :class:`gnnu.graph.dataset.GraphDataset` does it."""
    mean = np.asarray(stats["mean"], np.float32)
    std = np.asarray(stats["std"], np.float32)
    return np.ascontiguousarray((x - mean) / std, np.float32)


def require_fit(dep: Deployable, fmt: str, detector, feature_names: list[str], where) -> None:
    """One InputError naming what differs when events of format ``fmt`` from ``detector`` do
    not fit the checkpoint: the representation (pixels vs hits), the detector, the features."""
    given = "pixels" if fmt == "dune-cvn" else "hits"
    if given != dep.representation and not (given == "hits" and dep.graph_config.pixelize):
        trained = (f"pixel hits (format {dep.graph.get('format')}, graph config "
                   f"'{dep.graph_config.name}')" if dep.representation == "pixels"
                   else f"detector hits (format {dep.graph.get('format')}, graph config "
                        f"'{dep.graph_config.name}')")
        raise InputError(f"input format '{fmt}' gives {given} but checkpoint {dep.path.name} "
                         f"({dep.name}) was trained on {trained}", where)
    want = (dep.graph.get("detector") or {}).get("name")
    got = getattr(detector, "name", None)
    if want and got and want != got:
        raise InputError(f"input detector '{got}' differs from the checkpoint's '{want}' "
                         f"(model {dep.name})", where)
    if dep.inputs == "graph" and list(feature_names) != dep.feature_names:
        raise InputError(f"node features {list(feature_names)} of these inputs differ from the "
                         f"checkpoint's {dep.feature_names}", where)


def predict_config(dep: Deployable, fmt: str) -> GraphConfig:
    """The graph config events of format ``fmt`` go through: the checkpoint's, without its
    ``pixelize`` step for inputs that are pixel maps already (DUNE CVN directories)."""
    cfg = dep.graph_config
    if fmt == "dune-cvn" and cfg.pixelize:
        from dataclasses import replace

        if cfg.pixelize != "dune-cvn":
            raise ConfigError(f"checkpoint's graph config pixelises with '{cfg.pixelize}', DUNE CVN "
                              f"maps are dune-cvn")
        cfg = replace(cfg, pixelize=None)
    return cfg
