"""The training config: YAML validated into frozen dataclasses (:class:`TrainConfig`).

A training config is a mapping whose ``model`` key holds a model config (inline, or the path or
short name of a ``configs/models`` file); every other key has a default (``configs/train/default.yaml``
lists them all). A *model* config given where a training config is expected (a mapping with
``name`` and no ``model`` key) means "this model with the training defaults", so
``gnnu-train --config configs/models/edgeconv.yaml`` works (docs/design.md#command-line-contract).

:func:`load_train_config` resolves, in this order: the file → model reference expanded to its
mapping → command-line overrides (``--epochs``, ``--data``, ``--set key=value`` with dotted keys
and YAML-scalar values parsed by :func:`gnnu.config.parse_yaml`, never ``eval``) → strict validation
(:func:`gnnu.config.from_dict`: unknown keys, wrong types, bad values and a missing dataset are one
:class:`~gnnu.errors.ConfigError` naming the file and the dotted key). The resolved config
(:func:`gnnu.config.to_dict`) is what ``RUN_DIR/config.yaml`` and the checkpoints store; loading it
again gives the same config.

Simplifications: weight decay applies to every trainable parameter (biases and norms included);
``max_events`` / ``max_val_events`` take the first events of a split in dataset order (which
``gnnu-build`` already shuffles by its split hash), not a random subset.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ..config import from_dict, parse_yaml, read_yaml, resolve_config
from ..errors import ConfigError
from ..events import CLASS_LABELS
from ..models.heads import REGRESSION_TARGETS
from ..models.registry import load_model_config

#: Mixed-precision modes (Lightning's names); "32" is full float32.
PRECISIONS = ("32", "bf16-mixed", "16-mixed")


@dataclass(frozen=True)
class OptimizerConfig:
    """AdamW: learning rate ``lr`` (peak rate for ``onecycle``), decoupled ``weight_decay``, ``betas``."""

    name: Literal["adamw"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self):
        if not self.lr > 0:
            raise ValueError(f"optimizer.lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"optimizer.weight_decay must be ≥ 0, got {self.weight_decay}")
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"optimizer.betas must lie in [0, 1), got {list(self.betas)}")


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule, stepped once per optimiser step over the whole run.

    ``cosine``: cosine annealing from ``lr`` to ``lr · min_lr_ratio``; ``onecycle``: linear-cosine
    warm-up to ``lr`` over the first ``pct_start`` of the steps, then cosine decay
    (``torch.optim.lr_scheduler.OneCycleLR``); ``none``: constant ``lr``.
    """

    name: Literal["cosine", "onecycle", "none"] = "cosine"
    min_lr_ratio: float = 0.01
    pct_start: float = 0.1

    def __post_init__(self):
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"schedule.min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")
        if not 0 < self.pct_start < 1:
            raise ValueError(f"schedule.pct_start must lie in (0, 1), got {self.pct_start}")


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """Stop when ``monitor`` (a logged validation metric) has not improved by ``min_delta`` for
    ``patience`` validations. ``mode``: ``min`` for losses, ``max`` for accuracies."""

    enabled: bool = True
    monitor: str = "val/loss"
    mode: Literal["min", "max"] = "min"
    patience: int = 5
    min_delta: float = 0.0

    def __post_init__(self):
        if self.patience < 1:
            raise ValueError(f"early_stopping.patience must be ≥ 1, got {self.patience}")


@dataclass(frozen=True)
class CheckpointConfig:
    """``best.ckpt`` keeps the best ``monitor`` value (``mode``); ``last.ckpt`` is written after
    every validation and every ``every_n_steps`` optimiser steps (mid-epoch, so a killed run
    loses at most that many steps), and when the run receives SIGTERM."""

    monitor: str = "val/loss"
    mode: Literal["min", "max"] = "min"
    every_n_steps: int = 200

    def __post_init__(self):
        if self.every_n_steps < 1:
            raise ValueError(f"checkpoint.every_n_steps must be ≥ 1, got {self.every_n_steps}")


@dataclass(frozen=True)
class DomainAdaptationConfig:
    """Domain-adversarial training (DANN: Ganin et al., JMLR 17 (2016) 59), off unless ``data``.

    ``data``: a dataset of the other domain in the same representation (same node features, or
    the same image layout), e.g. simulated events next to real ones. Each training batch is
    paired with a batch of as many events drawn from its ``split`` (a seeded permutation per
    epoch, repeated when that split is smaller). A domain classifier (one hidden layer of
    ``hidden`` units) on the pooled per-event features learns which domain an event comes from;
    a gradient-reversal layer multiplies its gradient into the network by −λ, so the features
    are pushed to carry no domain information. λ(p) = ``weight`` · (2 / (1 + exp(−10 p)) − 1)
    over training progress p = step / total steps (Ganin's schedule; 0 at the start).
    ``labels``: the other domain's labels also train the heads (false: it is unlabelled, the
    classic DANN set-up). Its events are standardised with the training split's statistics.
    """

    data: str | None = None
    split: Literal["train", "val", "test", "all"] = "train"
    weight: float = 0.3
    labels: bool = True
    hidden: int = 64

    def __post_init__(self):
        if not self.weight >= 0:
            raise ValueError(f"domain_adaptation.weight must be ≥ 0, got {self.weight}")
        if self.hidden < 1:
            raise ValueError(f"domain_adaptation.hidden must be ≥ 1, got {self.hidden}")

    @property
    def enabled(self) -> bool:
        return self.data is not None


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the output directory (see module docstring).

    ``model``: the model config (a :class:`~gnnu.models.registry.ModelConfig` once validated).
    ``data``: graph-dataset directory (``--data`` overrides). ``epochs``; ``max_steps``: stop
    after this many optimiser steps (None: no limit). ``batch_size``: events per batch and
    device. ``num_workers``: data-loader processes. ``precision``: ``32``, ``bf16-mixed`` or
    ``16-mixed`` (GPU only). ``devices``: devices per node (``auto``: every visible GPU, one CPU
    process); ``num_nodes``: machines (DDP); ``strategy``: ``auto`` (Lightning's choice: DDP
    for several devices or nodes) or ``ddp`` (DDP even with one process, as on one GPU of a
    cluster job). ``class_weights``: ``none``, ``balanced`` (every
    classification head: N / (C_present · n_c) from the training split), a list (the primary
    task) or a mapping task → list. ``loss_weights``: per head, override the model config's
    ``heads.loss_weights``. ``primary_task``: the task of the headline metrics.
    ``num_classes``: classes per task where the default (:data:`gnnu.events.NUM_CLASSES`;
    flavour without the cosmic class unless the dataset has cosmics) does not fit.
    ``regression``: regression targets offered to the model. ``seed``; ``deterministic``: use
    deterministic algorithms (warn where none exists). ``gradient_clip``: max global L2 norm of
    the gradients (None: off). ``freeze``: module-name prefixes, or a depth N = the first N
    parameter units (:func:`gnnu.models.checkpoint.parameter_units`), whose parameters are not
    trained (and whose modules stay in eval mode). ``max_events`` / ``max_val_events``: use only
    the first N events of the training / validation split. ``log_every_n_steps``: TensorBoard
    step-logging period. ``domain_adaptation``: a second domain trained against
    (:class:`DomainAdaptationConfig`; off by default).
    """

    model: Any
    data: str | None = None
    epochs: int = 20
    max_steps: int | None = None
    batch_size: int = 32
    num_workers: int = 2
    precision: int | str = "32"
    devices: int | Literal["auto"] = "auto"
    num_nodes: int = 1
    strategy: Literal["auto", "ddp"] = "auto"
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    class_weights: Literal["none", "balanced"] | list[float] | dict[str, list[float]] = "none"
    loss_weights: dict[str, float] = field(default_factory=dict)
    primary_task: str = "flavour"
    num_classes: dict[str, int] = field(default_factory=dict)
    regression: tuple[str, ...] = ("nu_energy",)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    seed: int = 0
    deterministic: bool = False
    gradient_clip: float | None = None
    freeze: list[str] | int | None = None
    max_events: int | None = None
    max_val_events: int | None = None
    log_every_n_steps: int = 10
    domain_adaptation: DomainAdaptationConfig = field(default_factory=DomainAdaptationConfig)

    def __post_init__(self):
        precision = str(self.precision)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        object.__setattr__(self, "precision", precision)
        for name in ("epochs", "batch_size", "num_nodes", "log_every_n_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        for name in ("max_steps", "max_events", "max_val_events"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be ≥ 1 (or null), got {value}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be ≥ 0, got {self.num_workers}")
        if isinstance(self.devices, int) and self.devices < 1:
            raise ValueError(f"devices must be ≥ 1 or 'auto', got {self.devices}")
        if self.gradient_clip is not None and not self.gradient_clip > 0:
            raise ValueError(f"gradient_clip must be positive (or null), got {self.gradient_clip}")
        if isinstance(self.freeze, int) and self.freeze < 0:
            raise ValueError(f"freeze: a depth must be ≥ 0, got {self.freeze}")
        if self.primary_task not in CLASS_LABELS:
            raise ValueError(f"primary_task must be one of {list(CLASS_LABELS)}, got {self.primary_task!r}")
        unknown = sorted(set(self.num_classes) - set(CLASS_LABELS))
        if unknown:
            raise ValueError(f"num_classes: unknown task(s) {unknown} (known: {list(CLASS_LABELS)})")
        if any(n < 2 for n in self.num_classes.values()):
            raise ValueError(f"num_classes: every task needs ≥ 2 classes, got {self.num_classes}")
        bad = [r for r in self.regression if r not in REGRESSION_TARGETS]
        if bad:
            raise ValueError(f"regression: unknown target(s) {bad} (known: {list(REGRESSION_TARGETS)})")
        if isinstance(self.class_weights, dict):
            unknown = sorted(set(self.class_weights) - set(CLASS_LABELS))
            if unknown:
                raise ValueError(f"class_weights: unknown task(s) {unknown}")
        weights = (self.class_weights.values() if isinstance(self.class_weights, dict) else
                   [self.class_weights] if isinstance(self.class_weights, list) else [])
        if any(not w or any(v < 0 for v in w) for w in weights):
            raise ValueError("class_weights: lists must be non-empty and ≥ 0")
        unknown_w = sorted(set(self.loss_weights) - set(CLASS_LABELS) - set(REGRESSION_TARGETS))
        if unknown_w:
            raise ValueError(f"loss_weights: unknown head(s) {unknown_w}")
        if any(not w >= 0 for w in self.loss_weights.values()):
            raise ValueError(f"loss_weights: weights must be ≥ 0, got {self.loss_weights}")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'optimizer.lr=3e-4'`` → (['optimizer', 'lr'], 0.0003): dotted key, YAML-scalar value.

    Values are parsed as YAML (:func:`gnnu.config.parse_yaml`: ``[16, 32]``, ``null``, ``true``
    work, and a number in exponent form without a dot, ``3e-4``, is a float);
    ConfigError for a missing ``=``, an empty key part or unparsable YAML.
    """
    key, sep, value = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise ConfigError(f"--set {text!r}: expected key=value with a dotted key, e.g. optimizer.lr=3e-4")
    parsed = parse_yaml(value, f"--set {text!r}")      # 3e-4 (no dot) is a number there
    return parts, parsed


def apply_override(raw: dict, parts: list[str], value: Any, text: str = "") -> None:
    """Set ``raw[parts[0]][parts[1]]… = value`` in place, creating missing mappings on the way."""
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {text or '.'.join(parts)}: '{'.'.join(parts[:i + 1])}' is "
                              f"not a mapping (it is {child!r})")
        node = child
    node[parts[-1]] = value


def _model_mapping(ref: str, base_dir: Path | None) -> dict:
    """The mapping of a model config referenced by path (relative to ``base_dir`` first) or name."""
    candidate = base_dir / ref if base_dir is not None else None
    path = candidate if candidate is not None and candidate.is_file() else resolve_config("models", ref)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a model config must be a mapping")
    return data.get("model", data) if "name" not in data else data


def _expand_model(raw: dict, base_dir: Path | None) -> None:
    if isinstance(raw.get("model"), (str, os.PathLike)):
        raw["model"] = _model_mapping(str(raw["model"]), base_dir)


def train_config_from_dict(raw: dict, where: str = "config", base_dir: Path | None = None) -> TrainConfig:
    """Validate a training-config mapping (model references expanded) into a :class:`TrainConfig`
    whose ``model`` is a validated :class:`~gnnu.models.registry.ModelConfig`."""
    raw = copy.deepcopy(raw)
    _expand_model(raw, base_dir)
    if "model" not in raw:
        raise ConfigError(f"{where}: missing required key 'model'")
    cfg = from_dict(TrainConfig, raw, where)
    return replace(cfg, model=load_model_config(cfg.model, where=f"{where}.model"))


def _config_file(path: str | os.PathLike) -> Path:
    """A ``--config`` value as a file: a path, a repository-style ``configs/…`` path (the shipped
    file from any directory), or a short name of a shipped model config (``edgeconv``) or
    training config (``default``)."""
    p = Path(path)
    if p.is_file():
        return p
    try:
        return resolve_config("models", path)
    except ConfigError:
        if p.suffix in (".yaml", ".yml") or os.sep in str(path):
            raise
        try:
            return resolve_config("train", path)
        except ConfigError:
            pass
        raise


def load_train_config(path: str | os.PathLike | None = None, *, base: dict | None = None,
                      overrides: tuple[str, ...] = (), data: str | None = None,
                      epochs: int | None = None, max_events: int | None = None,
                      require_data: bool = True) -> TrainConfig:
    """Read, override and validate a training config (module docstring for the order).

    ``path``: a training config or a model config (YAML); or ``base``: an already-read mapping
    (e.g. a run's saved ``config.yaml``). ``overrides``: ``key=value`` strings (``--set``).
    ``data``, ``epochs``, ``max_events``: the matching command-line flags (None: keep).
    ``require_data``: ConfigError when no dataset is given.
    """
    if (path is None) == (base is None):
        raise ConfigError("give a config file (--config CFG.yaml)")
    if path is not None:
        path = _config_file(path)
    where = str(path) if path is not None else "config"
    base_dir = Path(path).parent if path is not None else None
    raw = read_yaml(path) if path is not None else copy.deepcopy(base)
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a training config must be a mapping, got {type(raw).__name__}")
    if "model" not in raw and "name" in raw:       # a model config: training defaults
        raw = {"model": raw}
    _expand_model(raw, base_dir)
    for key, value in (("data", data), ("epochs", epochs), ("max_events", max_events)):
        if value is not None:
            raw[key] = value
    for text in overrides:
        parts, value = parse_override(text)
        apply_override(raw, parts, value, text)
    cfg = train_config_from_dict(raw, where, base_dir)
    if require_data and not cfg.data:
        raise ConfigError(f"{where}: no dataset given (use --data DIR or 'data:' in the config)")
    return cfg

