"""Multi-task output heads shared by every model family (GNNs and CNNs alike).

A model reduces an event to one feature vector ``z`` [B, F_in] (pooled graph, or a CNN's
global feature). :class:`MultiTaskHead` maps it through a shared MLP trunk

    t = Dropout(ReLU(W_L … Dropout(ReLU(W_1 z + b_1)) … + b_L))

and then one linear layer per head: logits [B, C_task] for every classification task of
:data:`gnnu.events.CLASS_LABELS` (class counts from :data:`gnnu.events.NUM_CLASSES`, or the ones
the caller gives) and one scalar [B] per regression target.

Regression targets in the network's own units (see :func:`encode_target`): names ending in
``_energy`` (``nu_energy``, ``lep_energy``, GeV) are predicted as ln(E / GeV) when
``energy_target`` is ``"log"`` (the default: the energy spectrum spans 0.5–10 GeV and a log target
makes the loss a relative error), or in GeV when ``"linear"``; every other target (``y``,
``vtx_x`` in cm, …) is predicted as is. The trainer computes the loss against
``encode_target(name, truth)`` and converts predictions back with :func:`decode_target`.

Simplifications: the trunk has no normalisation layer (a batch of one event must work in
training mode); every head is a single linear layer on the shared trunk.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..events import CLASS_LABELS, Truth

#: Regression targets a head can predict: every float truth field of :class:`gnnu.events.Truth`.
REGRESSION_TARGETS = tuple(f.name for f in dataclasses.fields(Truth) if f.type in ("float", float))


@dataclass(frozen=True)
class HeadsConfig:
    """Which heads a model has and how the trainer weights their losses.

    ``hidden``: widths of the shared trunk (empty = heads read the pooled features directly).
    ``dropout``: dropout probability after each trunk layer.
    ``enabled``: the heads to build, by name (classification tasks and regression targets);
    ``None`` builds every head the caller offers (all labels of the dataset).
    ``loss_weights``: loss weight per head name; heads not listed weigh 1.0. The model only
    carries them (``model.loss_weights``); the trainer applies them.
    ``energy_target``: ``"log"`` (predict ln(E/GeV)) or ``"linear"`` (predict E in GeV) for the
    ``*_energy`` regression targets.
    """

    hidden: tuple[int, ...] = (256,)
    dropout: float = 0.1
    enabled: tuple[str, ...] | None = None
    loss_weights: dict[str, float] = field(default_factory=dict)
    energy_target: Literal["log", "linear"] = "log"

    def __post_init__(self):
        if any(w <= 0 for w in self.hidden):
            raise ValueError(f"hidden: widths must be positive, got {list(self.hidden)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: must lie in [0, 1), got {self.dropout}")
        if self.enabled is not None and len(set(self.enabled)) != len(self.enabled):
            raise ValueError(f"enabled: duplicate head names in {list(self.enabled)}")
        bad = {k: v for k, v in self.loss_weights.items() if not (v >= 0 and math.isfinite(v))}
        if bad:
            raise ValueError(f"loss_weights: weights must be finite and ≥ 0, got {bad}")


def select_heads(cfg: HeadsConfig, tasks: dict[str, int],
                 regression: tuple[str, ...]) -> tuple[dict[str, int], tuple[str, ...], dict[str, float]]:
    """Resolve which heads to build from the config and what the caller offers.

    ``tasks``: classification task → number of classes the data provides; ``regression``: the
    regression targets it provides. Returns (tasks built, regression targets built, loss weight per
    built head). A name in ``cfg.enabled`` the caller does not offer, or a loss weight for a name that is
    neither offered nor a known label, is a :class:`ConfigError` naming it.
    """
    for name, n in tasks.items():
        if n < 2:
            raise ConfigError(f"task '{name}': needs at least 2 classes, got {n}")
    unknown_reg = [r for r in regression if r not in REGRESSION_TARGETS]
    if unknown_reg:
        raise ConfigError(f"unknown regression target(s) {', '.join(unknown_reg)} "
                          f"(known: {', '.join(REGRESSION_TARGETS)})")
    clash = set(tasks) & set(regression)
    if clash:
        raise ConfigError(f"head(s) {', '.join(sorted(clash))} both classification and regression")
    offered = list(tasks) + list(regression)
    if cfg.enabled is not None:
        missing = [h for h in cfg.enabled if h not in offered]
        if missing:
            raise ConfigError(f"heads.enabled: head(s) {', '.join(missing)} not available "
                              f"(available: {', '.join(offered) or 'none'})")
    known = set(offered) | set(CLASS_LABELS) | set(REGRESSION_TARGETS)
    unknown_w = sorted(set(cfg.loss_weights) - known)
    if unknown_w:
        raise ConfigError(f"heads.loss_weights: unknown head(s) {', '.join(unknown_w)} "
                          f"(known: {', '.join(offered)})")
    enabled = set(offered) if cfg.enabled is None else set(cfg.enabled)
    built_tasks = {k: v for k, v in tasks.items() if k in enabled}
    built_reg = tuple(r for r in regression if r in enabled)
    if not built_tasks and not built_reg:
        raise ConfigError("heads.enabled: no head switched on")
    weights = {h: float(cfg.loss_weights.get(h, 1.0)) for h in [*built_tasks, *built_reg]}
    return built_tasks, built_reg, weights


def is_log_target(name: str, energy_target: str) -> bool:
    """True when regression target ``name`` is predicted as a logarithm."""
    return energy_target == "log" and name.endswith("_energy")


def encode_target(name: str, value: Tensor, energy_target: str = "log") -> Tensor:
    """Truth value (physical units: GeV, cm, 1) → the regression head's target units.

    Energies are clamped at 1 MeV before the logarithm so an empty or zero truth stays finite.
    """
    if is_log_target(name, energy_target):
        return torch.log(value.clamp(min=1e-3))
    return value


def decode_target(name: str, pred: Tensor, energy_target: str = "log") -> Tensor:
    """A regression head's output → physical units (inverse of :func:`encode_target`)."""
    if is_log_target(name, energy_target):
        return torch.exp(pred)
    return pred


class MultiTaskHead(nn.Module):
    """Shared MLP trunk, then one linear map per head.

    Args:
        in_features: F_in, width of the event feature vector.
        tasks: classification task → number of classes C (one logits output [B, C] each).
        regression: regression targets (one output [B] each).
        hidden: trunk widths; ``()`` for none.
        dropout: dropout after each trunk layer.

    Input ``z`` [B, F_in]; output dict name → logits [B, C] or regression value [B].
    """

    def __init__(self, in_features: int, tasks: dict[str, int], regression: tuple[str, ...] = (),
                 hidden: tuple[int, ...] = (256,), dropout: float = 0.1):
        super().__init__()
        self.in_features = in_features
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.trunk = nn.Sequential(*layers)
        self.tasks = dict(tasks)
        self.regression = tuple(regression)
        self.heads = nn.ModuleDict({name: nn.Linear(width, n) for name, n in self.tasks.items()})
        self.regressors = nn.ModuleDict({name: nn.Linear(width, 1) for name in self.regression})
        self.reset_parameters()

    def reset_parameters(self):
        for m in self.modules():
            if isinstance(m, nn.Linear):
                m.reset_parameters()

    @classmethod
    def from_config(cls, cfg: HeadsConfig, in_features: int, tasks: dict[str, int],
                    regression: tuple[str, ...]) -> tuple["MultiTaskHead", dict[str, float]]:
        """Build the heads ``cfg`` switches on among those offered; also return the loss weights."""
        built_tasks, built_reg, weights = select_heads(cfg, tasks, regression)
        return cls(in_features, built_tasks, built_reg, cfg.hidden, cfg.dropout), weights

    def forward(self, z: Tensor) -> dict[str, Tensor]:
        t = self.trunk(z)
        out = {name: head(t) for name, head in self.heads.items()}
        out.update({name: head(t).squeeze(-1) for name, head in self.regressors.items()})
        return out
