"""The study config: YAML validated into frozen dataclasses (:class:`StudyConfig`).

A study config (``configs/studies/<name>.yaml``) names everything one ``gnnu-study`` run does::

    name: smoke
    scale: 1.0                      # multiplies event counts and sizes (see below)
    data:                           # exactly one of simulate / hits / graphs
      simulate: {detector: dune, events: 400, flavours: [numu_cc, nue_cc, nutau_cc, nc],
                 energy: beam, seed: 1, workers: 2}
      # hits: [a.h5, b.h5]          # existing gnnu hit files
      # graphs: path/to/dataset     # an existing graph dataset (gnnu-build output)
    graph: {config: knn16, split: [0.8, 0.1, 0.1], seed: 0, workers: 2, skip_bad: true}
    models:                         # registry names + overrides of their model configs
      - {name: edgeconv, set: ["model.params.widths=[32,64]"]}
      - {name: resnet18, label: resnet18-scratch, set: [model.params.weights=none]}
    training:
      budget: {kind: epochs, epochs: 10, patience: 3}   # or kind: events / wall_time
      set: [batch_size=16, num_workers=0]              # every model's training config
    learning_curve: {sizes: [300, all], repeats: 1, seed: 0, models: null}
    evaluation: {batch_size: 32, remeasure_repeats: 3, warmup: 2, bootstrap: 1000, seed: 0,
                 signal: nue_cc, purity: 0.9}

Validation is :func:`gnnu.config.from_dict`'s: an unknown key anywhere is one
:class:`~gnnu.errors.ConfigError` naming the file and the dotted key. ``--set key=value`` edits
the mapping before validation with the training config's parser
(:func:`gnnu.train.config.parse_override`: YAML scalars, never ``eval``).

``scale`` (default 1) shrinks or grows a study along one code path: simulated events, the
learning-curve sizes, and an ``events`` budget are multiplied by it (rounded, at least 1);
epochs and a wall-time cap are multiplied by ``min(scale, 1)`` (rounded up, at least 1 epoch).
Everything else — models, image sizes, precision, batch sizes — is unchanged, so
``--set scale=0.01`` rehearses a GPU preset on a CPU through the very same stages.
:func:`apply_scale` returns the config the study actually runs (``scale`` then reads 1 and
``scaled_from`` records the factor), which is what ``STUDY_DIR/study.yaml`` stores. ``--set``
values are in the config's own (unscaled) units: the scale applies after them.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from ..config import from_dict, read_yaml, resolve_config, to_dict
from ..errors import ConfigError

#: A learning-curve size: a number of training events, or every event of the training split.
ALL = "all"


@dataclass(frozen=True)
class SimulateData:
    """Simulate the events (``gnnu-sim``): ``events`` of ``flavours`` (round-robin, balanced) in
    ``detector`` (configs/detectors name or YAML path), neutrino ``energy`` (``beam``, ``MIN:MAX``
    flat or a fixed value, GeV), run ``seed``, ``workers`` processes (0: every core)."""

    detector: str = "dune"
    events: int = 1000
    flavours: tuple[str, ...] = ("numu_cc", "nue_cc", "nutau_cc", "nc")
    energy: str = "beam"
    seed: int = 1
    workers: int = 2

    def __post_init__(self):
        if self.events < 1:
            raise ValueError(f"data.simulate.events must be ≥ 1, got {self.events}")
        if self.workers < 0:
            raise ValueError(f"data.simulate.workers must be ≥ 0 (0: every core), got {self.workers}")
        if not self.flavours:
            raise ValueError("data.simulate.flavours: give at least one flavour")


@dataclass(frozen=True)
class DataConfig:
    """Where the events come from: exactly one of ``simulate``, ``hits`` (gnnu hit files) or
    ``graphs`` (a built graph dataset; the graph section then only describes it)."""

    simulate: SimulateData | None = None
    hits: tuple[str, ...] = ()
    graphs: str | None = None

    def __post_init__(self):
        given = [k for k, v in (("simulate", self.simulate), ("hits", self.hits),
                                ("graphs", self.graphs)) if v]
        if len(given) != 1:
            raise ValueError("data: give exactly one of simulate, hits, graphs"
                             + (f" (got {', '.join(given)})" if given else ""))

    @property
    def source(self) -> str:
        return "simulate" if self.simulate else "hits" if self.hits else "graphs"


@dataclass(frozen=True)
class GraphStage:
    """How events become the graph dataset (``gnnu-build``): graph ``config`` (configs/graphs name
    or path; the CNNs render the same dataset's hits with their own image presets), train/val/test
    ``split`` fractions and split ``seed``, ``workers`` (0: every core), ``skip_bad``: skip and
    count bad events (empty, non-finite, …) instead of stopping."""

    config: str = "knn16"
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    workers: int = 2
    skip_bad: bool = True

    def __post_init__(self):
        if any(f < 0 for f in self.split) or abs(sum(self.split) - 1) > 1e-6:
            raise ValueError(f"graph.split: three non-negative fractions summing to 1, got {list(self.split)}")
        if self.split[0] <= 0 or self.split[1] <= 0 or self.split[2] <= 0:
            raise ValueError(f"graph.split: train, val and test all need events, got {list(self.split)}")
        if self.workers < 0:
            raise ValueError(f"graph.workers must be ≥ 0 (0: every core), got {self.workers}")


@dataclass(frozen=True)
class Budget:
    """Training budget of every run (the headline compares models under the same one).

    ``kind``: ``epochs`` (up to ``epochs`` epochs, early stopping on the validation loss after
    ``patience`` epochs without improvement unless ``early_stopping`` is false), ``events``
    (equal events seen: ``events`` training events per run, i.e. ``ceil(events / batch_size)``
    optimiser steps whatever the training-set size; no early stopping) or ``wall_time`` (up to
    ``epochs`` epochs, stopped after ``wall_time_s`` seconds of training — not reproducible
    across machines)."""

    kind: Literal["epochs", "events", "wall_time"] = "epochs"
    epochs: int = 10
    early_stopping: bool = True
    patience: int = 3
    events: int | None = None
    wall_time_s: float | None = None

    def __post_init__(self):
        if self.epochs < 1 or self.patience < 1:
            raise ValueError("training.budget: epochs and patience must be ≥ 1")
        if self.kind == "events" and not (self.events and self.events > 0):
            raise ValueError("training.budget: kind events needs events: N (> 0)")
        if self.kind == "wall_time" and not (self.wall_time_s and self.wall_time_s > 0):
            raise ValueError("training.budget: kind wall_time needs wall_time_s: S (> 0)")

    def describe(self) -> str:
        if self.kind == "events":
            return f"equal events seen: {self.events:,} training events per run, no early stopping"
        stop = (f"early stopping on the validation loss (patience {self.patience})"
                if self.early_stopping else "no early stopping")
        epochs = f"{self.epochs} epoch{'s' if self.epochs != 1 else ''}"
        if self.kind == "wall_time":
            return f"up to {epochs} capped at {self.wall_time_s:g} s of training, {stop}"
        return f"{epochs}, {stop}" if not self.early_stopping else f"up to {epochs}, {stop}"


@dataclass(frozen=True)
class ModelEntry:
    """One model of the study.

    ``name``: registry name (``edgeconv``, ``dune_cvn``, …); ``config``: its model or training
    config (configs/models name or YAML path; default: ``name``); ``label``: its name in the
    study's tables and run directories (default: ``name``; unique); ``set``: training-config
    overrides of this model (after ``training.set``), e.g. ``model.params.widths=[32,64]``;
    ``init_from``: fine-tune from a checkpoint (a path, or ``run:LABEL`` = the best checkpoint of
    another model of this study at its largest size, first seed); ``sizes``: this model's
    training sizes (default: the learning curve's, or only the largest when the curve is limited
    to other models); ``budget``: this model's own training budget (default: ``training.budget``;
    e.g. a pretraining run; RESULTS.md says which models differ); ``imagenet_if_cached``: ResNet18 only — start from torchvision's ImageNet
    weights when their file is in the torch hub cache, else from a random initialisation (said in
    RESULTS.md; gnnu never downloads).
    """

    name: str
    config: str | None = None
    label: str | None = None
    set: tuple[str, ...] = ()
    init_from: str | None = None
    sizes: tuple[int | Literal["all"], ...] | None = None
    budget: Budget | None = None
    imagenet_if_cached: bool = False

    @property
    def key(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class TrainingConfig:
    """``budget`` (:class:`Budget`) and ``set``: training-config overrides of every model
    (``key=value`` as ``gnnu-train --set``, e.g. ``batch_size=32``, ``precision=bf16-mixed``)."""

    budget: Budget = field(default_factory=Budget)
    set: tuple[str, ...] = ()


@dataclass(frozen=True)
class LearningCurve:
    """Training-set ``sizes`` (events, or ``all``; the largest is the headline size),
    ``repeats`` (seeds ``seed``, ``seed + 1``, … per model and size) and ``models``: the labels
    run at every size (default: all; the others run at the largest size only)."""

    sizes: tuple[int | Literal["all"], ...] = ("all",)
    repeats: int = 1
    seed: int = 0
    models: tuple[str, ...] | None = None

    def __post_init__(self):
        if not self.sizes:
            raise ValueError("learning_curve.sizes: give at least one size")
        if any(s != ALL and s < 1 for s in self.sizes):
            raise ValueError(f"learning_curve.sizes must be ≥ 1 (or 'all'), got {list(self.sizes)}")
        if self.repeats < 1:
            raise ValueError(f"learning_curve.repeats must be ≥ 1, got {self.repeats}")


@dataclass(frozen=True)
class EvaluationConfig:
    """Inference re-measurement (``gnnu-compare --remeasure``: ``batch_size``,
    ``remeasure_repeats`` passes, ``warmup`` batches) and the intervals: ``bootstrap`` resamples
    of the test events (seeded with ``seed``) where a model has one seed; the ``signal`` class
    whose efficiency at ``purity`` is reported."""

    batch_size: int = 32
    remeasure_repeats: int = 3
    warmup: int = 2
    bootstrap: int = 1000
    seed: int = 0
    signal: str = "nue_cc"
    purity: float = 0.9

    def __post_init__(self):
        if self.batch_size < 1 or self.remeasure_repeats < 1 or self.warmup < 0:
            raise ValueError("evaluation: batch_size and remeasure_repeats ≥ 1, warmup ≥ 0")
        if self.bootstrap < 10:
            raise ValueError(f"evaluation.bootstrap: at least 10 resamples, got {self.bootstrap}")
        if not 0 < self.purity < 1:
            raise ValueError(f"evaluation.purity must lie in (0, 1), got {self.purity}")


@dataclass(frozen=True)
class StudyConfig:
    """A whole study (module docstring). ``estimate``: the preset author's expected wall time
    and machine (documentation only)."""

    name: str
    data: DataConfig
    models: tuple[ModelEntry, ...]
    description: str = ""
    estimate: str = ""
    scale: float = 1.0
    scaled_from: float | None = None
    graph: GraphStage = field(default_factory=GraphStage)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    learning_curve: LearningCurve = field(default_factory=LearningCurve)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    def __post_init__(self):
        if not self.models:
            raise ValueError("models: give at least one model")
        if not self.scale > 0:
            raise ValueError(f"scale must be positive, got {self.scale}")
        keys = [m.key for m in self.models]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ValueError(f"models: label(s) {', '.join(repeated)} used twice (give each a label)")
        unknown = sorted(set(self.learning_curve.models or ()) - set(keys))
        if unknown:
            raise ValueError(f"learning_curve.models: {', '.join(unknown)} not among the models "
                             f"({', '.join(keys)})")

    def model(self, key: str) -> ModelEntry:
        return next(m for m in self.models if m.key == key)

    def budget(self, key: str) -> Budget:
        """The training budget of model ``key`` (its own, else the study's)."""
        return self.model(key).budget or self.training.budget


def _scaled(n: int, factor: float) -> int:
    return max(1, int(round(n * factor)))


def apply_scale(cfg: StudyConfig) -> StudyConfig:
    """The config the study runs at ``cfg.scale`` (module docstring); identity at scale 1."""
    s = cfg.scale
    if s == 1:
        return cfg
    shrink = min(s, 1.0)

    def sizes(values):
        return None if values is None else tuple(v if v == ALL else _scaled(v, s) for v in values)

    data = cfg.data
    if data.simulate:
        data = replace(data, simulate=replace(data.simulate, events=_scaled(data.simulate.events, s)))
    def budget(b):
        if b is None:
            return None
        return replace(b, epochs=max(1, math.ceil(b.epochs * shrink)),
                       events=None if b.events is None else _scaled(b.events, s),
                       wall_time_s=None if b.wall_time_s is None else b.wall_time_s * shrink)

    return replace(cfg, scale=1.0, scaled_from=s * (cfg.scaled_from or 1.0), data=data,
                   training=replace(cfg.training, budget=budget(cfg.training.budget)),
                   learning_curve=replace(cfg.learning_curve, sizes=sizes(cfg.learning_curve.sizes)),
                   models=tuple(replace(m, sizes=sizes(m.sizes), budget=budget(m.budget))
                                for m in cfg.models))


def study_config_path(name_or_path: str | os.PathLike) -> Path:
    """A study config by short name (``configs/studies/NAME.yaml``) or YAML path."""
    from ..config import CONFIG_ROOT

    p = Path(name_or_path)
    if p.suffix not in (".yaml", ".yml") and not p.exists() and not (
            CONFIG_ROOT / "studies" / f"{name_or_path}.yaml").is_file():
        known = sorted(q.stem for q in (CONFIG_ROOT / "studies").glob("*.yaml"))
        raise ConfigError(f"unknown study preset '{name_or_path}' (known: {', '.join(known)}; or "
                          "give a YAML path)")
    return resolve_config("studies", name_or_path)


def load_study_config(name_or_path: str | os.PathLike, overrides: tuple[str, ...] = ()) -> StudyConfig:
    """Read, override (``--set``) and validate a study config (relative paths in it are taken
    from the current directory, as on a command line). Returns the config with its scale
    applied (:func:`apply_scale`)."""
    from ..train.config import apply_override, parse_override

    path = study_config_path(name_or_path)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a study config must be a mapping, got {type(raw).__name__}")
    raw = copy.deepcopy(raw)
    for text in overrides:
        parts, value = parse_override(text)
        apply_override(raw, parts, value, text)
    cfg = from_dict(StudyConfig, raw, str(path))
    return apply_scale(cfg)


def study_config_from_dict(raw: dict, where: str = "study config") -> StudyConfig:
    """Validate an already-resolved mapping (e.g. ``STUDY_DIR/study.yaml``) into a config."""
    return from_dict(StudyConfig, raw, where)


def as_dict(cfg: StudyConfig) -> dict:
    """Plain-data form (YAML/JSON-safe) of a config."""
    return to_dict(cfg)
