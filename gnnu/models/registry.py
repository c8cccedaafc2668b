"""The model registry: every model is built from a YAML config by name.

A model family lives in one file and registers each of its models with one line::

    @register_model("edgeconv", params=EdgeConvParams)
    def edgeconv(config: ModelConfig, in_features: int, tasks: dict[str, int],
                 regression: tuple[str, ...]) -> nn.Module: ...

The decorated object (a builder function or an ``nn.Module`` class) is called with exactly those
four arguments; ``config.params`` is then an instance of the family's frozen params dataclass
(``params=`` above, or the object's ``Params`` attribute; a model with neither takes no params).
:func:`register_model` files a :class:`ModelEntry` in :data:`MODELS`, gnnu's generic
:class:`~gnnu.registry.Registry`; family packages are imported on first lookup
(:data:`FAMILIES`), so registering a model needs no edit here.

A model config (``configs/models/<name>.yaml``) is a mapping::

    name: edgeconv            # registered model name
    params: {...}             # the family's params dataclass, validated strictly
    pooling: [mean, max]      # global pooling (GNNs; concatenated when several)
    heads: {...}              # gnnu.models.heads.HeadsConfig
    image: {preset: dune-cvn} # image models only: gnnu.images.config.ImageConfig (required there)

A full training config may nest it under a top-level ``model`` key; :func:`load_model_config`
then reads that section only (the trainer validates the others).

Every model's forward takes a ``torch_geometric.data.Batch`` (GNNs) or the family's own input
(CNNs) and returns a dict: logits [B, C] per classification task, a value [B] per regression
target (see :mod:`gnnu.models.heads` for the units).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Literal

from torch import nn

from ..config import from_dict, read_yaml
from ..errors import ConfigError
from ..events import NUM_CLASSES
from ..images.config import ImageConfig
from ..pixelmap import PRESETS
from ..registry import Registry
from .heads import HeadsConfig

#: Packages whose import registers model families.
FAMILIES = ("gnnu.models.gnn", "gnnu.models.cnn")

PoolingMode = Literal["mean", "max", "sum"]


@dataclass(frozen=True)
class _NoParams:
    """Params of a model that takes none."""


#: What a model family reads: ``graph`` (a PyG Batch) or ``image`` (a mapping with ``image``
#: uint8 [B, V, H, W] pixel maps, see :mod:`gnnu.images`).
InputKind = Literal["graph", "image"]
INPUT_KINDS = ("graph", "image")


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its builder (function or ``nn.Module`` class), its params
    dataclass and what it reads (:data:`InputKind`)."""

    builder: Callable[..., nn.Module]
    params: type
    inputs: str = "graph"


#: Every model by name (families register on import; :func:`register_model` adds to it).
MODELS: Registry[ModelEntry] = Registry("model", modules=FAMILIES, sort=True)


@dataclass(frozen=True)
class ModelConfig:
    """A validated model config.

    ``name``: registered model name. ``params``: the model family's params dataclass instance
    (a mapping before validation). ``heads``: :class:`~gnnu.models.heads.HeadsConfig`.
    ``pooling``: global pooling modes, concatenated in this order (GNN families).
    ``image``: how events become pixel maps (:class:`~gnnu.images.config.ImageConfig`); required
    by image models, refused for graph models.
    """

    name: str
    params: Any = field(default_factory=dict)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    pooling: tuple[PoolingMode, ...] = ("mean", "max")
    image: ImageConfig | None = None

    def __post_init__(self):
        if not self.pooling:
            raise ValueError("pooling: give at least one of mean, max, sum")
        if len(set(self.pooling)) != len(self.pooling):
            raise ValueError(f"pooling: duplicate modes in {list(self.pooling)}")


def register_model(name: str, params: type | None = None, inputs: InputKind = "graph"):
    """Decorator: register a builder function or ``nn.Module`` class under ``name``.

    ``params``: the family's frozen params dataclass (default: the object's ``Params`` attribute,
    else no params). ``inputs``: what the model's forward reads, ``graph`` or ``image``
    (:data:`InputKind`). Registering a name twice is an error.
    """
    if inputs not in INPUT_KINDS:
        raise ValueError(f"inputs must be one of {INPUT_KINDS}, got {inputs!r}")

    def decorate(obj):
        cls = params if params is not None else getattr(obj, "Params", _NoParams)
        MODELS.register(name, ModelEntry(obj, cls, inputs))
        return obj
    return decorate


def model_inputs(name: str) -> InputKind:
    """What the registered model ``name`` reads: ``graph`` or ``image``; ConfigError if unknown."""
    return MODELS.lookup(name).inputs


def list_models() -> list[str]:
    """Sorted names of every registered model."""
    return list(MODELS)


def load_model_config(config: dict | str | os.PathLike | ModelConfig,
                      where: str = "model") -> ModelConfig:
    """Validate a model config given as a mapping, a YAML path, a short name or a ModelConfig.

    A short name (``"edgeconv"``) reads ``configs/models/<name>.yaml`` if it exists, else it
    means the registered model with default params. Unknown model names and unknown or
    ill-typed keys raise :class:`ConfigError` naming them.
    """
    if isinstance(config, (str, os.PathLike)):
        path = _config_path(config)
        if path is None:
            config = {"name": str(config)}
        else:
            config, where = read_yaml(path), str(path)
    if isinstance(config, dict) and "model" in config:
        config, where = config["model"], f"{where}.model"
    raw = from_dict(ModelConfig, config, where)   # a ModelConfig passes through as is
    entry = MODELS.lookup(raw.name, f"{where}.name")
    if entry.inputs == "image" and raw.image is None:
        raise ConfigError(f"{where}: model '{raw.name}' reads pixel maps: give an 'image:' section "
                          f"with a preset (known: {', '.join(PRESETS)}), e.g. image: {{preset: "
                          f"{next(iter(PRESETS))}}}")
    if entry.inputs == "graph" and raw.image is not None:
        raise ConfigError(f"{where}.image: model '{raw.name}' reads graphs, not pixel maps")
    return replace(raw, params=from_dict(entry.params, raw.params, f"{where}.params"))


def _config_path(config: str | os.PathLike) -> Path | None:
    from ..config import config_file, shipped_config

    p = Path(config)
    if p.suffix in (".yaml", ".yml") or os.sep in str(config):
        return config_file(p)
    return shipped_config("models", str(config))


def create_model(config: dict | str | os.PathLike | ModelConfig, in_features: int,
                 tasks: dict[str, int] | None = None,
                 regression: tuple[str, ...] = ("nu_energy",)) -> nn.Module:
    """Build a model from its config (see :func:`load_model_config`).

    ``in_features``: node features F per hit (GNNs) or input channels (CNNs).
    ``tasks``: classification task → number of classes; default every label of
    :data:`gnnu.events.NUM_CLASSES`. ``regression``: regression targets offered (default
    ``("nu_energy",)``). The config's ``heads.enabled`` selects among them.
    The model carries ``model.config`` (the ModelConfig) and ``model.loss_weights``.
    """
    cfg = load_model_config(config)
    if in_features < 1:
        raise ConfigError(f"in_features must be positive, got {in_features}")
    tasks = dict(NUM_CLASSES) if tasks is None else dict(tasks)
    model = MODELS[cfg.name].builder(cfg, in_features, tasks, tuple(regression))
    if not isinstance(getattr(model, "loss_weights", None), dict):
        raise TypeError(f"builder of model '{cfg.name}' must set model.loss_weights "
                        f"(see MultiTaskHead.from_config)")
    model.config = cfg
    return model
