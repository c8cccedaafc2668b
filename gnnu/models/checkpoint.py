"""Checkpoints: safe loading, rebuilding a model, partial loading for fine-tuning, freezing.

A gnnu checkpoint is a Lightning checkpoint (``best.ckpt``, ``last.ckpt``) holding only tensors
and plain Python types, so it loads with ``torch.load(..., weights_only=True)`` (docs/design.md#reliability):

- ``state_dict``: the LightningModule's weights; the model's own keys carry the prefix ``model.``;
- ``gnnu``: :data:`META_KEYS` — the resolved training config as a mapping, the dataset's feature
  names, manifest hash and path, the classification tasks and class counts, the regression
  targets, the gnnu version;
- Lightning's loop, optimiser, scheduler and callback states, and ``gnnu_rng`` (the torch RNG
  states, restored on resume so dropout continues as in an uninterrupted run).

:func:`load_checkpoint` always maps tensors to the CPU (``map_location='cpu'``): a checkpoint written
on a GPU machine loads on a CPU-only one; the caller moves the model where it runs.
:func:`load_matching` copies the tensors whose names and shapes match into a new model
(fine-tuning: a head whose number of classes changed keeps its fresh initialisation).
:func:`parameter_units` and :func:`freeze` implement the config's ``freeze``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError, InputError

#: Keys of a checkpoint's ``gnnu`` block.
META_KEYS = ("version", "config", "feature_names", "manifest_hash", "data", "tasks", "regression",
             "in_features")
MODEL_PREFIX = "model."


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint with ``weights_only=True`` onto the CPU; InputError naming the file if
    it is missing, not a checkpoint, or holds anything but tensors and plain types."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such checkpoint", path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 — pickle/zip errors have many types; all mean "bad file"
        # torch's own message advises weights_only=False, which gnnu never does: not forwarded.
        raise InputError(f"not a loadable checkpoint ({type(exc).__name__}): corrupt, not a torch "
                         f"file, or holding objects other than tensors and plain data (refused)",
                         path) from None
    if not isinstance(ckpt, dict):
        raise InputError("not a checkpoint (expected a mapping)", path)
    return ckpt


def checkpoint_meta(ckpt: dict, path: str | os.PathLike) -> dict:
    """The ``gnnu`` block of a checkpoint written by ``gnnu-train``; InputError if absent."""
    meta = ckpt.get("gnnu")
    if not isinstance(meta, dict) or any(k not in meta for k in META_KEYS):
        raise InputError("not a gnnu-train checkpoint (no 'gnnu' block with config and features)", path)
    return meta


def model_state(ckpt: dict) -> dict[str, torch.Tensor]:
    """The model's weights from a gnnu/Lightning checkpoint (``model.`` prefix removed), or the
    checkpoint itself when it is a plain state dict of tensors."""
    state = ckpt.get("state_dict", ckpt)
    if any(k.startswith(MODEL_PREFIX) for k in state):
        state = {k[len(MODEL_PREFIX):]: v for k, v in state.items() if k.startswith(MODEL_PREFIX)}
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_matching(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, list]:
    """Copy every tensor of ``state`` whose name and shape match a parameter or buffer of ``model``.

    Returns ``loaded`` (names), ``reinitialised`` ([name, checkpoint shape, model shape] for
    shape mismatches, e.g. a head with another number of classes), ``missing`` (model tensors the
    checkpoint lacks) and ``unused`` (checkpoint tensors the model lacks). Raises nothing: the
    caller decides whether too little was loaded.
    """
    own = model.state_dict()
    loaded, reinit, unused = [], [], []
    take = {}
    for name, value in state.items():
        if name not in own:
            unused.append(name)
        elif own[name].shape != value.shape:
            reinit.append([name, list(value.shape), list(own[name].shape)])
        else:
            take[name] = value
            loaded.append(name)
    model.load_state_dict(take, strict=False)
    missing = [n for n in own if n not in state]
    return {"loaded": loaded, "reinitialised": reinit, "missing": missing, "unused": unused}


def parameter_units(model: nn.Module) -> list[str]:
    """The model's parameters grouped into units, in registration (≈ forward) order.

    A unit is a parameter's module path cut after its first numeric component (one block of a
    ModuleList/Sequential: ``encoder.blocks.0``, ``head.trunk.0``) or, without one, the module
    that owns it (``encoder.input_norm``, ``head.heads.flavour``). ``freeze: N`` freezes the
    first N units.
    """
    units: list[str] = []
    for name, _ in model.named_parameters():
        parts = name.split(".")[:-1]
        cut = next((i for i, p in enumerate(parts) if p.isdigit()), None)
        unit = ".".join(parts[: cut + 1] if cut is not None else parts)
        if unit not in units:
            units.append(unit)
    return units


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def freeze(model: nn.Module, spec: list[str] | int | None) -> list[str]:
    """Stop training the parameters selected by ``spec`` (prefixes or a depth; see
    :func:`parameter_units`); returns the frozen prefixes. ConfigError for a prefix that matches
    no parameter, or a depth beyond the number of units."""
    if spec is None or spec == [] or spec == 0:
        return []
    units = parameter_units(model)
    if isinstance(spec, int):
        if spec > len(units):
            raise ConfigError(f"freeze: depth {spec} exceeds the model's {len(units)} parameter units "
                              f"({', '.join(units)})")
        prefixes = units[:spec]
    else:
        prefixes = list(spec)
        names = [n for n, _ in model.named_parameters()]
        unmatched = [p for p in prefixes if not any(_matches(n, p) for n in names)]
        if unmatched:
            raise ConfigError(f"freeze: prefix(es) {', '.join(unmatched)} match no parameter "
                              f"(units: {', '.join(units)})")
    for name, p in model.named_parameters():
        if any(_matches(name, prefix) for prefix in prefixes):
            p.requires_grad_(False)
    return prefixes


def frozen_modules(model: nn.Module, prefixes: list[str]) -> list[nn.Module]:
    """Modules inside the frozen prefixes (kept in eval mode: BatchNorm statistics and dropout
    of a frozen part do not change during fine-tuning)."""
    return [m for name, m in model.named_modules()
            if name and any(_matches(name, p) for p in prefixes)]
