"""Which pixel maps a detector kind's events become: the image side's per-kind registry.

A detector (:class:`gnnu.detectors.Detector`) knows its geometry; which preset layout renders
its hits — ``wire-time`` (one map of wires × time bins per wire plane) or ``plane-cell`` (planes
× cells per view of a segmented detector) — is the image side's business, registered here per
detector kind (one line each). Datasets of a kind without a layout cannot be rendered (one
ConfigError, and displays draw their graphs only).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import Registry


@dataclass(frozen=True)
class ImageLayout:
    """How a detector kind's hits become pixel maps: the preset ``layout`` that renders them
    and, for messages, the ``detectors`` it is for (e.g. "a three-view wire-plane LArTPC such as
    dune")."""

    layout: str
    detectors: str


#: detector kind → :class:`ImageLayout`.
IMAGE_LAYOUTS: Registry[ImageLayout] = Registry("image layout")
IMAGE_LAYOUTS.register("lartpc", ImageLayout("wire-time", "a three-view wire-plane LArTPC such as dune"))
IMAGE_LAYOUTS.register("scintillator", ImageLayout(
    "plane-cell", "a segmented (plane × cell) detector such as nova"))


def detectors_of(layout: str) -> str:
    """The (first registered) detectors whose events a preset of ``layout`` renders, for
    messages."""
    return next((e.detectors for e in IMAGE_LAYOUTS.values() if e.layout == layout),
                f"no registered detector kind ({layout} maps)")
