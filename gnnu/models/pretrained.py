"""Checkpoints shipped inside the package, loadable by name (issue 22).

``pretrained:NAME`` names a checkpoint under ``gnnu/models/pretrained/`` (package data, so it is
in a wheel too): ``NAME.ckpt`` (weights and the ``gnnu`` block of a ``gnnu-train`` checkpoint,
no optimiser state) and ``NAME.json``, its model card (data, command, metrics with intervals,
gnnu version, commit). Every command that takes a checkpoint resolves it here:
``gnnu-eval --checkpoint pretrained:dune-real``, ``gnnu-train --init-from pretrained:dune-sim``
(and, later, ``gnnu-predict``) call :func:`resolve_checkpoint`.

Shipped (see each card, and README "Real DUNE events"):

- ``dune-sim``: EdgeConv 32/64/128 pretrained on gnnu-simulated DUNE events in the
  ``knn16_dune_cvn_pixels`` representation;
- ``dune-real``: ``dune-sim`` fine-tuned on the 400 real DUNE FD events of
  ``../shared/data/dune-cvn-finetune`` (DUNE CVN release, PRD 102 (2020) 092003).

:func:`slim_checkpoint` writes such a file from a ``gnnu-train`` checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..atomic import write_text_atomic, write_torch_atomic
from ..errors import InputError

PREFIX = "pretrained:"
#: Directory of the shipped checkpoints (package data).
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


def available() -> list[str]:
    """Names of the shipped checkpoints (those with a ``.ckpt`` file), sorted."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.ckpt"))


def resolve_checkpoint(spec: str | os.PathLike) -> Path:
    """The file a checkpoint argument names: ``pretrained:NAME`` → the shipped
    ``gnnu/models/pretrained/NAME.ckpt``; anything else → that path, unchanged (its existence is
    checked where it is loaded). InputError naming the known names for an unknown one."""
    text = os.fspath(spec)
    if not text.startswith(PREFIX):
        return Path(text)
    name = text[len(PREFIX):]
    path = PRETRAINED_DIR / f"{name}.ckpt"
    if not name or "/" in name or not path.is_file():
        known = ", ".join(PREFIX + n for n in available()) or "none"
        raise InputError(f"no shipped checkpoint '{name}' (shipped: {known})", text)
    return path


def model_card(spec: str | os.PathLike) -> dict:
    """The model card of a shipped checkpoint (``NAME.json`` beside it); InputError if none."""
    path = resolve_checkpoint(spec).with_suffix(".json")
    if not path.is_file():
        raise InputError("no model card beside the checkpoint", path)
    return json.loads(path.read_text())


def slim_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, card: dict | None = None,
                    graph: dict | None = None) -> Path:
    """Write the weights and ``gnnu`` block of ``gnnu-train`` checkpoint ``src`` to ``dst``
    (no optimiser, scheduler or loop state: a few hundred kB for EdgeConv 32/64/128), loadable
    with ``weights_only=True`` by gnnu-eval and ``gnnu-train --init-from``; with ``card`` also
    ``dst`` with suffix ``.json``; ``graph``: the graph record (``gnnu.graph``, for gnnu-predict
    and gnnu-export) to add where the checkpoint predates it. Written atomically."""
    from .checkpoint import checkpoint_meta, load_checkpoint

    ckpt = load_checkpoint(src)
    meta = checkpoint_meta(ckpt, src)
    if graph is not None and not meta.get("graph"):    # an older checkpoint: add how its graphs were built
        meta = {**meta, "graph": graph}
    state = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    write_torch_atomic(dst, {"state_dict": state, "gnnu": meta})
    if card is not None:
        write_text_atomic(dst.with_suffix(".json"), json.dumps(card, indent=1, ensure_ascii=False) + "\n")
    return dst
