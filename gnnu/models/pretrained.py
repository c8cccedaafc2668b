"""Checkpoints shipped with gnnu: ``pretrained:NAME`` → ``gnnu/pretrained/NAME.ckpt``.

Minimal resolver (issue 18; the shipped checkpoints themselves come with real DUNE events): a
reference that starts with ``pretrained:`` names a file of the package's ``pretrained/`` directory
(package data, so an installed wheel has it); any other reference is a path, returned unchanged.
An unknown name is one :class:`~gnnu.errors.ConfigError` listing the names shipped.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from ..errors import ConfigError

PREFIX = "pretrained:"
#: Where the shipped checkpoints live (package data).
PRETRAINED_DIR = Path(os.fspath(resources.files("gnnu") / "pretrained"))


def shipped_checkpoints() -> list[str]:
    """Names of the shipped checkpoints, sorted."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.ckpt"))


def resolve_checkpoint(ref: str | os.PathLike) -> Path:
    """The checkpoint file ``ref`` names: ``pretrained:NAME`` → the shipped ``NAME.ckpt``; a
    path → itself."""
    text = os.fspath(ref)
    if not text.startswith(PREFIX):
        return Path(text)
    name = text[len(PREFIX):]
    path = PRETRAINED_DIR / f"{name}.ckpt"
    if not name or "/" in name or not path.is_file():
        known = shipped_checkpoints()
        raise ConfigError(f"unknown pretrained checkpoint '{name}' (shipped: "
                          f"{', '.join(known) if known else 'none in this installation'})")
    return path
