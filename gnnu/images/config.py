"""The ``image:`` section of an image model's config: a preset plus optional overrides.

Example (in ``configs/models/<cnn>.yaml``)::

    image:
      preset: resnet-rgb         # dune-cvn, nova-cvn or resnet-rgb (gnnu.pixelmap)
      size: [112, 112]           # optional: columns × time bins (plane-cell: rows × cell columns)
      ticks_per_bin: 25.6        # optional (wire-time presets)
      wires_per_column: 4        # optional: wires (or cells) per column
      charge_scale: 0.06375      # optional: pixel value per unit of summed hit charge
      centring: centroid         # optional: vertex (the dataset's truth vertex) or centroid

Every key but ``preset`` defaults to the preset's value; the resolved
:class:`~gnnu.pixelmap.PixelMapPreset` (:meth:`ImageConfig.preset_object`) is what the
image dataset renders with. The config travels inside the model config (``ModelConfig.image``),
so a checkpoint renders at evaluation exactly as in training.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from ..pixelmap import PRESETS, PixelMapPreset, get_preset


@dataclass(frozen=True)
class ImageConfig:
    """A pixel-map preset name and overrides of its fields (``None``: the preset's value).

    ``size``: (columns, time bins) for wire-time presets, (plane rows, cell columns) for
    plane-cell ones. ``ticks_per_bin`` (wire-time only), ``wires_per_column``, ``charge_scale``
    (pixel value per ADC·tick or PE), ``centring`` (``vertex``: the truth vertex stored with the
    dataset's labels; ``centroid``: the charge centroid of each view).
    """

    preset: str
    size: tuple[int, int] | None = None
    ticks_per_bin: float | None = None
    wires_per_column: int | None = None
    charge_scale: float | None = None
    centring: Literal["vertex", "centroid"] | None = None

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"preset: {PRESETS.unknown(self.preset)}")
        if get_preset(self.preset).layout == "plane-cell" and self.ticks_per_bin is not None:
            raise ValueError(f"ticks_per_bin: preset '{self.preset}' bins planes and cells, not time")
        self.preset_object()                          # the preset's own checks

    def preset_object(self) -> PixelMapPreset:
        """The preset with the overrides applied (ValueError for invalid values)."""
        base = get_preset(self.preset)
        changes = {k: v for k, v in (("ticks_per_bin", self.ticks_per_bin),
                                     ("wires_per_column", self.wires_per_column),
                                     ("charge_scale", self.charge_scale),
                                     ("centring", self.centring)) if v is not None}
        if self.size is not None:
            keys = ("n_planes", "n_cells") if base.layout == "plane-cell" else ("n_wires", "n_time_bins")
            changes.update(zip(keys, self.size))
        return dataclasses.replace(base, **changes) if changes else base
